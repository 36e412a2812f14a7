"""The node's services, described once, run by systemd or by the built-in supervisor.

:data:`SERVICES` is the one description: each service is ``podsec u7s service NAME`` run as
u7s-admin (the command waits for its own preconditions, then execs the real program), with
its ordering and restart policy. :func:`systemd_units` renders it as the system ``u7s.service``,
the user units and ``u7s.target`` (plus ``Delegate=yes`` for u7s-admin's ``user@UID.service``
only); :class:`Supervisor` runs it on hosts without systemd (``podsec u7s run``): it starts
the services in order as u7s-admin, restarts one that exits (all of them when the namespace
itself went away), and stops everything in reverse order on SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from podsec.errors import PodsecError
from podsec.host import files, supervise, systemd
from podsec.host import run as hostrun
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.progress import NULL_PROGRESS, Progress
from podsec.u7s.layout import Layout
from podsec.u7s.plan import PLAN_FILE, NodePlan

PIDFILE = "supervisor.pid"
STATEFILE = "state.json"
RESTART_PREFIX = "restart-"  # run dir: a restart asked for by restart_service (no back-off)


@dataclass(frozen=True)
class Service:
    name: str
    description: str
    after: tuple[str, ...] = ()
    # the namespace itself: when it exits every other service must restart with it
    namespace: bool = False


SERVICES: tuple[Service, ...] = (
    Service("rootlesskit", "rootless namespace of the u7s node (rootlesskit, CRI)", namespace=True),
    Service("kubelet", "kubelet of the u7s node", after=("rootlesskit",)),
    Service("kube-proxy", "kube-proxy of the u7s node", after=("kubelet",)),
    # NodePort/LoadBalancer Services forwarded out of the namespace as they come and go
    Service("port-sync", "service port forwarding of the u7s node", after=("kubelet",)),
    # host side; its port is opened in the namespace (podsec.u7s.admission.node_webhook)
    Service("admission", "signed-images admission webhook of the u7s node", after=("rootlesskit",)),
    # host side too, its port on 127.0.0.1 of the namespace (podsec.webhook.authz)
    Service("authz", "revocation authorization webhook of the u7s node", after=("rootlesskit",)),
)
ADMISSION = ("admission",)
AUTHZ = ("authz",)


def services_for(plan: NodePlan) -> tuple[Service, ...]:
    from podsec.u7s.runtime import wants_admission, wants_authz

    left_out = (() if wants_admission(plan) else ADMISSION) + (() if wants_authz(plan) else AUTHZ)
    return tuple(s for s in SERVICES if s.name not in left_out)


def service_argv(name: str) -> list[str]:
    return [sys.executable, "-m", "podsec.cli", "u7s", "service", name]


def _exec_start(name: str) -> str:
    # systemd wants an absolute program and no shell syntax
    return " ".join(service_argv(name))


def systemd_units(layout: Layout, plan: NodePlan) -> dict[str, str]:
    """Unit files by their path: one system unit, user units, the target, the drop-in."""
    out: dict[str, str] = {}
    services = services_for(plan)
    for svc in services:
        unit_sections: list[tuple[str, str]] = [("Description", svc.description)]
        for dep in svc.after:
            unit_sections += [("After", f"{dep}.service"), ("BindsTo", f"{dep}.service")]
        # stopping the target (u7s.service's ExecStop) stops every service of the node
        unit_sections.append(("PartOf", "u7s.target"))
        service_sections = [
            ("Type", "simple"),
            ("ExecStart", _exec_start(svc.name)),
            ("Restart", "always"),
            ("RestartSec", "2"),
            ("LimitNOFILE", "65536"),
            ("WorkingDirectory", "%h"),
        ]
        if svc.namespace:
            service_sections.append(("Delegate", "yes"))
        u = systemd.unit(
            f"{svc.name}.service",
            Unit=unit_sections,
            Service=service_sections,
            Install=[("WantedBy", "u7s.target")],
        )
        out[f"{systemd.USER_DIR}/{u.name}"] = u.render()
    # Wants, not Requires: a service restarted alone (the kubelet after init) must not
    # restart the target, which would restart every service with it (PartOf), the namespace
    # included; the services' own BindsTo= keep their order of life
    target = systemd.unit(
        "u7s.target",
        Unit=[("Description", "rootless kubernetes node (u7s)")]
        + [("Wants", f"{s.name}.service") for s in services]
        + [("After", f"{s.name}.service") for s in services],
    )
    out[f"{systemd.USER_DIR}/u7s.target"] = target.render()
    user_at = f"user@{layout.uid}.service"
    system = systemd.unit(
        "u7s.service",
        Unit=[
            ("Description", "rootless kubernetes node of u7s-admin"),
            ("Requires", user_at),
            ("After", f"{user_at} network-online.target"),
        ],
        Service=[
            ("Type", "oneshot"),
            ("RemainAfterExit", "yes"),
            ("ExecStartPre", f"/usr/bin/loginctl enable-linger {layout.user}"),
            # the user manager (already running: linger, or an earlier start) re-reads the
            # user units podsec may have rewritten since
            ("ExecStartPre", f"/usr/bin/systemctl --user -M {layout.user}@ daemon-reload"),
            ("ExecStart", f"/usr/bin/systemctl --user -M {layout.user}@ start u7s.target"),
            ("ExecStop", f"/usr/bin/systemctl --user -M {layout.user}@ stop u7s.target"),
        ],
        Install=[("WantedBy", "multi-user.target")],
    )
    out[f"{systemd.SYSTEM_DIR}/u7s.service"] = system.render()
    delegate = systemd.unit("delegate.conf", Service=[("Delegate", "yes")])
    out[f"{systemd.SYSTEM_DIR}/{user_at}.d/delegate.conf"] = delegate.render()
    return out


@dataclass(frozen=True)
class Job:
    """A command the supervisor runs every ``every`` seconds as root (what a timer does
    under systemd)."""

    name: str
    argv: tuple[str, ...]
    every: float


def jobs_for(plan: NodePlan) -> tuple[Job, ...]:
    from podsec.u7s.runtime import wants_authz

    if not wants_authz(plan):  # a control plane: where admin.conf and the bindings live
        return ()
    # bind --for: subjects whose time is over leave their bindings (podsec.rbac.expiry)
    return (Job("rbac-expire", (*_DAEMON, "rbac-expire"), 60.0),)


class SupervisorError(PodsecError):
    """The built-in supervisor could not start or stop the node."""


@dataclass
class _Proc:
    service: Service
    popen: hostrun.Child | None = None
    started: float = 0.0
    restarts: int = 0
    backoff: float = 1.0
    next_start: float = 0.0


@dataclass
class Supervisor:
    host: Host
    layout: Layout
    progress: Progress = NULL_PROGRESS
    procs: dict[str, _Proc] = field(default_factory=dict)
    stopping: bool = False
    jobs: tuple[Job, ...] = ()
    _job_runs: dict[str, hostrun.Child] = field(default_factory=dict)
    _job_next: dict[str, float] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.host.path(str(self.layout.run_dir))

    def _log(self, name: str) -> Path:
        return self.host.path(str(self.layout.log_dir / f"{name}.log"))

    def _spawn(self, proc: _Proc) -> None:
        proc.popen = hostrun.spawn(
            service_argv(proc.service.name),
            env=self.layout.env(),
            as_user=self.layout.user,
            cwd=self.host.path(str(self.layout.home)),
            log_file=self._log(proc.service.name),
        )
        proc.started = time.monotonic()
        self._write_state()

    def _write_state(self) -> None:
        state = {
            "supervisor": os.getpid(),
            "user": self.layout.user,
            "services": {
                name: {
                    "pid": p.popen.pid if p.popen and p.popen.poll() is None else None,
                    "restarts": p.restarts,
                }
                for name, p in self.procs.items()
            },
        }
        text = json.dumps(state, indent=2) + "\n"
        files.atomic_write(self.run_dir / STATEFILE, text, mode=0o644, backup=False)

    def _terminate(self, proc: _Proc, timeout: float = 30.0) -> None:
        if proc.popen is not None:
            # the service runs in its own session: the group holds nsenter and the program
            supervise.terminate(proc.popen, timeout=timeout, group=True)

    def _acquire(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        pidfile = self.run_dir / PIDFILE
        old = running_pid(self.host, self.layout)
        if old is not None and old != os.getpid():
            raise SupervisorError(
                _("the u7s supervisor already runs (pid {pid})").format(pid=old),
                hint=_("stop it with `podsec u7s stop`"),
            )
        pidfile.write_text(f"{os.getpid()}\n")

    def _release(self) -> None:
        for name in (PIDFILE, STATEFILE):
            (self.run_dir / name).unlink(missing_ok=True)

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT; return the exit status."""
        self._acquire()

        def stop(_signum: int, _frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        plan = load_plan(self.host)
        self.procs = {s.name: _Proc(s) for s in services_for(plan)}
        self.jobs = jobs_for(plan)
        try:
            while not self.stopping:
                self._tick()
                self._run_jobs(time.monotonic())
                time.sleep(0.5)
        finally:
            for job in self._job_runs.values():
                if job.poll() is None:
                    job.terminate()
            for proc in reversed(list(self.procs.values())):
                self._terminate(proc)
            self._release()
        return 0

    def _run_jobs(self, now: float) -> None:
        """Start each periodic job when its interval has passed and its last run ended."""
        for job in self.jobs:
            last = self._job_runs.get(job.name)
            if last is not None and last.poll() is None:
                continue
            if now < self._job_next.get(job.name, 0.0):
                continue
            self._job_next[job.name] = now + job.every
            # as root, like the supervisor: the job edits root's state (podsec rbac expire)
            self._job_runs[job.name] = hostrun.spawn(job.argv, log_file=self._log(job.name))

    def _tick(self) -> None:
        now = time.monotonic()
        changed = False
        for proc in self.procs.values():
            p = proc.popen
            if p is not None and p.poll() is not None:
                proc.popen = None
                proc.restarts += 1
                uptime = now - proc.started
                asked = self.run_dir / f"{RESTART_PREFIX}{proc.service.name}"
                if asked.exists():  # restart_service: at once, no back-off
                    asked.unlink(missing_ok=True)
                    proc.next_start = now
                else:
                    proc.backoff = supervise.next_backoff(proc.backoff, uptime)
                    proc.next_start = now + proc.backoff
                changed = True
                if proc.service.namespace:
                    # a new namespace: everything inside it starts over
                    for other in self.procs.values():
                        if other is not proc:
                            self._terminate(other)
                            other.popen = None
                            other.next_start = now + proc.backoff
        for proc in self.procs.values():
            if proc.popen is None and now >= proc.next_start and self._deps_up(proc):
                self._spawn(proc)
                changed = True
        if changed:
            self._write_state()

    def _deps_up(self, proc: _Proc) -> bool:
        for dep in proc.service.after:
            other = self.procs[dep]
            if other.popen is None or other.popen.poll() is not None:
                return False
        return True


def running_pid(host: Host, layout: Layout) -> int | None:
    """The PID of a live built-in supervisor, None when there is none."""
    try:
        pid = int((host.path(str(layout.run_dir)) / PIDFILE).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    return pid if b"u7s" in cmdline else None


def systemd_unit_installed(host: Host) -> bool:
    """The host runs systemd and u7s.service is installed: systemd runs the node."""
    return systemd.running(host) and host.path(f"{systemd.SYSTEM_DIR}/u7s.service").exists()


def systemd_active(host: Host) -> bool:
    """u7s.service is active (systemd runs the node and it is up)."""
    if not systemd_unit_installed(host):
        return False
    r = hostrun.run(["systemctl", "is-active", "--quiet", "u7s.service"], check=False, timeout=60)
    return r.returncode == 0


def running(host: Host, layout: Layout) -> bool:
    """Whether the node runs, under the built-in supervisor or under systemd."""
    return running_pid(host, layout) is not None or systemd_active(host)


def read_state(host: Host, layout: Layout) -> dict[str, object]:
    try:
        data = json.loads((host.path(str(layout.run_dir)) / STATEFILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def stop(host: Host, layout: Layout, timeout: float = 90.0) -> bool:
    """SIGTERM the supervisor and wait for it; return False when none was running."""
    if systemd_unit_installed(host):
        if not systemd_active(host):
            return False
        hostrun.run(["systemctl", "stop", "u7s.service"], timeout=timeout)
        return True
    pid = running_pid(host, layout)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    raise SupervisorError(_("the u7s supervisor (pid {pid}) did not stop").format(pid=pid))


def load_plan(host: Host) -> NodePlan:
    path = host.path(PLAN_FILE)
    try:
        return NodePlan.from_json(path.read_text())
    except FileNotFoundError as exc:
        raise SupervisorError(
            _("no node plan at {path}").format(path=PLAN_FILE),
            hint=_("run `podsec u7s kubeadm init` or `kubeadm join` first"),
        ) from exc


def _wait_for(path: Path, stop_after: float | None = None) -> None:
    deadline = None if stop_after is None else time.monotonic() + stop_after
    # lexists: kubelet's pki links point at namespace paths that do not resolve on the host
    while not os.path.lexists(path):
        if deadline is not None and time.monotonic() > deadline:
            raise SupervisorError(_("{path} did not appear").format(path=path))
        time.sleep(0.5)


def service_exec(host: Host, layout: Layout, name: str) -> list[str]:
    """The argv service ``name`` execs, after waiting for what it needs (runs as u7s-admin)."""
    from podsec.u7s import kubelet, nsenter, rootlesskit_api, runtime

    plan = load_plan(host)
    if name == "rootlesskit":
        state = host.path(str(layout.state_dir))
        if state.is_dir():
            for leftover in state.iterdir():
                leftover.unlink(missing_ok=True)
        return runtime.rootlesskit_argv(plan, layout)
    nsenter.wait_child(layout, timeout=120)
    kube = host.path("/etc/kubernetes")
    if name == "kubelet":
        rootlesskit_api.ensure_forwards(
            rootlesskit_api.RootlesskitApi(layout.api_socket), plan.ports
        )
        config = host.path(str(layout.data_dir / "_var_lib_kubelet/config.yaml"))
        _wait_for(config)
        patched = kubelet.patch_config(config.read_text(), plan)
        if patched != config.read_text():
            config.write_text(patched)
        flags = config.with_name("kubeadm-flags.env")
        flags_text = flags.read_text() if flags.exists() else ""
        shim = None
        if kubelet.needs_docker_shim(plan):
            shim = layout.runtime_dir / "kubelet-docker.sock"
            hostrun.run([*_DAEMON, "kubelet-docker-shim", f"socket={shim}"], timeout=30)
        return nsenter.argv(layout, kubelet.argv(plan, layout.cri_socket, flags_text, shim))
    if name == "kube-proxy":
        _wait_for(kube / "kubelet.conf")
        _wait_for(
            host.path(str(layout.data_dir / "_var_lib_kubelet/pki/kubelet-client-current.pem"))
        )
        return nsenter.argv(layout, kubelet.proxy_argv(plan))
    if name == "port-sync":
        from podsec.u7s import portsync

        # on the host side: it talks to RootlessKit's socket and the API through the forwards
        return portsync.command([sys.executable, "-m", "podsec.cli"], socket=layout.api_socket)
    if name == "admission":
        return [*_DAEMON, "admission"]
    if name == "authz":
        return [*_DAEMON, "authz", "node=1"]
    raise SupervisorError(_("unknown service {name}").format(name=name))


# the resident services start without click (podsec.cli.daemon: RSS on every node)
_DAEMON = [sys.executable, "-m", "podsec.cli.daemon"]


def install_units(host: Host, layout: Layout, plan: NodePlan) -> list[Path]:
    """Write the systemd units (system, user, drop-in); return the paths written."""
    written = []
    for path, text in systemd_units(layout, plan).items():
        target = host.path(path)
        files.atomic_write(target, text, mode=0o644)
        written.append(target)
    return written


def disable(host: Host) -> None:
    """Under systemd: u7s.service no longer starts at boot (the node was reset)."""
    if systemd_unit_installed(host):
        hostrun.run(["systemctl", "disable", "--quiet", "u7s.service"], check=False, timeout=60)


def restart_service(host: Host, layout: Layout, name: str) -> bool:
    """Restart one service of the node: its user unit under systemd, else through the
    built-in supervisor (it restarts whatever exits)."""
    if systemd_active(host):
        r = hostrun.run(
            ["systemctl", "--user", "-M", f"{layout.user}@", "restart", f"{name}.service"],
            check=False,
            timeout=120,
        )
        return r.returncode == 0
    services = read_state(host, layout).get("services")
    entry = services.get(name) if isinstance(services, dict) else None
    pid = entry.get("pid") if isinstance(entry, dict) else None
    if not isinstance(pid, int):
        return False
    asked = host.path(str(layout.run_dir)) / f"{RESTART_PREFIX}{name}"
    asked.touch()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
        return True
    asked.unlink(missing_ok=True)
    return False
