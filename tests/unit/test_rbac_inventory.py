"""rbac certs: podsec's record of issued certificates, the audit log's last sight of each user
(rotated copies included, names matched exactly), and the merge with the cluster's CSRs."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path

from podsec import issued, revocations
from podsec.host.paths import Host
from podsec.kube import audit_users
from podsec.rbac import certs, inventory, issue

T0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _event(user: str, when: dt.datetime, code: int = 200) -> str:
    return json.dumps(
        {
            "kind": "Event",
            "stage": "ResponseComplete",
            "user": {"username": user, "groups": ["devs"]},
            "responseStatus": {"code": code},
            "stageTimestamp": when.isoformat().replace("+00:00", "Z"),
        },
        separators=(",", ":"),  # as kube-apiserver writes it
    )


def _info(cn: str, serial: int, start: dt.datetime, days: int) -> certs.CertInfo:
    return certs.CertInfo(
        cn, ("devs",), serial, start, start + dt.timedelta(days=days), "ab" * 32, "ec"
    )


def test_issued_record_is_kept_once_per_serial_and_readable(tmp_path: Path) -> None:
    host = Host(tmp_path)
    info = _info("alice", 2**90, T0, 365)
    issue.record(host, info, "/home/alice/.kube/config")
    issue.record(host, info, "/home/alice/.kube/config")
    path = tmp_path / "var/lib/podsec/rbac/issued.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    (rec,) = issued.read(path)
    assert (rec.cn, rec.serial, rec.groups) == ("alice", str(2**90), ("devs",))
    assert rec.expires() == T0 + dt.timedelta(days=365)
    assert rec.kubeconfig == "/home/alice/.kube/config"


def test_last_seen_reads_rotated_copies_and_matches_names_exactly(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    old = tmp_path / "audit-2026-06-01T00-00-00.000.log"
    old.write_text(_event("alice", T0) + "\n" + _event("bob", T0) + "\n")
    log.write_text(
        _event("alice", T0 + dt.timedelta(hours=2), 403)
        + "\n"
        + _event("alicex", T0 + dt.timedelta(hours=9))
        + '\nnot json at all "username":"bob"\n'
    )
    seen = audit_users.last_seen(log, ["alice", "bob", "carol"])
    assert seen == {"alice": T0 + dt.timedelta(hours=2), "bob": T0}
    assert audit_users.last_seen(tmp_path / "missing.log", ["alice"]) == {}


def test_inventory_merges_record_and_csrs_with_revocation_and_sight(tmp_path: Path) -> None:
    host = Host(tmp_path)
    old = _info("alice", 1, T0 - dt.timedelta(days=400), 365)  # expired before T0
    new = _info("alice", 2, T0 - dt.timedelta(days=10), 365)
    bob = _info("bob", 3, T0 - dt.timedelta(days=10), 365)
    for info in (old, new, bob):
        issue.record(host, info, f"/home/{info.cn}/.kube/config")
    carol = issued.Issued(
        "carol",
        "4",
        ("ops",),
        not_before=T0.isoformat(),
        not_after=(T0 + dt.timedelta(days=1)).isoformat(),
    )
    same_as_bob = issued.Issued("bob", "3", ("devs",))
    revoked = tmp_path / "var/lib/podsec/rbac/revoked.json"
    revoked.write_text(
        revocations.dumps([revocations.Revoked("bob", "3", revoked_at="2026-05-30T00:00:00+00:00")])
    )
    log = tmp_path / "audit.log"
    log.write_text(_event("alice", T0 - dt.timedelta(days=1)) + "\n")
    rows = inventory.inventory(host, [carol, same_as_bob], audit_log=log, now=T0)
    by = {r.serial: r for r in rows}
    assert set(by) == {"1", "2", "3", "4"}
    assert by["1"].expired and by["1"].last_seen == ""  # seen after it expired: not this one
    assert not by["2"].expired and by["2"].last_seen.startswith("2026-05-31")
    assert by["3"].revoked and by["3"].sources == ("record", "csr")
    assert by["4"].sources == ("csr",) and not by["4"].revoked
    assert [
        r.serial for r in inventory.inventory(host, [], audit_log=None, users=["bob"], now=T0)
    ] == ["3"]
    doc = by["3"].as_dict()
    assert doc["revoked"] is True and doc["revokedAt"].startswith("2026-05-30")
