"""``podsec rbac``: Kubernetes users, certificates, kubeconfigs and role bindings.

The core (podsec.rbac) is imported inside each command: ``roles`` must start fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from podsec.cli import context, output
from podsec.cli.kube_options import admin_connection, admin_options
from podsec.cli.main import GROUP_HELP, legacy
from podsec.i18n import _

if TYPE_CHECKING:
    from podsec.rbac.issue import Issued

F = TypeVar("F", bound=Callable[..., Any])


@click.group(
    help=GROUP_HELP["rbac"],
    epilog=_(
        "Examples:\n\n  podsec rbac create-user alice\n\n  podsec rbac create-kubeconfig alice\n\n"
        "  podsec rbac bind alice role=clusterrole edit devs-edit devs\n\n"
        "  podsec rbac roles alice --format table"
    ),
)
def rbac() -> None:
    pass


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
    if res.admin_config:
        output.info(
            _("context {context} added to {path} (kubectl --context {context})").format(
                context=res.context, path=res.admin_config
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
        "USER@CLUSTER; other contexts in that file are kept. As the seed, USER.key, USER.csr "
        "and USER.crt are left in ~USER/.kube and the context is added to the admin's own "
        "kubeconfig (its current context kept; not into kubeadm's admin.conf). REMOTE_USER "
        "(default u7s-admin) is the cluster-host account the CA is copied from with scp when "
        "neither the admin kubeconfig nor /etc/kubernetes/pki/ca.crt provides it."
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
@click.option(
    "--no-admin-context",
    is_flag=True,
    help=_("Do not add the user's context to the admin's kubeconfig."),
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
    no_admin_context: bool,
) -> None:
    from podsec.rbac import issue

    env = context.with_json(ctx, json_output)
    issue.split_user(user_spec)  # a bad name or remote login: refused before the API is asked
    admin = admin_connection(env.host, kubeconfig, kube_context)
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
            admin_context=not no_admin_context,
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
    admin = admin_connection(env.host, kubeconfig, kube_context)
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


# --------------------------------------------------------------------------- the other groups
def _register() -> None:
    from podsec.cli import rbac_access, rbac_revocation, rbac_suggest

    for command in (
        rbac_access.bind_cmd,
        rbac_access.unbind_cmd,
        rbac_access.expire_cmd,
        rbac_access.roles_cmd,
        rbac_access.who_can_cmd,
        rbac_revocation.revoke_cmd,
        rbac_revocation.enforce_revocation_cmd,
        rbac_revocation.authz_serve_cmd,
        rbac_suggest.suggest_cmd,
        rbac_suggest.unused_cmd,
    ):
        rbac.add_command(command)


_register()


# --------------------------------------------------------------------------- original names
create_user_main = legacy("podsec.cli.rbac:create_user_cmd", "podsec-k8s-rbac-create-user")
create_kubeconfig_main = legacy(
    "podsec.cli.rbac:create_kubeconfig_cmd", "podsec-k8s-rbac-create-kubeconfig"
)
create_remoteplace_main = legacy(
    "podsec.cli.rbac:create_remoteplace_cmd", "podsec-k8s-rbac-create-remoteplace"
)
bindrole_main = legacy("podsec.cli.rbac_access:bind_cmd", "podsec-k8s-rbac-bindrole")
unbindrole_main = legacy("podsec.cli.rbac_access:unbind_cmd", "podsec-k8s-rbac-unbindrole")
get_userroles_main = legacy("podsec.cli.rbac_access:roles_cmd", "podsec-k8s-rbac-get-userroles")
