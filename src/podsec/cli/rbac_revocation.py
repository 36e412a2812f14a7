"""``podsec rbac revoke | enforce-revocation | authz-serve``: taking a certificate's power
away, and the API server's webhook that refuses revoked certificates.

Registered on the ``rbac`` group by podsec.cli.rbac.
"""

from __future__ import annotations

import click

from podsec.cli import context, output
from podsec.cli.kube_options import admin_options
from podsec.i18n import _


# --------------------------------------------------------------------------- revoke
@click.command(
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
    help=_(
        "No certificate is at hand: record every still valid certificate podsec issued to "
        "USER (issued.json) and remove USER from every binding."
    ),
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
    for serial in res.serials:
        output.result(
            _("certificate CN={cn} serial {serial} recorded in {path}").format(
                cn=res.cn, serial=serial, path=res.record_file
            )
        )


# --------------------------------------------------------------------------- revocation webhook
@click.command(
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
    from podsec.rbac import enforce

    env = context.with_json(ctx, json_output)
    res = enforce.enforce(
        env.host,
        address=address,
        port=port,
        manifest=None if no_manifest else manifest,
        start=not no_start,
    )
    if env.json:
        output.emit_json(res)
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


@click.command(
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
