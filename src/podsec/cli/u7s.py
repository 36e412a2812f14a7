"""``podsec u7s``: rootless Kubernetes in the user namespace of u7s-admin."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from podsec.cli import context, output
from podsec.i18n import _


@click.group(help=_("Rootless Kubernetes: every pod runs in the user namespace of u7s-admin."))
def u7s() -> None:
    pass


@u7s.command(
    "run",
    help=_(
        "Run the node (rootlesskit, CRI, kubelet, kube-proxy as u7s-admin) in the foreground "
        "under the built-in supervisor (hosts without systemd)."
    ),
    epilog=_("Examples:\n\n  podsec u7s run\n\n  podsec u7s start   # the same, in the background"),
)
def run_cmd() -> int:
    from podsec.u7s import runtime, supervisor

    env = context.get()
    layout = runtime.layout_for(env.host)
    return supervisor.Supervisor(env.host, layout).run()


@u7s.command(
    "start",
    help=_("Start the built-in supervisor in the background and wait until the namespace is up."),
    epilog=_("Examples:\n\n  podsec u7s start\n\n  podsec u7s status"),
)
def start_cmd() -> None:
    from podsec.u7s import node, runtime

    env = context.get()
    layout = runtime.layout_for(env.host)
    pid = node.start(env.host, layout)
    output.info(_("u7s supervisor running (pid {pid})").format(pid=pid))


@u7s.command(
    "stop",
    help=_("Stop the built-in supervisor and every process of the node."),
    epilog=_("Examples:\n\n  podsec u7s stop"),
)
def stop_cmd() -> None:
    from podsec.u7s import runtime, supervisor

    env = context.get()
    layout = runtime.layout_for(env.host)
    if supervisor.stop(env.host, layout):
        output.info(_("u7s stopped"))
    else:
        output.info(_("u7s was not running"))


@u7s.command(
    "status",
    help=_("Show the node's processes, their host uids and restarts."),
    epilog=_("Examples:\n\n  podsec u7s status\n\n  podsec u7s status --json"),
)
@click.option("--json", "json_output", is_flag=True, help=_("Print JSON."))
@click.pass_context
def status_cmd(ctx: click.Context, json_output: bool) -> int:
    from podsec.u7s import node, runtime

    env = context.with_json(ctx, json_output)
    layout = runtime.layout_for(env.host)
    st = node.status(env.host, layout)
    if env.json:
        output.emit_json(st)
    else:
        rows = [
            (name, s.get("pid") or "-", s.get("uid", "-"), s.get("restarts", 0))
            for name, s in st["services"].items()
        ]
        output.table(
            _("u7s node of {user} (uid {uid})").format(user=layout.user, uid=layout.uid),
            [_("service"), _("pid"), _("host uid"), _("restarts")],
            rows,
        )
    return 0 if st["running"] else 3


@u7s.command(
    "nsenter",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    help=_(
        "Run a command (default: a shell) as u7s-admin inside the node's namespaces, "
        "where ctr, crictl and kubectl see the node's runtime."
    ),
    epilog=_("Examples:\n\n  podsec u7s nsenter\n\n  podsec u7s nsenter ctr -n k8s.io images ls"),
)
@click.option(
    "--timeout", default=30.0, show_default=True, help=_("Seconds to wait for the namespace.")
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def nsenter_cmd(timeout: float, command: tuple[str, ...]) -> int:
    from podsec.u7s import node

    env = context.get()
    return node.nsenter(env.host, list(command), timeout=timeout)


nsenter_main = None  # set below (the original name nsenter_u7s)


@u7s.command("child", hidden=True)
@click.option("--spec", type=click.Path(path_type=Path), required=True)
def child_cmd(spec: Path) -> int:
    from podsec.u7s import child

    return child.main(spec)


@u7s.command("service", hidden=True)
@click.argument("name")
def service_cmd(name: str) -> None:
    from podsec.u7s import runtime, supervisor

    env = context.get()
    layout = runtime.layout_for(env.host)
    argv = supervisor.service_exec(env.host, layout, name)
    full = dict(os.environ)
    full.update(layout.env())
    full["PATH"] = os.environ.get("PATH", full["PATH"])
    sys.stdout.flush()
    os.execvpe(argv[0], argv, full)  # noqa: S606 - the service becomes its program
