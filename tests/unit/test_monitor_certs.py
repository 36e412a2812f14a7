"""check-certs: in-use certificates about to expire warn, a revoked one seen after its
revocation is CRITICAL (weights 1 and 101, the default -c 100), perfdata as documented."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from podsec import revocations
from podsec.host.paths import Host
from podsec.monitor import certs_check, plugin
from podsec.rbac import certs, issue

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _event(user: str, when: dt.datetime) -> str:
    return json.dumps(
        {"user": {"username": user}, "stageTimestamp": when.isoformat()}, separators=(",", ":")
    )


def _setup(root: Path, *, seen: dict[str, dt.datetime], revoked_at: dt.datetime | None) -> Host:
    host = Host(root)
    start = NOW - dt.timedelta(days=300)
    for cn, serial, days in (
        ("alice", 1, 310),
        ("bob", 2, 700),
        ("carol", 3, 305),
        ("dan", 4, 302),
    ):
        info = certs.CertInfo(
            cn, ("devs",), serial, start, start + dt.timedelta(days=days), "ab", "ec"
        )
        issue.record(host, info, f"/home/{cn}/.kube/config")
    if revoked_at is not None:
        (root / "var/lib/podsec/rbac/revoked.json").write_text(
            revocations.dumps(
                [
                    revocations.Revoked(
                        "carol",
                        "3",
                        not_after=(start + dt.timedelta(days=305)).isoformat(),
                        revoked_at=revoked_at.isoformat(),
                    )
                ]
            )
        )
    log = root / "etc/kubernetes/audit/audit.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(_event(u, t) + "\n" for u, t in seen.items()))
    return host


def _report(host: Host, **levels: str) -> plugin.Report:
    thresholds, _ = plugin.build_thresholds(levels)
    return certs_check.report(certs_check.evaluate(host, days=30, now=NOW), thresholds, 1)


def test_an_in_use_certificate_about_to_expire_warns(tmp_path: Path) -> None:
    recent = NOW - dt.timedelta(hours=1)
    host = _setup(tmp_path, seen={"alice": recent, "bob": recent}, revoked_at=None)
    rep = _report(host)
    # alice: 10 days left and in use; bob: 400 days; dan: 2 days but never seen; carol unseen
    assert rep.state == plugin.State.WARNING and "alice" in rep.summary and "dan" not in rep.summary
    text = rep.render()
    assert "'expiring'=1;;;0" in text and "'in_use'=2;;;0" in text and "'soonest'=10d" in text


def test_a_revoked_certificate_seen_after_its_revocation_is_critical(tmp_path: Path) -> None:
    revoked = NOW - dt.timedelta(days=2)
    host = _setup(tmp_path, seen={"carol": NOW - dt.timedelta(hours=3)}, revoked_at=revoked)
    rep = _report(host)
    assert rep.state == plugin.State.CRITICAL and "carol" in rep.summary
    assert "'revoked_seen'=1;;;0" in rep.render() and "'metric'=101;0;100;0" in rep.render()
    # seen only before the revocation: nothing to report
    host = _setup(
        tmp_path / "b", seen={"carol": revoked - dt.timedelta(hours=1)}, revoked_at=revoked
    )
    assert _report(host).state == plugin.State.OK


def test_nothing_recorded_is_ok_and_thresholds_apply(tmp_path: Path) -> None:
    host = _setup(tmp_path, seen={"alice": NOW}, revoked_at=None)
    assert _report(host, w="5").state == plugin.State.OK  # one expiring (metric 1) is inside 0:5
    empty = Host(tmp_path / "none")
    (tmp_path / "none").mkdir()
    rep = _report(empty)
    assert rep.state == plugin.State.OK and "0 certificates" in rep.summary
