"""``podsec u7s``: rootless Kubernetes in the user namespace of u7s-admin."""

from __future__ import annotations

import click

from podsec.i18n import _


@click.group(help=_("Rootless Kubernetes: every pod runs in the user namespace of u7s-admin."))
def u7s() -> None:
    pass
