"""``podsec policy``, ``podsec users``, ``podsec services``: the image-trust area."""

from __future__ import annotations

import click

from podsec.i18n import _


@click.group(help=_("Image trust policy: which images may be pulled, signed by whom."))
def policy() -> None:
    pass


@click.group(help=_("Image users (group podman) and image makers (group podman_dev)."))
def users() -> None:
    pass


@click.group(help=_("The local registry (registry.local) and signature server (sigstore.local)."))
def services() -> None:
    pass
