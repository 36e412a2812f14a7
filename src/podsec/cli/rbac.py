"""``podsec rbac``: Kubernetes users, certificates, kubeconfigs and role bindings."""

from __future__ import annotations

import click

from podsec.i18n import _


@click.group(help=_("Kubernetes RBAC users: certificates, kubeconfigs, role bindings."))
def rbac() -> None:
    pass
