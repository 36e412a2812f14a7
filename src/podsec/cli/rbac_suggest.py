"""``podsec rbac suggest | unused``: least privilege from the API server's audit log.

Registered on the ``rbac`` group by podsec.cli.rbac.
"""

from __future__ import annotations

import click

from podsec.cli import context, output
from podsec.cli.kube_options import admin_options
from podsec.i18n import _

_SINCE = click.option(
    "--since",
    default="7d",
    show_default=True,
    metavar="DURATION",
    help=_("The window of the audit log read (90s, 30m, 12h, 7d)."),
)
_AUDIT_LOG = click.option(
    "--audit-log",
    default="/etc/kubernetes/audit/audit.log",
    show_default=True,
    metavar="FILE",
    help=_("The API server's audit log (its rotated copies are read too)."),
)


@click.command(
    "suggest",
    help=_(
        "Print the smallest Role/ClusterRole and bindings (YAML for kubectl apply) that allow "
        "exactly the requests USER made and was allowed in the audit log within --since: a "
        "Role per namespace used, a ClusterRole for cluster-scoped resources, all-namespace "
        "requests and non-resource URLs; resourceNames where every use named its object. "
        "Refused requests are listed as comments, not granted."
    ),
    epilog=_(
        "Examples:\n\n  podsec rbac suggest alice --since 7d > alice-rbac.yaml\n\n"
        "  podsec rbac suggest alice --bind-to alice-ci | kubectl apply -f -"
    ),
)
@click.argument("user")
@_SINCE
@_AUDIT_LOG
@click.option(
    "--bind-to", metavar="USER", help=_("Bind the suggested roles to this user (default USER).")
)
@click.pass_context
def suggest_cmd(
    ctx: click.Context, user: str, since: str, audit_log: str, bind_to: str | None
) -> None:
    from podsec.rbac import expiry, suggest

    env = context.get(ctx)
    text = suggest.suggest_for(
        env.host,
        user,
        since_seconds=expiry.parse_for(since),
        audit_log=audit_log,
        subject=bind_to,
    )
    click.echo(text, nl=False)


@click.command(
    "unused",
    help=_(
        "List what USER is granted (its bindings and its certificate's groups') that no "
        "request of USER in the audit log within --since exercised: binding, role, resource "
        "(or URL) and verb."
    ),
    epilog=_(
        "Examples:\n\n  podsec rbac unused alice\n\n  podsec rbac unused alice --since 30d --json"
    ),
)
@click.argument("user")
@_SINCE
@_AUDIT_LOG
@admin_options
@click.option("--json", "json_output", is_flag=True, help=_("Print the result as JSON."))
@click.pass_context
def unused_cmd(
    ctx: click.Context,
    *,
    user: str,
    since: str,
    audit_log: str,
    kubeconfig: str | None,
    kube_context: str | None,
    request_timeout: float,
    json_output: bool,
) -> None:
    from podsec.rbac import expiry, suggest

    env = context.with_json(ctx, json_output)
    rows = suggest.unused_for(
        env.host,
        user,
        since_seconds=expiry.parse_for(since),
        audit_log=audit_log,
        kubeconfig=kubeconfig,
        context=kube_context,
        api_timeout=request_timeout,
    )
    if env.json:
        output.emit_json(rows)
        return
    output.table(
        _("granted to {user}, not used").format(user=user),
        [_("binding"), _("role"), _("via group"), _("resource"), _("verb")],
        [
            (
                f"{r.binding_namespace}/{r.binding}" if r.binding_namespace else r.binding,
                r.role,
                r.via_group or "",
                r.what,
                r.verb,
            )
            for r in rows
        ],
    )
