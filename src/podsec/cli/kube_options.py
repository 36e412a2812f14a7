"""The administrator's connection as command options: ``--kubeconfig``, ``--context``,
``--request-timeout`` (resolved by :func:`podsec.kube.kubeconfig.admin_connection`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from podsec.i18n import _

if TYPE_CHECKING:
    from podsec.host.paths import Host
    from podsec.kube.kubeconfig import Connection

F = TypeVar("F", bound=Callable[..., Any])


def admin_options(func: F) -> F:
    """--kubeconfig / --context / --request-timeout: the administrator's connection."""
    func = click.option(
        "--request-timeout",
        type=click.FloatRange(min=0.1),
        default=15.0,
        show_default=True,
        metavar="SECONDS",
        help=_("Give up on an API request after SECONDS."),
    )(func)
    func = click.option(
        "--context", "kube_context", metavar="NAME", help=_("Use this kubeconfig context.")
    )(func)
    return click.option(
        "--kubeconfig",
        metavar="FILE",
        help=_(
            "Administrator's kubeconfig (default: $KUBECONFIG, ~/.kube/config, "
            "/etc/kubernetes/admin.conf)."
        ),
    )(func)


def admin_connection(host: Host, kubeconfig: str | None, kube_context: str | None) -> Connection:
    from podsec.kube import kubeconfig as kc

    return kc.admin_connection(kubeconfig, host, kube_context)
