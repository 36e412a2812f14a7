"""``podsec lb`` and ``podsec ingress``: HA control plane and service exposure."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import click

from podsec.cli import context, output
from podsec.cli.main import GROUP_HELP
from podsec.i18n import _

if TYPE_CHECKING:
    from podsec.lb.cluster import Cluster


def _load_cluster(path: str) -> Cluster:
    from podsec import readers
    from podsec.errors import NotFoundError
    from podsec.lb import cluster as cl

    text = readers.read_text(Path(path))
    if text is None:
        raise NotFoundError(_("cluster file {file} does not exist").format(file=path))
    return cl.parse(text, path)


@click.group(help=GROUP_HELP["lb"])
def lb() -> None:
    pass


@click.group(help=GROUP_HELP["ingress"])
def ingress() -> None:
    pass


_CLUSTER_HELP = _("The cluster description (YAML: vip, lb_port, control_plane, ingress, vrrp).")


@lb.command(
    "haproxy",
    help=_(
        "Render /etc/haproxy/haproxy.cfg from the cluster description: frontend main "
        "(lb_port) → backend apiserver with /healthz checks, and frontend/backend http → the "
        "ingress nodes. The result is checked with `haproxy -c` before it replaces the live "
        "file (the old one is kept as haproxy.cfg.podsec-bak); a haproxy.cfg podsec did not "
        "write is replaced only with --force."
    ),
    epilog=_(
        "Examples:\n\n  podsec lb haproxy --cluster /etc/podsec/cluster.yaml\n\n"
        "  podsec lb haproxy --cluster cluster.yaml --check\n\n"
        "  podsec lb haproxy --cluster cluster.yaml --output /tmp/haproxy.cfg"
    ),
)
@click.option("--cluster", "cluster_file", required=True, metavar="FILE", help=_CLUSTER_HELP)
@click.option(
    "--output",
    "output_path",
    metavar="PATH",
    help=_("Write here instead of /etc/haproxy/haproxy.cfg (the description goes beside it)."),
)
@click.option("--check", is_flag=True, help=_("Only render and validate; print, write nothing."))
@click.option("--reload", is_flag=True, help=_("Reload haproxy through systemd afterwards."))
@click.option(
    "--force",
    is_flag=True,
    help=_("Replace a haproxy.cfg podsec did not write (kept as haproxy.cfg.podsec-bak)."),
)
@click.pass_context
def haproxy_cmd(
    ctx: click.Context,
    *,
    cluster_file: str,
    output_path: str | None,
    check: bool,
    reload: bool,
    force: bool,
) -> None:
    from podsec.lb import haproxy

    env = context.get(ctx)
    c = _load_cluster(cluster_file)
    if check:
        text = haproxy.render(c)
        haproxy.check(text)
        output.result(text.rstrip("\n"))
        output.info(_("haproxy -c: the configuration is valid"))
        return
    written = haproxy.install(
        env.host, c, output=Path(output_path) if output_path else None, force=force
    )
    _report_written(written.config, written.changed)
    _maybe_reload(env, reload)


def _report_written(path: Path, changed: bool) -> None:
    if changed:
        output.info(_("{file} written (checked with haproxy -c)").format(file=path))
    else:
        output.info(_("{file} is up to date").format(file=path))


def _maybe_reload(env: context.CliEnv, reload: bool) -> None:
    from podsec.lb import haproxy

    if not reload:
        output.info(_("apply it with: systemctl reload haproxy"))
    elif not haproxy.reload(env.host):
        output.info(_("systemd does not run this system; restart haproxy yourself"))


@lb.command(
    "add-server",
    help=_(
        "Add a server to haproxy.cfg: a control-plane node (backend apiserver, port 6443) or, "
        "with --ingress, an ingress node (backend http, the ingress node port). The stored "
        "cluster description is edited and the file re-rendered and re-checked."
    ),
    epilog=_(
        "Examples:\n\n  podsec lb add-server master02 192.168.122.81\n\n"
        "  podsec lb add-server node03 192.168.122.90 --ingress"
    ),
)
@click.argument("name")
@click.argument("address")
@click.option("--port", type=int, help=_("The server's port (default 6443, or the node port)."))
@click.option("--ingress", "is_ingress", is_flag=True, help=_("An ingress node, not a master."))
@click.option("--config", "config_path", metavar="PATH", help=_("haproxy.cfg to edit."))
@click.option("--force", is_flag=True, help=_("Overwrite even if haproxy.cfg was hand-edited."))
@click.option("--reload", is_flag=True, help=_("Reload haproxy through systemd afterwards."))
@click.pass_context
def add_server_cmd(
    ctx: click.Context,
    *,
    name: str,
    address: str,
    port: int | None,
    is_ingress: bool,
    config_path: str | None,
    force: bool,
    reload: bool,
) -> None:
    from podsec.lb import haproxy

    env = context.get(ctx)
    written = haproxy.add_server(
        env.host,
        name,
        address,
        port,
        ingress=is_ingress,
        config=Path(config_path) if config_path else None,
        force=force,
    )
    _report_written(written.config, written.changed)
    _maybe_reload(env, reload)


@lb.command(
    "remove-server",
    help=_("Remove a server (control-plane or ingress node) from haproxy.cfg by name."),
    epilog=_("Examples:\n\n  podsec lb remove-server master02"),
)
@click.argument("name")
@click.option("--config", "config_path", metavar="PATH", help=_("haproxy.cfg to edit."))
@click.option("--force", is_flag=True, help=_("Overwrite even if haproxy.cfg was hand-edited."))
@click.option("--reload", is_flag=True, help=_("Reload haproxy through systemd afterwards."))
@click.pass_context
def remove_server_cmd(
    ctx: click.Context, *, name: str, config_path: str | None, force: bool, reload: bool
) -> None:
    from podsec.lb import haproxy

    env = context.get(ctx)
    written = haproxy.remove_server(
        env.host, name, config=Path(config_path) if config_path else None, force=force
    )
    _report_written(written.config, written.changed)
    _maybe_reload(env, reload)


@lb.command(
    "keepalived",
    help=_(
        "Render /etc/keepalived/keepalived.conf (VRRP instance with authentication, the VIP "
        "and the check_apiserver track script) and /etc/keepalived/check_apiserver.sh, both "
        "checked with `keepalived -t`. One node is MASTER with priority 101, the others BACKUP "
        "with 100."
    ),
    epilog=_(
        "Examples:\n\n"
        "  podsec lb keepalived --cluster cluster.yaml --state MASTER --priority 101 "
        "--interface eth0\n\n"
        "  podsec lb keepalived --cluster cluster.yaml --state BACKUP --priority 100 "
        "--interface br0"
    ),
)
@click.option("--cluster", "cluster_file", required=True, metavar="FILE", help=_CLUSTER_HELP)
@click.option(
    "--state",
    type=click.Choice(["MASTER", "BACKUP"], case_sensitive=False),
    required=True,
    help=_("This node's initial VRRP state."),
)
@click.option("--priority", type=int, required=True, help=_("VRRP priority 1–254 (101/100)."))
@click.option("--interface", required=True, metavar="IF", help=_("Interface carrying the VIP."))
@click.option(
    "--output",
    "output_path",
    metavar="PATH",
    help=_("Write keepalived.conf here (check_apiserver.sh goes beside it)."),
)
@click.option("--check", is_flag=True, help=_("Only render and validate; print, write nothing."))
@click.option("--no-check", is_flag=True, help=_("Do not run keepalived -t (not recommended)."))
@click.pass_context
def keepalived_cmd(
    ctx: click.Context,
    *,
    cluster_file: str,
    state: str,
    priority: int,
    interface: str,
    output_path: str | None,
    check: bool,
    no_check: bool,
) -> None:
    from podsec.lb import keepalived

    env = context.get(ctx)
    node = keepalived.check_node(state, priority, interface)  # arguments first: exit 2
    c = _load_cluster(cluster_file)
    if check:
        conf, script = keepalived.render_config(c, node), keepalived.render_script(c)
        keepalived.check(conf, script, node, live=env.host.is_live)
        output.result(conf.rstrip("\n"))
        output.info(_("keepalived -t: the configuration is valid"))
        return
    written = keepalived.install(
        env.host, c, node, config=Path(output_path) if output_path else None, validate=not no_check
    )
    if written.changed:
        output.info(
            _("{conf} and {script} written").format(conf=written.config, script=written.script)
        )
    else:
        output.info(_("{file} is up to date").format(file=written.config))


@lb.command(
    "check-apiserver",
    help=_(
        "What check_apiserver.sh checks, in Python: haproxy relays the API on this node, and "
        "through the VIP when this node holds it. Exit 0 when it does, 1 when not."
    ),
    epilog=_(
        "Examples:\n\n  podsec lb check-apiserver --cluster /etc/haproxy/podsec-cluster.yaml\n\n"
        "  podsec lb check-apiserver --vip 10.150.0.160 --port 8443 --json"
    ),
)
@click.option("--cluster", "cluster_file", metavar="FILE", help=_CLUSTER_HELP)
@click.option("--vip", metavar="ADDR", help=_("The VIP (instead of --cluster)."))
@click.option("--port", type=int, default=8443, show_default=True, help=_("haproxy's API port."))
@click.option("--local", metavar="ADDR", help=_("Local address haproxy listens on."))
@click.option("--timeout", type=float, default=2.0, show_default=True, help=_("Seconds per try."))
@click.option("--json", "json_output", is_flag=True, help=_("Print the result as JSON."))
@click.pass_context
def check_apiserver_cmd(
    ctx: click.Context,
    *,
    cluster_file: str | None,
    vip: str | None,
    port: int,
    local: str | None,
    timeout: float,
    json_output: bool,
) -> int:
    from podsec.errors import UsageError
    from podsec.lb import cluster as cl
    from podsec.lb import health

    env = context.with_json(ctx, json_output)
    if cluster_file:
        c = _load_cluster(cluster_file)
    elif vip:
        from podsec.errors import ValidationError

        try:  # bad arguments exit 2
            cl.check_vip(vip, "--vip")
            cl.check_port(port, "--port")
            if local is not None:
                cl.check_address(local, "--local")
        except ValidationError as exc:
            raise UsageError(exc.message) from None
        c = cl.parse_data(
            {"vip": vip, "lb_port": port, "control_plane": [{"name": "x", "address": "x.invalid"}]}
        )
    else:
        raise UsageError(_("give --cluster FILE or --vip ADDR"))
    result = health.check(c, local=local, timeout=timeout)
    if env.json:
        output.emit_json(result)
    elif result.ok:
        output.result(health.summary(result))
    else:
        output.info(f"*** {health.summary(result)}")
    return 0 if result.ok else 1


@ingress.command(
    "prepare",
    help=_(
        "Rewrite an ingress-nginx deploy manifest for a cluster that uses registry.local: "
        "images re-pointed to the registry (digests dropped) and a fixed nodePort on the "
        "controller Service's http port. Comments and layout are kept. Prints the podman "
        "commands that put the images into the registry (or runs them with --push)."
    ),
    epilog=_(
        "Examples:\n\n  podsec ingress prepare ingress-nginx-deploy.yaml\n\n"
        "  podsec ingress prepare deploy.yaml --node-port 31080 --output - > local.yaml\n\n"
        "  podsec ingress prepare deploy.yaml --push --sign-by admin@example.org"
    ),
)
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("--node-port", type=int, default=31000, show_default=True, help=_("The nodePort."))
@click.option(
    "--registry", default="registry.local", show_default=True, help=_("Registry[/path] to use.")
)
@click.option(
    "--output",
    "output_path",
    metavar="PATH",
    help=_("Write here ('-': stdout); default: in place."),
)
@click.option("--push", is_flag=True, help=_("Run the podman tag/push commands too."))
@click.option("--sign-by", metavar="EMAIL", help=_("Sign the pushed images with this GPG key."))
@click.option("--json", "json_output", is_flag=True, help=_("Print the result as JSON."))
@click.pass_context
def prepare_cmd(
    ctx: click.Context,
    *,
    manifest: str,
    node_port: int,
    registry: str,
    output_path: str | None,
    push: bool,
    sign_by: str | None,
    json_output: bool,
) -> None:
    from podsec.lb import ingress as ing

    env = context.with_json(ctx, json_output)

    def written(target: Path, changed: bool) -> None:
        msg = _("{file} written") if changed else _("{file} is up to date")
        output.info(msg.format(file=target))

    with output.progress(push) as progress:
        res = ing.prepare_file(
            manifest,
            node_port=node_port,
            registry=registry,
            output=None if output_path == "-" else Path(output_path or manifest),
            push_images=push,
            sign_by=sign_by,
            written=written,
            progress=progress,
        )
    prepared, cmds = res.prepared, res.commands
    if res.written is None:
        click.echo(prepared.text, nl=False)
    if env.json:
        output.emit_json(res)
        return
    output.info(
        _("{svc}: http nodePort {port}").format(svc=prepared.service, port=prepared.node_port)
    )
    if not push and cmds:
        output.info(_("put the images into the registry with:"))
        # commands go to stdout unless the manifest does
        emit = output.info if output_path == "-" else output.result
        for argv in cmds:
            emit(shlex.join(argv))
