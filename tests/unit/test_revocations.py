"""revoked.json: one typed format for rbac (writer) and monitor (reader)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from podsec import revocations
from podsec.errors import ValidationError
from podsec.host.paths import Host
from podsec.monitor import audit_events
from podsec.names import REVOKED_FILE
from podsec.rbac import certs, revoke


def test_round_trip_and_replacement_by_serial() -> None:
    a = revocations.Revoked("alice", "7", ("k8s",), "alice", "ab", "2027-01-01T00:00:00+00:00")
    b = revocations.Revoked("bob", "8")
    text = revocations.dumps(revocations.added((a,), b))
    assert revocations.parse(text, "f") == (a, b)
    again = revocations.added((a, b), revocations.Revoked("alice2", "7"))
    assert [r.cn for r in again] == ["bob", "alice2"]
    assert a.expires() == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert b.expires() is None


def test_unknown_keys_are_ignored_and_empty_file_is_empty() -> None:
    doc = [{"cn": "x", "serial": "1", "added_by_a_newer_podsec": True}]
    assert revocations.parse(json.dumps(doc), "f") == (revocations.Revoked("x", "1"),)
    assert revocations.parse(b"  \n", "f") == ()


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ("{not json", "invalid JSON"),
        ('{"revoked": []}', "must hold a JSON list"),
        ('["eve"]', r"f\[0\]: expected an object"),
        ('[{"cn": "a", "serial": "1"}, {"serial": "2"}]', r"f\[1\]\.cn"),
        ('[{"cn": "a", "serial": 1}]', r"f\[0\]\.serial"),
        ('[{"cn": "a", "serial": "1", "groups": "k8s"}]', r"f\[0\]\.groups"),
        ('[{"cn": "a", "serial": "1", "not_after": 5}]', r"f\[0\]\.not_after"),
    ],
)
def test_bad_files_name_the_entry(doc: str, where: str) -> None:
    with pytest.raises(ValidationError, match=where):
        revocations.parse(doc, "f")


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert revocations.read(tmp_path / "none.json") == ()


def test_what_rbac_writes_the_monitor_reads(tmp_path: Path) -> None:
    host = Host(tmp_path)
    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    info = certs.CertInfo("mallory", ("ops",), 2**70, now, now, "cd" * 32, "rsa")
    path = revoke.record(host, info, "mallory", now)
    assert path == host.path(REVOKED_FILE)
    assert audit_events.load_revoked(path) == {"mallory"}
    assert revoke.load_records(host)[0].serial == str(2**70)
