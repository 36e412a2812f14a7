"""``podsec rbac``: Kubernetes users, certificates, kubeconfigs and role bindings.

The core (podsec.rbac) is imported inside each command: ``roles`` must start fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from podsec.cli import context, output
from podsec.cli.main import legacy
from podsec.i18n import _

if TYPE_CHECKING:
    from podsec.host.paths import Host
    from podsec.kube.kubeconfig import Connection
    from podsec.rbac.issue import Issued

F = TypeVar("F", bound=Callable[..., Any])


@click.group(
    help=_("Kubernetes RBAC users: certificates, kubeconfigs, role bindings."),
    epilog=_(
        "Examples:\n\n  podsec rbac create-user alice\n\n  podsec rbac create-kubeconfig alice\n\n"
        "  podsec rbac bind alice role=clusterrole edit devs-edit devs\n\n"
        "  podsec rbac roles alice --format table"
    ),
)
def rbac() -> None:
    pass


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


def _issue_options(func: F) -> F:
    """--timeout / --json of the commands that wait for a signed certificate."""
    func = click.option("--json", "json_output", is_flag=True, help=_("Print the result as JSON."))(
        func
    )
    return click.option(
        "--timeout",
        type=click.FloatRange(min=1),
        default=60.0,
        show_default=True,
        metavar="SECONDS",
        help=_("How long to wait for the signed certificate."),
    )(func)


def _admin(host: Host, kubeconfig: str | None, kube_context: str | None) -> Connection:
    from podsec.kube import kubeconfig as kc

    return kc.admin_connection(kubeconfig, host, kube_context)


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    from podsec.rbac.certs import parse_duration

    return parse_duration(value)


# --------------------------------------------------------------------------- create-user
@rbac.command(
    "create-user",
    help=_(
        "Create (or complete) the Linux account of an RBAC user: groups podman and k8s, "
        "home directory 0770, ~/.kube 0700 owned USER:k8s. An existing user gets only what "
        "is missing."
    ),
    epilog=_("Examples:\n\n  podsec rbac create-user alice\n\n  podsec-k8s-rbac-create-user alice"),
)
@click.argument("user")
@click.option("--json", "json_output", is_flag=True, help=_("Print the result as JSON."))
@click.pass_context
def create_user_cmd(ctx: click.Context, user: str, json_output: bool) -> None:
    from podsec.rbac import account

    env = context.with_json(ctx, json_output)
    res = account.create_user(env.host, user)
    if env.json:
        output.emit_json(res)
    elif res.created:
        output.result(_("user {name} created ({home})").format(name=user, home=res.home))
    elif res.changed:
        output.result(_("user {name} completed").format(name=user))
    else:
        output.result(_("user {name} is already set up").format(name=user))


# --------------------------------------------------------------------------- create-kubeconfig
def _issued_lines(res: Issued) -> None:
    output.result(
        _("{path}: context {context}, certificate CN={user} O={groups}, valid until {date}").format(
            path=res.path,
            context=res.context,
            user=res.user,
            groups=",".join(res.groups),
            date=res.not_after.strftime("%Y-%m-%d %H:%M UTC"),
        )
    )


def _expiration_warning(res: Issued) -> None:
    """On stderr in every output mode: the certificate lives longer or shorter than asked."""
    from podsec.rbac.certs import human_duration

    if not res.expiration_honoured:
        assert res.requested_seconds is not None  # honoured when nothing was asked
        output.info(
            _(
                "warning: the cluster signed the certificate for {got} instead of the requested "
                "{want} (Kubernetes < 1.22 ignores expirationSeconds; the signer's "
                "--cluster-signing-duration decides)"
            ).format(
                got=human_duration(res.lifetime_seconds),
                want=human_duration(res.requested_seconds),
            )
        )


@rbac.command(
    "create-kubeconfig",
    help=_(
        "Give USER a client certificate signed by the cluster (CSR with CN=USER and O=GROUP "
        "for each group, default k8s) and write ~USER/.kube/config with the context "
        "USER@CLUSTER; other contexts in that file are kept. REMOTE_USER (default u7s-admin) "
        "is the cluster-host account the CA is copied from with scp when neither the admin "
        "kubeconfig nor /etc/kubernetes/pki/ca.crt provides it."
    ),
    epilog=_(
        "Examples:\n\n  podsec rbac create-kubeconfig alice\n\n"
        "  podsec rbac create-kubeconfig alice@root devs k8s --expiration 90d\n\n"
        "  podsec-k8s-rbac-create-kubeconfig alice"
    ),
)
@click.argument("user_spec", metavar="USER[@REMOTE_USER]")
@click.argument("groups", nargs=-1, metavar="[GROUP]...")
@admin_options
@click.option(
    "--key-type",
    type=click.Choice(["rsa", "ecdsa"]),
    default="rsa",
    show_default=True,
    help=_("Private key algorithm (RSA 2048 or ECDSA P-256)."),
)
@click.option(
    "--expiration",
    metavar="DURATION",
    default="365d",
    show_default=True,
    callback=_duration,
    help=_("Requested certificate lifetime (600s, 12h, 90d, 1y; Kubernetes >= 1.22)."),
)
@_issue_options
@click.pass_context
def create_kubeconfig_cmd(
    ctx: click.Context,
    *,
    user_spec: str,
    groups: tuple[str, ...],
    kubeconfig: str | None,
    kube_context: str | None,
    request_timeout: float,
    key_type: str,
    expiration: int | None,
    timeout: float,
    json_output: bool,
) -> None:
    from podsec.rbac import issue

    env = context.with_json(ctx, json_output)
    issue.split_user(user_spec)  # a bad name or remote login: refused before the API is asked
    admin = _admin(env.host, kubeconfig, kube_context)
    with output.progress(not env.json) as prog:
        res = issue.create_kubeconfig(
            env.host,
            admin,
            user_spec,
            groups,
            key_type=key_type,
            expiration=expiration,
            timeout=timeout,
            api_timeout=request_timeout,
            progress=prog,
        )
    _expiration_warning(res)
    if env.json:
        output.emit_json(res)
    else:
        _issued_lines(res)


# --------------------------------------------------------------------------- renew
@rbac.command(
    "renew",
    help=_(
        "Issue USER a fresh certificate with the same name, groups and key type and update "
        "~USER/.kube/config. With --within, only when the current one expires that soon."
    ),
    epilog=_(
        "Examples:\n\n  podsec rbac renew alice\n\n  podsec rbac renew alice --within 30d --expiration 1y"
    ),
)
@click.argument("user")
@admin_options
@click.option(
    "--expiration",
    metavar="DURATION",
    callback=_duration,
    help=_("Lifetime of the new certificate (default: that of the current one)."),
)
@click.option(
    "--within",
    metavar="DURATION",
    callback=_duration,
    help=_("Renew only if the current certificate expires within DURATION."),
)
@_issue_options
@click.pass_context
def renew_cmd(
    ctx: click.Context,
    *,
    user: str,
    kubeconfig: str | None,
    kube_context: str | None,
    request_timeout: float,
    expiration: int | None,
    within: int | None,
    timeout: float,
    json_output: bool,
) -> None:
    from podsec.rbac import issue

    env = context.with_json(ctx, json_output)
    admin = _admin(env.host, kubeconfig, kube_context)
    with output.progress(not env.json) as prog:
        res = issue.renew(
            env.host,
            admin,
            user,
            expiration=expiration,
            within=within,
            timeout=timeout,
            api_timeout=request_timeout,
            progress=prog,
        )
    if res.issued is not None:
        _expiration_warning(res.issued)
    if env.json:
        output.emit_json(res)
    elif res.issued is not None:
        _issued_lines(res.issued)
    else:
        output.result(
            _("{name}: certificate valid until {date}, not renewed").format(
                name=user, date=res.not_after.strftime("%Y-%m-%d %H:%M UTC")
            )
        )


# --------------------------------------------------------------------------- remoteplace
@rbac.command(
    "create-remoteplace",
    help=_(
        "Set up this workstation: copy ~/.kube/config of your account on the cluster host "
        "ADDRESS with scp (key or agent authentication), point it at ADDRESS and merge it "
        "into your local ~/.kube/config (0600)."
    ),
    epilog=_(
        "Examples:\n\n  podsec rbac create-remoteplace 192.168.10.5\n\n"
        "  podsec rbac create-remoteplace 192.168.10.5 --user alice --port 2222\n\n"
        "  podsec-k8s-rbac-create-remoteplace 192.168.10.5"
    ),
)
@click.argument("address")
@click.option(
    "--user",
    "remote_user",
    metavar="LOGIN",
    help=_("Login on the cluster host (default: your login name)."),
)
@click.option("--port", type=click.IntRange(1, 65535), help=_("ssh port of the cluster host."))
@click.option(
    "--remote-path",
    default=".kube/config",
    show_default=True,
    help=_("The kubeconfig on the cluster host."),
)
@click.option("--identity", metavar="FILE", help=_("ssh private key to log in with."))
@click.option(
    "--ssh-option",
    "ssh_options",
    multiple=True,
    metavar="KEY=VALUE",
    help=_("Extra ssh option (repeatable)."),
)
@click.option(
    "--keep-server", is_flag=True, help=_("Keep the server address found in the copied kubeconfig.")
)
@click.option("--json", "json_output", is_flag=True, help=_("Print the result as JSON."))
@click.pass_context
def create_remoteplace_cmd(
    ctx: click.Context,
    *,
    address: str,
    remote_user: str | None,
    port: int | None,
    remote_path: str,
    identity: str | None,
    ssh_options: tuple[str, ...],
    keep_server: bool,
    json_output: bool,
) -> None:
    from podsec.rbac import remoteplace

    env = context.with_json(ctx, json_output)
    res = remoteplace.create_remoteplace(
        address,
        remote_user=remote_user,
        port=port,
        remote_path=remote_path,
        identity=identity,
        options=ssh_options,
        keep_server=keep_server,
    )
    if env.json:
        output.emit_json(res)
    else:
        output.result(
            _("{path}: context {context} from {source}, server {server}").format(
                path=res.path, context=res.context, source=res.source, server=", ".join(res.servers)
            )
        )


# --------------------------------------------------------------------------- bind / unbind
_BIND_HELP_TAIL = _(
    "ROLE_TYPE is role (a Role in NAMESPACE), role=clusterrole (a ClusterRole granted in "
    "NAMESPACE) or clusterrole (cluster-wide; no NAMESPACE). BINDING is the RoleBinding or "
    "ClusterRoleBinding shared by all its subjects."
)


def _binding_command(name: str, unbind: bool) -> Callable[[F], F]:
    def wrap(func: F) -> F:
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
        cmd = rbac.command(name, help=text + " " + _BIND_HELP_TAIL, epilog=epilog)(f)
        return cast(F, cmd)

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
) -> None:
    from podsec.rbac import grant

    env = context.with_json(ctx, json_output)
    change = grant.change(
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
    )
    if env.json:
        output.emit_json(change)
        return
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


@_binding_command("bind", unbind=False)
def bind_cmd(ctx: click.Context, **kwargs: Any) -> None:
    _run_binding(ctx, False, **kwargs)


@_binding_command("unbind", unbind=True)
def unbind_cmd(ctx: click.Context, **kwargs: Any) -> None:
    _run_binding(ctx, True, **kwargs)


# --------------------------------------------------------------------------- roles
@rbac.command(
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


# --------------------------------------------------------------------------- revoke
@rbac.command(
    "revoke",
    help=_(
        "Refuse everything USER's certificate can do: record its CN and serial in "
        "/var/lib/podsec/rbac/revoked.json, which the API server's authorization webhook "
        "reads (podsec rbac enforce-revocation; every request of USER is denied at once, "
        "through every group, until the certificate expires — other members of its groups "
        "keep their access), and remove USER from every binding. Group bindings are not "
        "touched. The audit watcher reports any later use of the certificate."
    ),
    epilog=_(
        "Examples:\n\n  podsec rbac revoke alice\n\n  podsec rbac revoke alice --cert alice.crt"
    ),
)
@click.argument("user")
@admin_options
@click.option(
    "--cert",
    "cert_file",
    type=click.Path(dir_okay=False),
    help=_("The certificate to revoke (default: the one in ~USER/.kube/config)."),
)
@click.option(
    "--no-cert",
    is_flag=True,
    help=_("No certificate is at hand: only remove USER from every binding (nothing recorded)."),
)
@click.option("--json", "json_output", is_flag=True, help=_("Print the result as JSON."))
@click.pass_context
def revoke_cmd(
    ctx: click.Context,
    *,
    user: str,
    kubeconfig: str | None,
    kube_context: str | None,
    request_timeout: float,
    cert_file: str | None,
    no_cert: bool,
    json_output: bool,
) -> None:
    from podsec.rbac import revoke

    env = context.with_json(ctx, json_output)
    res = revoke.revoke_user(
        env.host,
        user,
        cert_file=cert_file,
        no_cert=no_cert,
        kubeconfig=kubeconfig,
        context=kube_context,
        api_timeout=request_timeout,
    )
    for warning in res.warnings:
        output.info(_("warning: {text}").format(text=warning))
    if env.json:
        output.emit_json(res)
        return
    for c in res.changes:
        output.result(
            _("{subject} removed from {binding}{deleted}").format(
                subject=f"{c.subject.kind} {c.subject.name}",
                binding=c.target.describe(),
                deleted=_(" (deleted: no subject left)") if c.action == "deleted" else "",
            )
        )
    if res.record_file:
        output.result(
            _("certificate CN={cn} serial {serial} recorded in {path}").format(
                cn=res.cn, serial=res.serial, path=res.record_file
            )
        )


# --------------------------------------------------------------------------- certs
@rbac.command(
    "certs",
    help=_(
        "List every client certificate podsec issued — from its record "
        "(/var/lib/podsec/rbac/issued.json, written by create-kubeconfig and renew) and the "
        "cluster's CertificateSigningRequests that hold one — with user, groups, serial, "
        "not-after, revoked or not, and when the API server's audit log last saw its user "
        "while it was valid (the log names users, not certificates). USER... narrows the list."
    ),
    epilog=_(
        "Examples:\n\n  podsec rbac certs\n\n  podsec rbac certs alice --json\n\n"
        "  podsec rbac certs --no-cluster --audit-log /var/log/kube-audit.log"
    ),
)
@click.argument("users", nargs=-1, metavar="[USER]...")
@admin_options
@click.option(
    "--no-cluster", is_flag=True, help=_("Only podsec's record: do not list the cluster's CSRs.")
)
@click.option(
    "--audit-log",
    default="/etc/kubernetes/audit/audit.log",
    show_default=True,
    metavar="FILE",
    help=_("The API server's audit log (its rotated copies are read too)."),
)
@click.option("--json", "json_output", is_flag=True, help=_("Print the result as JSON."))
@click.pass_context
def certs_cmd(
    ctx: click.Context,
    *,
    users: tuple[str, ...],
    kubeconfig: str | None,
    kube_context: str | None,
    request_timeout: float,
    no_cluster: bool,
    audit_log: str,
    json_output: bool,
) -> None:
    from podsec.rbac import inventory

    env = context.with_json(ctx, json_output)
    found = inventory.list_certs(
        env.host,
        users,
        cluster=not no_cluster,
        audit_log=audit_log,
        kubeconfig=kubeconfig,
        context=kube_context,
        api_timeout=request_timeout,
    )
    if env.json:
        output.emit_json(found)
        return
    output.table(
        _("client certificates"),
        [_("user"), _("groups"), _("serial"), _("not after"), _("state"), _("last seen")],
        [
            (
                c.user,
                ",".join(c.groups),
                c.serial,
                c.not_after[:19],
                _("revoked") if c.revoked else _("expired") if c.expired else _("valid"),
                c.last_seen[:19] or "-",
            )
            for c in found
        ],
    )


# --------------------------------------------------------------------------- who-can
@rbac.command(
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


# --------------------------------------------------------------------------- revocation webhook
@rbac.command(
    "enforce-revocation",
    help=_(
        "Make this control-plane host's API server refuse revoked certificates: set up the "
        "podsec authorization webhook (serving certificate made here, its CA pinned in "
        "/etc/kubernetes/podsec-authz/webhook.kubeconfig), the podsec-rbac-authz.service unit "
        "that runs it, and kube-apiserver's static pod manifest (--authorization-mode with "
        "Webhook before RBAC, the webhook flags, the kubeconfig mounted). A webhook that is "
        "down is 'no opinion' to Kubernetes: RBAC decides alone (fail-open) — watch it with "
        "podsec monitor check-authz. Rootless nodes get all this from podsec u7s kubeadm init."
    ),
    epilog=_(
        "Examples:\n\n  podsec rbac enforce-revocation\n\n"
        "  podsec rbac enforce-revocation --no-manifest --json   # print the flags only"
    ),
)
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help=_("Address the webhook listens on and the API server dials."),
)
@click.option(
    "--port", type=click.IntRange(1, 65535), default=9444, show_default=True, help=_("Its port.")
)
@click.option(
    "--manifest",
    default="/etc/kubernetes/manifests/kube-apiserver.yaml",
    show_default=True,
    metavar="FILE",
    help=_(
        "kube-apiserver's static pod manifest to edit (a copy is kept in /var/lib/podsec/rbac)."
    ),
)
@click.option(
    "--no-manifest",
    is_flag=True,
    help=_("Edit no manifest: print the flags to give kube-apiserver yourself."),
)
@click.option("--no-start", is_flag=True, help=_("Install the unit but do not start it."))
@click.option("--json", "json_output", is_flag=True, help=_("Print the result as JSON."))
@click.pass_context
def enforce_revocation_cmd(
    ctx: click.Context,
    *,
    address: str,
    port: int,
    manifest: str,
    no_manifest: bool,
    no_start: bool,
    json_output: bool,
) -> None:
    import ipaddress

    from podsec.errors import UsageError
    from podsec.rbac import enforce

    env = context.with_json(ctx, json_output)
    try:
        ipaddress.ip_address(address)
    except ValueError as exc:
        raise UsageError(_("--address {value}: not an IP address").format(value=address)) from exc
    res = enforce.enforce(
        env.host,
        address=address,
        port=port,
        manifest=None if no_manifest else manifest,
        start=not no_start,
    )
    if env.json:
        output.emit_json(
            {
                "url": res.url,
                "kubeconfig": res.kubeconfig,
                "apiserverArgs": [f"--{k}={v}" for k, v in res.args.items()],
                "manifest": res.manifest,
                "manifestChanged": res.manifest_changed,
                "backup": res.backup,
                "unit": res.unit,
                "started": res.started,
            }
        )
        return
    output.result(_("webhook {url}, configuration {path}").format(url=res.url, path=res.kubeconfig))
    if res.manifest:
        output.result(
            _("{path} updated (previous copy {backup})").format(
                path=res.manifest, backup=res.backup
            )
            if res.manifest_changed
            else _("{path} already asks the webhook").format(path=res.manifest)
        )
    else:
        output.result(_("kube-apiserver flags:"))
        for k, v in res.args.items():
            output.result(f"  --{k}={v}")
    if not res.started:
        output.info(
            _(
                "{unit} installed; systemd does not run here: start `podsec rbac authz-serve`"
            ).format(unit=res.unit)
        )


@rbac.command(
    "authz-serve",
    help=_(
        "Run the revocation webhook in the foreground (what podsec-rbac-authz.service and the "
        "u7s node's supervisor run): deny every request of a user whose certificate is in "
        "/var/lib/podsec/rbac/revoked.json and not expired, no opinion otherwise."
    ),
    epilog=_("Examples:\n\n  podsec rbac authz-serve\n\n  podsec rbac authz-serve --port 9555"),
)
@click.option("--address", default="127.0.0.1", show_default=True, help=_("Listen address."))
@click.option(
    "--port", type=click.IntRange(1, 65535), default=9444, show_default=True, help=_("Its port.")
)
@click.pass_context
def authz_serve_cmd(ctx: click.Context, address: str, port: int) -> None:
    from podsec.webhook import authz

    env = context.get(ctx)
    server = authz.host_webhook(env.host, address=address, port=port)
    output.info(_("serving {url}").format(url=authz.url(address, port)))
    server.serve_forever()


# --------------------------------------------------------------------------- original names
create_user_main = legacy("podsec.cli.rbac:create_user_cmd", "podsec-k8s-rbac-create-user")
create_kubeconfig_main = legacy(
    "podsec.cli.rbac:create_kubeconfig_cmd", "podsec-k8s-rbac-create-kubeconfig"
)
create_remoteplace_main = legacy(
    "podsec.cli.rbac:create_remoteplace_cmd", "podsec-k8s-rbac-create-remoteplace"
)
bindrole_main = legacy("podsec.cli.rbac:bind_cmd", "podsec-k8s-rbac-bindrole")
unbindrole_main = legacy("podsec.cli.rbac:unbind_cmd", "podsec-k8s-rbac-unbindrole")
get_userroles_main = legacy("podsec.cli.rbac:roles_cmd", "podsec-k8s-rbac-get-userroles")
