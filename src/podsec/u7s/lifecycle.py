"""The node's life cycle: start, status, commands inside its namespaces, and the
``podsec u7s`` commands that need only a running (or installable) node."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from podsec.errors import PodsecError
from podsec.host import run as hostrun
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.u7s import nsenter as ns
from podsec.u7s import runtime, supervisor
from podsec.u7s.layout import Layout, layout_for
from podsec.u7s.plan import PLAN_FILE


class NodeError(PodsecError):
    """The node could not be brought up, joined or reset."""


def start(host: Host, layout: Layout, timeout: float = 90.0) -> int:
    """Start the node (systemd's u7s.service where systemd runs the host, else the built-in
    supervisor in the background); wait for the namespace's CRI."""
    from podsec.host import systemd

    pid = supervisor.running_pid(host, layout)
    if pid is None and systemd.running(host):
        supervisor.install_units(host, layout, supervisor.load_plan(host))
        hostrun.run(["systemctl", "daemon-reload"])
        hostrun.run(["systemctl", "enable", "--now", "u7s.service"], timeout=300)
        pid = 1
    elif pid is None:
        log = host.path(str(layout.log_dir / "supervisor.log"))
        proc = hostrun.spawn(
            [sys.executable, "-m", "podsec.cli.daemon", "u7s-run"],
            log_file=log,
            new_session=True,
        )
        pid = proc.pid
        deadline = time.monotonic() + 10
        while supervisor.running_pid(host, layout) != pid:
            if proc.poll() is not None:
                raise NodeError(_("the u7s supervisor exited at start (see {log})").format(log=log))
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
    try:
        ns.wait_child(layout, timeout)
    except ns.NotRunning as exc:
        raise NodeError(
            _("the u7s namespace did not come up within {s:g} s").format(s=timeout),
            hint=_("see the logs in {dir}").format(dir=layout.log_dir),
        ) from exc
    return pid


def where(service: str) -> str:
    """Where a node service runs, said where Kubernetes' own listing would mislead: the
    seed's kube-proxy is a DaemonSet (``kubectl get ds -A`` lists it), podsec's a process of
    the node (addon/kube-proxy is skipped: its pod cannot set up rootless networking here)."""
    if service == "kube-proxy":
        return _(
            "node process under the u7s supervisor, not a DaemonSet (kubectl get ds -A does not list it)"
        )
    return _("node process under the u7s supervisor")


def status(host: Host, layout: Layout) -> dict[str, Any]:
    state = supervisor.read_state(host, layout)
    services: dict[str, dict[str, Any]] = {}
    raw = state.get("services")
    for svc in supervisor.SERVICES:
        entry = dict(raw.get(svc.name, {})) if isinstance(raw, dict) else {}
        pid = entry.get("pid")
        if isinstance(pid, int) and Path(f"/proc/{pid}").exists():
            entry["uid"] = runtime.uid_of_pid(pid)
        entry["where"] = where(svc.name)
        services[svc.name] = entry
    child = layout.child_pid()
    return {
        "running": supervisor.running(host, layout),
        "supervisor": state.get("supervisor"),
        "user": layout.user,
        "uid": layout.uid,
        "child": child,
        "services": services,
    }


def in_namespace(
    host: Host,
    layout: Layout,
    command: list[str],
    *,
    capture: bool = True,
    check: bool = True,
    timeout: float | None = 600,
    input: str | None = None,
) -> hostrun.Result:
    """Run ``command`` as u7s-admin inside the node's namespaces."""
    argv = ns.argv(layout, command)
    return hostrun.run(
        argv,
        as_user=layout.user,
        env=layout.env(),
        capture=capture,
        check=check,
        timeout=timeout,
        cwd=host.path(str(layout.home)),
        input=input,
    )


def nsenter(host: Host, command: list[str], timeout: float = 30.0, *, user: str) -> int:
    layout = layout_for(host, user)
    cmd = command or [layout.env().get("SHELL", "/bin/bash")]
    argv = ns.argv(layout, cmd, timeout=timeout)
    return hostrun.run(
        argv, as_user=layout.user, env=layout.env(), capture=False, check=False, timeout=None
    ).returncode


def start_required(host: Host, layout: Layout) -> None:
    """Refuse with a clear message when the node's namespace is not running."""
    if not supervisor.running(host, layout):
        raise ns.NotRunning(
            _("the u7s namespace of {user} is not running").format(user=layout.user),
            hint=_("start it with `podsec u7s start` (or `podsec u7s kubeadm init`)"),
        )
    ns.wait_child(layout, 30)


def install(host: Host, user: str) -> list[Path]:
    """``podsec u7s install``: the wrapper directory, and the systemd units of ``user``'s
    node once a node plan exists (they run what the plan says)."""
    installed = runtime.install_bin(host, user)
    if runtime.user_exists(user) and host.path(PLAN_FILE).exists():
        layout = layout_for(host, user)
        installed += supervisor.install_units(host, layout, supervisor.load_plan(host))
    return installed
