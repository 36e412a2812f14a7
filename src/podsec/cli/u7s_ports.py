"""``podsec u7s ports``: RootlessKit port forwards out of u7s-admin's namespace.

``add``/``remove``/``list`` are the original ``nsenter_u7s rootlessctl add-ports
0.0.0.0:P:P/tcp`` (and friends) through RootlessKit's API; ``sync`` is the port-sync
controller. The group is attached to ``podsec u7s`` by cli/u7s.py (``u7s.add_command(ports)``);
``python -m podsec.cli.u7s_ports`` runs it on its own.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from podsec.cli import context, output
from podsec.i18n import _

if TYPE_CHECKING:
    from podsec.u7s.rootlesskit_api import RootlesskitApi

_SOCKET_HELP = _("RootlessKit's API socket (default: u7s-admin's usernetes/rootlesskit/api.sock).")
_STATE_HELP = _("The file recording podsec's forwards (default: beside RootlessKit's state).")


def _api(ctx: click.Context, socket: str | None, state: str | None) -> tuple[RootlesskitApi, Path]:
    from podsec.u7s import portsync
    from podsec.u7s.rootlesskit_api import RootlesskitApi, default_socket

    env = context.get(ctx)
    sock = Path(socket) if socket else default_socket(env.host, env.settings.u7s_user)
    state_path = Path(state) if state else portsync.default_state_path(sock)
    return RootlesskitApi(sock), state_path


def _common(func: Any) -> Any:
    func = click.option("--state", metavar="FILE", help=_STATE_HELP)(func)
    return click.option("--socket", metavar="PATH", help=_SOCKET_HELP)(func)


@click.group(
    help=_(
        "Forward ports out of u7s-admin's namespace (RootlessKit): NodePort and "
        "LoadBalancer services automatically with `sync`, others by hand."
    )
)
def ports() -> None:
    pass


@ports.command(
    "add",
    help=_(
        "Forward a port from the host into the namespace, like `nsenter_u7s rootlessctl "
        "add-ports 0.0.0.0:P:P/tcp`. SPEC is [IP:][HOST_PORT:]PORT[/tcp|udp]; the forward is "
        "kept (and restored after a RootlessKit restart by `sync`) until `ports remove`."
    ),
    epilog=_(
        "Examples:\n\n  podsec u7s ports add 31000\n\n"
        "  podsec u7s ports add 0.0.0.0:31280:31280/tcp\n\n  podsec u7s ports add 6053:53/udp"
    ),
)
@click.argument("specs", nargs=-1, required=True, metavar="SPEC...")
@_common
@click.pass_context
def add_cmd(
    ctx: click.Context, specs: tuple[str, ...], socket: str | None, state: str | None
) -> None:
    from podsec.u7s import portsync

    forwards = [portsync.parse_spec(s) for s in specs]  # all valid before any is added
    api, st = _api(ctx, socket, state)
    for fwd in forwards:
        entry = portsync.add(api, st, fwd)
        output.result(f"{entry.id}\t{entry.forward.spec()}")


@ports.command(
    "remove",
    help=_("Remove forwards by id (see `ports list`) or by SPEC."),
    epilog=_("Examples:\n\n  podsec u7s ports remove 31000\n\n  podsec u7s ports remove 7"),
)
@click.argument("what", nargs=-1, required=True, metavar="ID|SPEC...")
@_common
@click.pass_context
def remove_cmd(
    ctx: click.Context, what: tuple[str, ...], socket: str | None, state: str | None
) -> None:
    from podsec.u7s import portsync

    api, st = _api(ctx, socket, state)
    for item in what:
        entry = portsync.remove(api, st, item)
        output.result(f"{entry.id}\t{entry.forward.spec()}")


@ports.command(
    "list",
    help=_(
        "List RootlessKit's forwards and who owns each: a Service (ns/name, kept by `sync`), "
        "manual, or the node runtime's own (empty)."
    ),
    epilog=_("Examples:\n\n  podsec u7s ports list\n\n  podsec u7s ports list --json"),
)
@_common
@click.option("--json", "json_output", is_flag=True, help=_("Print the list as JSON."))
@click.pass_context
def list_cmd(ctx: click.Context, socket: str | None, state: str | None, json_output: bool) -> None:
    from podsec.u7s import portsync

    env = context.with_json(ctx, json_output)
    api, st = _api(ctx, socket, state)
    entries = portsync.list_ports(api, st)
    if env.json:
        output.emit_json(entries)
        return
    rows = [
        (
            e.id,
            e.forward.proto,
            e.forward.host_ip,
            e.forward.host_port,
            e.forward.child_port,
            e.owner,
        )
        for e in entries
    ]
    output.table(
        None,
        [_("id"), _("proto"), _("host ip"), _("host port"), _("child port"), _("owner")],
        rows,
    )


@ports.command(
    "sync",
    help=_(
        "The port-sync controller: watch Services through the API and keep RootlessKit's "
        "forwards equal to their node ports (NodePort, LoadBalancer) — added when a Service "
        "appears, removed when it goes, restored after restarts. Runs until stopped; "
        "--once reconciles once and exits."
    ),
    epilog=_(
        "Examples:\n\n  podsec u7s ports sync\n\n"
        "  podsec u7s ports sync --once --kubeconfig /etc/kubernetes/admin.conf"
    ),
)
@_common
@click.option("--kubeconfig", metavar="FILE", help=_("kubeconfig (default: as kubectl finds it)."))
@click.option("--context", "kube_context", metavar="NAME", help=_("kubeconfig context."))
@click.option("--host-ip", default="0.0.0.0", show_default=True, help=_("Host address to bind."))  # noqa: S104
@click.option("--once", is_flag=True, help=_("Reconcile once and exit."))
@click.option("--json", "json_output", is_flag=True, help=_("With --once: the changes as JSON."))
@click.pass_context
def sync_cmd(
    ctx: click.Context,
    *,
    socket: str | None,
    state: str | None,
    kubeconfig: str | None,
    kube_context: str | None,
    host_ip: str,
    once: bool,
    json_output: bool,
) -> int:
    from podsec.u7s import portsync
    from podsec.u7s.rootlesskit_api import default_socket

    env = context.with_json(ctx, json_output)
    sock = Path(socket) if socket else default_socket(env.host, env.settings.u7s_user)
    opts = portsync.Options(
        socket=sock,
        state=Path(state) if state else portsync.default_state_path(sock),
        kubeconfig=Path(kubeconfig) if kubeconfig else None,
        host=env.host,
        user=env.settings.u7s_user,
        context=kube_context,
        host_ip=host_ip,
    )
    if not logging.getLogger("podsec").handlers:  # started without the podsec group
        context.setup_logging(env.verbose, False)
    logger = logging.getLogger("podsec.portsync")
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)  # a daemon says what it forwards
    if once:
        changes = portsync.sync_once(opts)
        if env.json:
            output.emit_json(changes)
        return 1 if any(c.action == "failed" for c in changes) else 0
    stop = threading.Event()

    def _stop(_signum: int, _frame: object) -> None:
        stop.set()
        raise KeyboardInterrupt  # leave a blocking watch read at once

    signal.signal(signal.SIGTERM, _stop)
    with contextlib.suppress(KeyboardInterrupt):
        portsync.run(opts, stop)
    return 0


if __name__ == "__main__":
    from podsec.cli.main import invoke

    invoke(ports, "podsec u7s ports")
