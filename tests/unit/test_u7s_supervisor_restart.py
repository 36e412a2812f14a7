"""The built-in supervisor restarts a service it was asked to restart at once, and one that
died by itself after a back-off (issue 17: the kubelet restart after `kubeadm init` must not
wait out a crash back-off before the node can become Ready)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from podsec.host.paths import Host
from podsec.u7s import supervisor
from podsec.u7s.layout import Layout

LAYOUT = Layout("u7s-admin", 990, 990, Path("/var/lib/u7s-admin"))


class Exited:
    """A service process that has exited."""

    pid = 4242

    def poll(self) -> int:
        return 0


@pytest.fixture
def sup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> supervisor.Supervisor:
    s = supervisor.Supervisor(Host(tmp_path), LAYOUT)
    s.run_dir.mkdir(parents=True)
    kubelet = next(x for x in supervisor.SERVICES if x.name == "kubelet")
    s.procs = {"kubelet": supervisor._Proc(kubelet)}
    spawned: list[str] = []
    monkeypatch.setattr(s, "_spawn", lambda proc: spawned.append(proc.service.name))
    monkeypatch.setattr(s, "_deps_up", lambda proc: True)
    s.spawned = spawned  # type: ignore[attr-defined]
    return s


def crash(s: supervisor.Supervisor, started_ago: float = 5.0) -> None:
    proc = s.procs["kubelet"]
    proc.popen = Exited()  # type: ignore[assignment]
    proc.started = time.monotonic() - started_ago


def test_a_crash_waits_for_its_back_off(sup: supervisor.Supervisor) -> None:
    crash(sup)
    sup._tick()
    assert sup.spawned == []  # type: ignore[attr-defined]
    assert sup.procs["kubelet"].backoff == 2.0


def test_an_asked_restart_is_immediate(sup: supervisor.Supervisor) -> None:
    state = {"services": {"kubelet": {"pid": 2**22 + 17}}}  # no such process group
    (sup.run_dir / supervisor.STATEFILE).write_text(json.dumps(state))
    # the process is gone already: nothing to restart, no request left behind
    assert supervisor.restart_service(sup.host, LAYOUT, "kubelet") is False
    assert not list(sup.run_dir.glob(supervisor.RESTART_PREFIX + "*"))
    # a live service (its own process group, as the supervisor starts them): it is stopped
    # and the request recorded, then honoured without back-off
    live = subprocess.Popen(["sleep", "30"], start_new_session=True)
    state["services"]["kubelet"]["pid"] = live.pid
    (sup.run_dir / supervisor.STATEFILE).write_text(json.dumps(state))
    assert supervisor.restart_service(sup.host, LAYOUT, "kubelet") is True
    assert live.wait(5) != 0
    assert (sup.run_dir / f"{supervisor.RESTART_PREFIX}kubelet").exists()
    crash(sup)
    sup._tick()
    assert sup.spawned == ["kubelet"]  # type: ignore[attr-defined]
    assert not (sup.run_dir / f"{supervisor.RESTART_PREFIX}kubelet").exists()
    assert sup.procs["kubelet"].backoff == 1.0


def test_the_supervisor_runs_rbac_expire_every_minute_as_root_on_control_planes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # bind --for: on a node without systemd the supervisor is the timer
    from tests.unit.test_u7s_runtime import make_plan

    from podsec.u7s import supervisor as sup

    started: list[tuple[tuple[str, ...], dict[str, object]]] = []

    class Done:
        def poll(self) -> int:
            return 0

    def spawn(argv: tuple[str, ...], **kw: object) -> Done:
        started.append((tuple(argv), kw))
        return Done()

    monkeypatch.setattr(sup.hostrun, "spawn", spawn)
    (job,) = sup.jobs_for(make_plan())
    assert job.argv[-1] == "rbac-expire" and job.every == 60
    assert sup.jobs_for(make_plan(role="join-worker")) == ()
    s = sup.Supervisor(Host(tmp_path), LAYOUT)
    s.jobs = (job,)
    s._run_jobs(1000.0)
    s._run_jobs(1030.0)  # not yet
    s._run_jobs(1061.0)
    assert len(started) == 2 and "as_user" not in started[0][1]
