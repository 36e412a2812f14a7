"""``podsec images``: air-gapped archives, loading and signing, signature audit."""

from __future__ import annotations

import click

from podsec.i18n import _


@click.group(help=_("Image archives for air-gapped nodes, loading with signatures, audits."))
def images() -> None:
    pass
