"""``podsec rbac bind | unbind | roles | who-can``: who may do what, and changing it.

Registered on the ``rbac`` group by podsec.cli.rbac; the original program names
(podsec-k8s-rbac-bindrole, -unbindrole, -get-userroles) run the same commands.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from podsec.cli import context, output
from podsec.cli.kube_options import admin_options
from podsec.i18n import _

# --------------------------------------------------------------------------- bind / unbind
_BIND_HELP_TAIL = _(
    "ROLE_TYPE is role (a Role in NAMESPACE), role=clusterrole (a ClusterRole granted in "
    "NAMESPACE) or clusterrole (cluster-wide; no NAMESPACE). BINDING is the RoleBinding or "
    "ClusterRoleBinding shared by all its subjects."
)


def _binding_command(name: str, unbind: bool) -> Callable[[Callable[..., None]], click.Command]:
    def wrap(func: Callable[..., None]) -> click.Command:
        f: Any = click.pass_context(func)
        f = click.option(
            "--json", "json_output", is_flag=True, help=_("Print the result as JSON.")
        )(f)
        f = click.option(
            "--any-user", is_flag=True, help=_("Do not require a Linux account for USER.")
        )(f)
        if not unbind:
            f = click.option(
                "--force",
                is_flag=True,
                help=_("Bind even a name a revoked, still valid certificate carries."),
            )(f)
            f = click.option(
                "--for",
                "for_text",
                metavar="DURATION",
                help=_(
                    "Break-glass: USER leaves the binding after DURATION (90s, 30m, 8h, 2d), "
                    "removed by the podsec-rbac-expire timer (or the u7s node's supervisor); "
                    "both steps go to syslog."
                ),
            )(f)
        f = click.option("--group", "is_group", is_flag=True, help=_("USER names a group."))(f)
        f = admin_options(f)
        f = click.argument("namespace", required=False)(f)
        f = click.argument("binding")(f)
        f = click.argument("role")(f)
        f = click.argument("role_type", metavar="ROLE_TYPE")(f)
        f = click.argument("user")(f)
        if unbind:
            text = _(
                "Remove USER from the binding BINDING; the binding is deleted when its last "
                "subject leaves. It is an error if USER is not bound there."
            )
            epilog = _(
                "Examples:\n\n  podsec rbac unbind alice role=clusterrole edit devs-edit devs\n\n"
                "  podsec-k8s-rbac-unbindrole alice clusterrole view sysview"
            )
        else:
            text = _(
                "Add USER to the binding BINDING of role ROLE, creating the binding if needed."
            )
            epilog = _(
                "Examples:\n\n  podsec rbac bind alice role=clusterrole edit devs-edit devs\n\n"
                "  podsec rbac bind alice clusterrole view sysview\n\n"
                "  podsec rbac bind --group k8s-auditors clusterrole view auditors\n\n"
                "  podsec-k8s-rbac-bindrole alice role pod-reader readers default"
            )
        cmd = click.command(name, help=text + " " + _BIND_HELP_TAIL, epilog=epilog)(f)
        return cmd

    return wrap


def _run_binding(
    ctx: click.Context,
    unbind: bool,
    *,
    user: str,
    role_type: str,
    role: str,
    binding: str,
    namespace: str | None,
    kubeconfig: str | None,
    kube_context: str | None,
    request_timeout: float,
    is_group: bool,
    any_user: bool,
    json_output: bool,
    force: bool = False,
    for_text: str | None = None,
) -> None:
    from podsec.host.syslog import Syslog
    from podsec.rbac import expiry, grant

    env = context.with_json(ctx, json_output)
    seconds = expiry.parse_for(for_text) if for_text is not None else None
    syslog = Syslog(expiry.TAG, os.environ.get("PODSEC_SYSLOG_SOCKET", "/dev/log"))
    outcome = grant.change(
        env.host,
        unbind=unbind,
        user=user,
        role_type=role_type,
        role=role,
        binding=binding,
        namespace=namespace,
        group=is_group,
        any_user=any_user,
        force=force,
        kubeconfig=kubeconfig,
        context=kube_context,
        api_timeout=request_timeout,
        for_seconds=seconds,
        log=syslog.log,
    )
    syslog.close()
    if seconds is not None:
        for error in syslog.errors:
            output.info(_("warning: {text}").format(text=error))
    if env.json:
        output.emit_json(outcome)
        return
    change = outcome.change
    messages = {
        "created": _("{binding} created with {subject}"),
        "added": _("{subject} added to {binding}"),
        "unchanged": _("{subject} is already in {binding}"),
        "removed": _("{subject} removed from {binding}"),
        "deleted": _("{subject} removed; {binding} had no other subject and was deleted"),
    }
    output.result(
        messages[change.action].format(
            binding=change.target.describe(),
            subject=f"{change.subject.kind} {change.subject.name}",
        )
    )
    if outcome.until:
        output.result(_("until {until}").format(until=outcome.until))
        if not outcome.timer:
            output.info(
                _(
                    "systemd does not run here: the u7s node's supervisor, or `podsec rbac "
                    "expire` from cron, removes it then"
                )
            )


@_binding_command("bind", unbind=False)
def bind_cmd(ctx: click.Context, **kwargs: Any) -> None:
    _run_binding(ctx, False, **kwargs)


@_binding_command("unbind", unbind=True)
def unbind_cmd(ctx: click.Context, **kwargs: Any) -> None:
    _run_binding(ctx, True, **kwargs)


@click.command(
    "expire",
    help=_(
        "Remove from their bindings the subjects bound with --for whose time is over "
        "(/var/lib/podsec/rbac/expiring.json), each removal to syslog. The "
        "podsec-rbac-expire.timer runs it every minute; the u7s node's supervisor too."
    ),
    epilog=_("Examples:\n\n  podsec rbac expire\n\n  podsec rbac expire --json"),
)
@admin_options
@click.option("--json", "json_output", is_flag=True, help=_("Print the result as JSON."))
@click.pass_context
def expire_cmd(
    ctx: click.Context,
    *,
    kubeconfig: str | None,
    kube_context: str | None,
    request_timeout: float,
    json_output: bool,
) -> None:
    from podsec.host.syslog import Syslog
    from podsec.rbac import expiry

    env = context.with_json(ctx, json_output)
    syslog = Syslog(expiry.TAG, os.environ.get("PODSEC_SYSLOG_SOCKET", "/dev/log"))
    done = expiry.expire(
        env.host,
        syslog.log,
        kubeconfig=kubeconfig,
        context=kube_context,
        api_timeout=request_timeout,
    )
    syslog.close()
    for error in syslog.errors:
        output.info(_("warning: {text}").format(text=error))
    if env.json:
        output.emit_json(done)
        return
    for e in done:
        output.result(
            _("{what} removed (until {until})").format(
                what=e.grant.describe(), until=e.grant.expires_at
            )
        )


# --------------------------------------------------------------------------- roles
@click.command(
    "roles",
    help=_(
        "List the roles bound to USER — directly or through the groups in its certificate — "
        "as JSON in the original's shape ({USER: {clusterRoles: [...], roles: {allNamespaces: "
        "[], namespaces: [{NS: [...]}]}}}), each with the command that unbinds it. "
        "showRules (or --show-rules) adds each role's rules."
    ),
    epilog=_(
        "Examples:\n\n  podsec rbac roles alice\n\n  podsec rbac roles alice showRules\n\n"
        "  podsec rbac roles alice --format table\n\n  podsec-k8s-rbac-get-userroles alice showRules"
    ),
)
@click.argument("user")
@click.argument("show_rules_arg", required=False, metavar="[showRules]")
@click.option("--show-rules", is_flag=True, help=_("Add each role's rules."))
@click.option(
    "--group",
    "groups",
    multiple=True,
    metavar="GROUP",
    help=_("Count bindings of GROUP as the user's (default: the groups of its certificate)."),
)
@click.option("--no-groups", is_flag=True, help=_("Only bindings naming the user itself."))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "table"]),
    default="json",
    show_default=True,
    help=_("Output format."),
)
@admin_options
@click.pass_context
def roles_cmd(
    ctx: click.Context,
    *,
    user: str,
    show_rules_arg: str | None,
    show_rules: bool,
    groups: tuple[str, ...],
    no_groups: bool,
    fmt: str,
    kubeconfig: str | None,
    kube_context: str | None,
    request_timeout: float,
) -> None:
    from podsec.errors import UsageError
    from podsec.rbac import roles

    if show_rules_arg is not None:
        if show_rules_arg != "showRules":
            raise UsageError(
                _("invalid second argument {value!r}: only showRules is allowed").format(
                    value=show_rules_arg
                )
            )
        show_rules = True
    env = context.get(ctx)
    doc = roles.for_user(
        env.host,
        user,
        groups,
        no_groups=no_groups,
        show_rules=show_rules,
        kubeconfig=kubeconfig,
        context=kube_context,
        api_timeout=request_timeout,
    )
    if fmt == "json":
        output.emit_json(doc)
        return
    output.table(
        _("roles of {name}").format(name=user),
        [_("namespace"), _("binding"), _("role kind"), _("role"), _("via group")],
        roles.table_rows(doc),
    )


# --------------------------------------------------------------------------- who-can
@click.command(
    "who-can",
    help=_(
        "List the users, groups and service accounts the live bindings allow VERB on "
        "RESOURCE (name[.group][/subresource]): cluster-wide bindings, plus the RoleBindings "
        "of NAMESPACE (-n) or of all namespaces (-A)."
    ),
    epilog=_(
        "Examples:\n\n  podsec rbac who-can delete pods -n default\n\n"
        "  podsec rbac who-can create deployments.apps -A --json\n\n"
        "  podsec rbac who-can get pods/log -n kube-system"
    ),
)
@click.argument("verb")
@click.argument("resource")
@click.option("-n", "--namespace", metavar="NS", help=_("Include the RoleBindings of NS."))
@click.option(
    "-A", "--all-namespaces", is_flag=True, help=_("Include the RoleBindings of every namespace.")
)
@admin_options
@click.option("--json", "json_output", is_flag=True, help=_("Print the result as JSON."))
@click.pass_context
def who_can_cmd(
    ctx: click.Context,
    *,
    verb: str,
    resource: str,
    namespace: str | None,
    all_namespaces: bool,
    kubeconfig: str | None,
    kube_context: str | None,
    request_timeout: float,
    json_output: bool,
) -> None:
    from podsec.rbac import whocan

    env = context.with_json(ctx, json_output)
    grants = whocan.query(
        env.host,
        verb,
        resource,
        namespace,
        all_namespaces=all_namespaces,
        kubeconfig=kubeconfig,
        context=kube_context,
        api_timeout=request_timeout,
    )
    if env.json:
        output.emit_json(grants)
        return
    rows = [
        (
            g.kind,
            f"{g.namespace}/{g.name}" if g.namespace else g.name,
            f"{g.binding_kind} {g.binding_namespace + '/' if g.binding_namespace else ''}{g.binding}",
            f"{g.role_kind} {g.role}",
            ",".join(g.resource_names),
        )
        for g in grants
    ]
    output.table(
        _("who can {verb} {resource}").format(verb=verb, resource=resource),
        [_("kind"), _("subject"), _("binding"), _("role"), _("only names")],
        rows,
    )
