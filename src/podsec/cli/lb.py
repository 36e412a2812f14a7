"""``podsec lb`` and ``podsec ingress``: HA control plane and service exposure."""

from __future__ import annotations

import click

from podsec.i18n import _


@click.group(help=_("Load balancing of the API servers: haproxy and keepalived."))
def lb() -> None:
    pass


@click.group(help=_("Ingress controller manifests for the local registry."))
def ingress() -> None:
    pass
