"""watch-kubeapi core: record extraction, the bytes prefilter, the cursor across rotation,
bad input, the -m digest (rotate only after the mail succeeded) and the manifest edit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from podsec.errors import ValidationError
from podsec.host import logfollow, logscan
from podsec.monitor import audit_events, audit_install, kubeapi_digest
from podsec.monitor import kubeapi_audit as ka


def event(i: int, code: int, user: str = "alice", stage: str = "ResponseComplete") -> str:
    e = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": f"id-{i}",
        "stage": stage,
        "requestURI": f"/api/v1/namespaces/ns/pods/p{i}",
        "verb": "get",
        "user": {"username": user, "groups": ["k8s", "system:authenticated"]},
        "sourceIPs": ["10.1.2.3", "127.0.0.1"],
        "objectRef": {"resource": "pods", "namespace": "ns", "name": f"p{i}", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": f"2026-11-29T01:00:{i % 60:02d}.000000Z",
        "stageTimestamp": "2026-11-29T01:00:00.000000Z",
        "annotations": {
            "authorization.k8s.io/decision": "forbid" if code == 403 else "allow",
            "authorization.k8s.io/reason": "no RBAC policy matched" if code == 403 else "",
        },
    }
    if code == 403:
        e["responseStatus"] = {
            "metadata": {},
            "status": "Failure",
            "reason": "Forbidden",
            "code": 403,
        }
    return json.dumps(e, separators=(",", ":"))


def test_extract_403_fields() -> None:
    r = audit_events.extract(event(7, 403))
    assert r is not None
    assert (r.user, r.groups, r.verb, r.resource, r.namespace, r.name, r.code) == (
        "alice",
        ("k8s", "system:authenticated"),
        "get",
        "pods",
        "ns",
        "p7",
        403,
    )
    assert r.reason == "no RBAC policy matched" and r.source_ip == "10.1.2.3"
    assert r.timestamp.startswith("2026-11-29T01:00:07")
    assert r.message().startswith("Critical: Forbidden (403): user alice")
    assert audit_events.Record.from_json(r.to_json()) == r


@pytest.mark.parametrize("code", [200, 201, 304, 400])
def test_codes_up_to_400_are_not_reported(code: int) -> None:
    assert audit_events.extract(event(1, code)) is None


@pytest.mark.parametrize("code", [401, 403, 404, 409, 500, 503])
def test_the_seeds_codes_above_400_are_reported(code: int) -> None:
    """The seed counts every code > 400 (issue 16); --codes 401,403 narrows it."""
    r = audit_events.extract(event(1, code))
    assert r is not None and r.code == code
    narrow = audit_events.parse_codes("401,403")
    assert narrow == audit_events.FORBIDDEN_CODES
    assert (audit_events.extract(event(1, code), codes=narrow) is None) == (code not in narrow)


def test_codes_option_and_needles() -> None:
    assert audit_events.parse_codes("401-599") == audit_events.SEED_CODES
    assert audit_events.parse_codes("404, 500-502") == {404, 500, 501, 502}
    for bad in ("200", "400", "abc", "450-420", "401-600"):
        with pytest.raises(ValidationError):
            audit_events.parse_codes(bad)
    odd = [(n, b"") for n in audit_events.ODD_CODE_KEYS]  # the key's other spellings
    wide = audit_events.candidate_needles((), audit_events.SEED_CODES)
    assert [(n.literal, n.then) for n in wide] == [(b'"code":4', b""), (b'"code":5', b""), *odd]
    narrow = audit_events.candidate_needles((), audit_events.FORBIDDEN_CODES)
    assert [(n.literal, n.then) for n in narrow] == [(b'"code":40', b"13"), *odd]
    mixed = audit_events.candidate_needles((), audit_events.parse_codes("403,418,500"))
    assert [(n.literal, n.then) for n in mixed] == [
        (b'"code":40', b"3"), (b'"code":41', b"8"), (b'"code":50', b"0"), *odd,
    ]  # fmt: skip


def test_401_and_revoked_user() -> None:
    r = audit_events.extract(event(1, 401, user=""))
    assert r is not None and r.code == 401 and "Unauthorized" in r.message()
    r = audit_events.extract(event(2, 200, user="mallory"), frozenset({"mallory"}))
    assert r is not None and r.revoked and "REVOKED" in r.message()


def test_revoked_json_is_read_through_revocations(tmp_path: Path) -> None:
    p = tmp_path / "revoked.json"
    assert audit_events.load_revoked(p) == frozenset()  # missing: nothing revoked
    p.write_text(json.dumps([{"cn": "bob", "serial": "10"}, {"cn": "eve", "serial": "11"}]))
    assert audit_events.load_revoked(p) == {"bob", "eve"}
    # a broken denylist is reported (Critical) and revokes nothing; 401/403 still reported
    notes: list[tuple[int, str]] = []
    for junk in ("{not json", json.dumps({"revoked": []}), json.dumps([{"serial": "1"}])):
        p.write_text(junk)
        assert (
            audit_events.load_revoked(p, lambda prio, text: notes.append((prio, text)))
            == frozenset()
        )
    assert [prio for prio, _text in notes] == [2, 2, 2]
    assert all(text.startswith("Critical: ") for _prio, text in notes)
    assert "[0].cn" in notes[2][1]


def write_log(path: Path, lines: list[str]) -> None:
    with path.open("a") as fh:
        for line in lines:
            fh.write(line + "\n")


def paths(tmp_path: Path) -> ka.Paths:
    (tmp_path / "audit").mkdir(exist_ok=True)
    return ka.Paths(tmp_path / "audit" / "audit.log", tmp_path / "state", tmp_path / "revoked.json")


def collect(
    p: ka.Paths,
) -> tuple[logfollow.Follower[audit_events.Record], list[audit_events.Record], list[str]]:
    got: list[audit_events.Record] = []
    notes: list[str] = []
    f = ka.follower(p, got.extend, lambda _prio, text: notes.append(text), save_interval=0)
    return f, got, notes


def test_garbage_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    p = paths(tmp_path)
    write_log(
        p.log,
        [
            event(1, 403),
            '{"truncated": "responseStatus":{"code":403}',
            "\x00\xff garbage",
            '["code":403,',
            event(2, 200),
            event(3, 403),
        ],
    )
    f, got, notes = collect(p)
    stats = f.catch_up()
    assert [r.audit_id for r in got] == ["id-1", "id-3"]
    assert stats.garbage >= 2
    assert any("unparseable" in n for n in notes)


def test_cursor_resumes_and_follows_rotation(tmp_path: Path) -> None:
    p = paths(tmp_path)
    write_log(p.log, [event(i, 403 if i % 2 else 200) for i in range(10)])
    f, got, _ = collect(p)
    f.catch_up()
    assert len(got) == 5
    cursor = logfollow.Cursor.load(p.cursor)
    assert cursor is not None and cursor.offset == p.log.stat().st_size

    # restart: nothing is reported twice
    f, got, _ = collect(p)
    f.catch_up()
    assert got == []

    # while stopped: more lines, then rotation (lumberjack renames), then a new file
    write_log(p.log, [event(100, 403)])
    p.log.rename(p.log.with_name("audit-2026-11-29T01-00-00.000.log"))
    write_log(p.log, [event(101, 403), event(102, 200)])
    f, got, _ = collect(p)
    f.catch_up()
    assert [r.audit_id for r in got] == ["id-100", "id-101"]

    # following: rotation between two polls loses nothing, partial lines wait
    f.start()
    with p.log.open("a") as fh:
        fh.write(event(103, 403) + "\n" + event(104, 403)[:50])
    assert f.poll_once() == 1
    with p.log.open("a") as fh:
        fh.write(event(104, 403)[50:] + "\n")
    p.log.rename(p.log.with_name("audit-2026-11-29T02-00-00.000.log"))
    write_log(p.log, [event(105, 403)])
    f.poll_once()
    assert [r.audit_id for r in got][-3:] == ["id-103", "id-104", "id-105"]


def test_truncated_in_place_restarts_at_zero(tmp_path: Path) -> None:
    p = paths(tmp_path)
    write_log(p.log, [event(i, 403) for i in range(5)])
    f, got, _ = collect(p)
    f.catch_up()
    os.truncate(p.log, 0)
    write_log(p.log, [event(50, 403)])
    f.poll_once()
    assert got[-1].audit_id == "id-50"


def test_log_replaced_by_directory_or_missing(tmp_path: Path) -> None:
    p = paths(tmp_path)
    f, got, notes = collect(p)
    f.catch_up()
    assert got == [] and any("does not exist" in n for n in notes)
    p.log.mkdir()
    f, got, notes = collect(p)
    f.catch_up()
    assert got == [] and any("not a regular file" in n or "Is a directory" in n for n in notes)


def test_large_region_in_chunks(tmp_path: Path) -> None:
    p = paths(tmp_path)
    lines = [event(i, 403 if i % 100 == 0 else 200) for i in range(3000)]
    write_log(p.log, lines)
    assert p.log.stat().st_size > 1 << 20
    f, got, _ = collect(p)
    f.catch_up()
    assert len(got) == 30


def test_forbidden_log_and_mail_digest_rotation(tmp_path: Path) -> None:
    p = paths(tmp_path)
    log = ka.ForbiddenLog(p.forbidden)
    recs = [r for r in (audit_events.extract(event(i, 403)) for i in range(3)) if r]
    log.write(recs[:2])
    sent: list[tuple[str, str]] = []

    def fail(subject: str, body: str) -> None:
        raise ValidationError("smtp down")

    with pytest.raises(ValidationError):
        kubeapi_digest.mail_digest(p, fail)
    assert not p.forbidden.exists() or p.forbidden.stat().st_size == 0
    assert (p.state_dir / "forbidden.log.sending").exists()  # kept for the next run

    log.write(recs[2:])  # the writer notices the rotation and reopens
    assert kubeapi_digest.mail_digest(p, lambda s, b: sent.append((s, b))) == 3
    subject, body = sent[0]
    assert "3 forbidden" in subject and "alice" in body and "p2" in body
    assert (p.state_dir / "forbidden.log.1").exists()
    assert not (p.state_dir / "forbidden.log.sending").exists()
    assert kubeapi_digest.mail_digest(p, lambda s, b: sent.append((s, b))) == 0
    assert len(sent) == 1


MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --advertise-address=10.0.0.1
    - --audit-log-maxsize=100
    image: registry.local/k8s-p10/kube-apiserver:v1.26.3
    name: kube-apiserver
    volumeMounts:
    - mountPath: /etc/kubernetes/pki
      name: k8s-certs
  hostNetwork: true
  volumes:
  - hostPath:
      path: /etc/kubernetes/pki
      type: DirectoryOrCreate
    name: k8s-certs
"""


def test_install_audit_is_idempotent(tmp_path: Path) -> None:
    import yaml

    from podsec.host.paths import Host

    host = Host(tmp_path)
    manifest = tmp_path / "etc/kubernetes/manifests/kube-apiserver.yaml"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(MANIFEST)
    changed = audit_install.install_audit(host)
    assert len(changed) == 2
    doc = yaml.safe_load(manifest.read_text())
    cmd = doc["spec"]["containers"][0]["command"]
    assert "--audit-log-maxsize=500" in cmd and "--audit-log-maxsize=100" not in cmd
    assert "--audit-policy-file=/etc/kubernetes/audit/policy.yaml" in cmd
    assert "--audit-log-path=/etc/kubernetes/audit/audit.log" in cmd
    assert any(v["name"] == "audit" for v in doc["spec"]["volumes"])
    policy = (tmp_path / "etc/kubernetes/audit/policy.yaml").read_text()
    assert "audit.k8s.io/v1" in policy and "RequestResponse" in policy
    assert audit_install.install_audit(host) == []
    assert "--advertise-address=10.0.0.1" in manifest.read_text()


def test_install_audit_bad_manifest(tmp_path: Path) -> None:
    from podsec.errors import NotFoundError
    from podsec.host.paths import Host

    with pytest.raises(NotFoundError):
        audit_install.install_audit(Host(tmp_path))
    with pytest.raises(ValidationError):
        audit_install.patch_manifest("spec: [unclosed")
    with pytest.raises(ValidationError):
        audit_install.patch_manifest("spec:\n  containers: []\n")


def test_small_chunks_and_a_line_longer_than_the_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logscan, "_CHUNK", 4096)
    monkeypatch.setattr(logscan, "_LINE_MAX", 8192)
    p = paths(tmp_path)
    write_log(p.log, [event(1, 403), '{"huge": "' + "x" * 20000 + '", "code":403}', event(2, 403)])
    write_log(p.log, [event(i, 403 if i % 3 == 0 else 200) for i in range(3, 60)])
    f, got, _ = collect(p)
    stats = f.catch_up()
    ids = [r.audit_id for r in got]
    assert ids[:2] == ["id-1", "id-2"] and len(ids) == 2 + len(range(3, 60, 3))
    assert stats.garbage == 1
