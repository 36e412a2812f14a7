"""bind --for: the duration, the record, the removal when due (and only then), the syslog
trail of both steps, a plain bind or unbind ending the deadline, and the supervisor's job."""

from __future__ import annotations

import datetime as dt
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from podsec.errors import NotFoundError, UsageError, ValidationError
from podsec.host.paths import Host
from podsec.host.syslog import Syslog
from podsec.rbac import bindings, expiry
from podsec.rbac.bindings import Change, Subject

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
TARGET = bindings.Target("role=clusterrole", "edit", "oncall", "prod")


def test_durations() -> None:
    assert expiry.parse_for("8h") == 8 * 3600
    assert expiry.parse_for("1d12h") == 36 * 3600
    assert expiry.parse_for("90s") == 90 and expiry.parse_for("5") == 5
    for bad in ("8 hours", "h", "0s", "400d", "-1m"):
        with pytest.raises(UsageError):
            expiry.parse_for(bad)


def _syslog(tmp_path: Path) -> tuple[Syslog, socket.socket]:
    path = tmp_path / "log.sock"
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(str(path))
    sink.settimeout(2)
    return Syslog(expiry.TAG, str(path)), sink


def test_record_then_expire_when_due_with_a_syslog_trail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = Host(tmp_path)
    log, sink = _syslog(tmp_path)
    alice = Subject("User", "alice")
    grant = expiry.record(host, Change(TARGET, alice, "added"), 8 * 3600, log.log, now=NOW)
    line = sink.recv(4096).decode()
    assert line.startswith("<13>") and "podsec-rbac[" in line  # facility user, notice
    assert "granted User alice RoleBinding oncall -n prod (ClusterRole edit)" in line
    assert grant.expires_at == "2026-06-01T20:00:00+00:00" and "(for 28800 s)" in line
    removed: list[tuple[Subject, bindings.Target]] = []

    def unbind(api: Any, who: Subject, t: bindings.Target) -> Change:
        removed.append((who, t))
        return Change(t, who, "removed")

    monkeypatch.setattr(expiry.bindings, "unbind", unbind)
    assert expiry.expire_due(host, object(), log.log, now=NOW + dt.timedelta(hours=7)) == []  # type: ignore[arg-type]
    assert removed == []
    done = expiry.expire_due(host, object(), log.log, now=NOW + dt.timedelta(hours=8))  # type: ignore[arg-type]
    assert [e.action for e in done] == ["removed"] and removed == [(alice, TARGET)]
    line = sink.recv(4096).decode()
    assert (
        "expired: User alice RoleBinding oncall -n prod removed (granted 2026-06-01T12:00:00"
        in line
    )
    assert expiry.read(host) == []  # done once
    assert json.loads((tmp_path / "var/lib/podsec/rbac/expiring.json").read_text()) == []


def test_already_unbound_is_dropped_and_a_plain_bind_ends_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = Host(tmp_path)
    quiet = lambda _p, _m: None  # noqa: E731
    bob, carol = Subject("User", "bob"), Subject("Group", "oncall")
    expiry.record(host, Change(TARGET, bob, "added"), 60, quiet, now=NOW)
    expiry.record(host, Change(TARGET, carol, "added"), 60, quiet, now=NOW)
    assert expiry.forget(host, Change(TARGET, carol, "unchanged"))  # bound for good now
    assert [g.subject for g in expiry.read(host)] == [bob]

    def gone(api: Any, who: Subject, t: bindings.Target) -> Change:
        raise NotFoundError("not bound")

    monkeypatch.setattr(expiry.bindings, "unbind", gone)
    done = expiry.expire_due(host, object(), quiet, now=NOW + dt.timedelta(minutes=2))  # type: ignore[arg-type]
    assert [e.action for e in done] == ["gone"] and expiry.read(host) == []
    # nothing due: no connection is made at all
    assert expiry.expire(host, quiet, kubeconfig="/nonexistent") == []


def test_a_broken_record_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "var/lib/podsec/rbac/expiring.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps([{"subject": {"kind": "Robot", "name": "x"}}]))
    with pytest.raises(ValidationError, match=r"expiring.json\[0\]"):
        expiry.read(Host(tmp_path))


def test_timer_units() -> None:
    units = expiry.timer_units(["/usr/bin/python3", "-m", "podsec.cli.daemon", "rbac-expire"])
    timer = units["podsec-rbac-expire.timer"]
    assert timer.get("Timer", "OnCalendar") == ["minutely"]
    assert units["podsec-rbac-expire.service"].get("Service", "ExecStart") == [
        "/usr/bin/python3 -m podsec.cli.daemon rbac-expire"
    ]
