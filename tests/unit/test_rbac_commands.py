"""The rules the rbac commands used to hold in the CLI, now in the core: who a binding may
name, which certificate revoke takes, and the JSON shape of each result (the shapes the
commands printed before, key for key)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from podsec.errors import NotFoundError, UsageError
from podsec.host.paths import Host
from podsec.rbac import bindings, certs, grant, issue, revoke
from podsec.rbac.bindings import Subject

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def _tree(tmp_path: Path, *users: str) -> Host:
    etc = tmp_path / "etc"
    etc.mkdir()
    lines = ["root:x:0:0:root:/root:/bin/sh"]
    lines += [f"{u}:x:{1000 + i}:{1000 + i}::/home/{u}:/bin/sh" for i, u in enumerate(users)]
    (etc / "passwd").write_text("\n".join(lines) + "\n")
    (etc / "group").write_text("root:x:0:\n")
    return Host(tmp_path)


def test_a_user_subject_must_have_an_account(tmp_path: Path) -> None:
    host = _tree(tmp_path, "alice")
    assert grant.subject(host, "alice") == Subject("User", "alice")
    with pytest.raises(NotFoundError, match="user bob does not exist") as err:
        grant.subject(host, "bob")
    assert "--any-user" in (err.value.hint or "")
    assert grant.subject(host, "bob", any_user=True) == Subject("User", "bob")
    # system: identities and groups are taken as named
    assert grant.subject(host, "system:kube-proxy") == Subject("User", "system:kube-proxy")
    assert grant.subject(host, "devs", group=True) == Subject("Group", "devs")


def test_subject_name_is_checked_before_the_account(tmp_path: Path) -> None:
    host = _tree(tmp_path)
    with pytest.raises(UsageError, match="invalid user or group name"):
        grant.subject(host, "Bad User", any_user=True)


def test_revoke_certificate_choice(tmp_path: Path) -> None:
    host = _tree(tmp_path, "alice")
    with pytest.raises(UsageError, match="exclude each other"):
        revoke.resolve_cert(host, "alice", "a.crt", no_cert=True)
    assert revoke.resolve_cert(host, "alice", no_cert=True) is None
    with pytest.raises(NotFoundError, match="cannot read"):
        revoke.resolve_cert(host, "alice", str(tmp_path / "missing.crt"))
    # the default is the certificate of ~alice/.kube/config, which is not there
    with pytest.raises(NotFoundError, match=r"\.kube"):
        revoke.resolve_cert(host, "alice")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(600, "10m"), (3600, "1h"), (90 * 86400, "90d"), (86400 + 1, "24h"), (59, "59s"), (61, "61s")],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert certs.human_duration(seconds) == text


def _issued(requested: int | None = 86400) -> issue.Issued:
    return issue.Issued(
        user="alice",
        groups=("k8s", "devs"),
        path="/home/alice/.kube/config",
        context="alice@kubernetes",
        cluster="kubernetes",
        server="https://10.0.0.1:6443",
        serial=2**80 + 1,
        not_after=NOW,
        requested_seconds=requested,
        lifetime_seconds=365 * 86400,
    )


def test_issued_and_renewal_json() -> None:
    doc = _issued().as_dict()
    assert doc == {
        "user": "alice",
        "groups": ["k8s", "devs"],
        "path": "/home/alice/.kube/config",
        "context": "alice@kubernetes",
        "cluster": "kubernetes",
        "server": "https://10.0.0.1:6443",
        "serial": str(2**80 + 1),  # as text: JSON readers lose precision past 2**53
        "notAfter": NOW.isoformat(),
        "requestedSeconds": 86400,
        "lifetimeSeconds": 365 * 86400,
        "expirationHonoured": False,
        "files": [],
        "adminConfig": "",
    }
    kept = issue.Renewal("alice", False, NOW).as_dict()
    assert kept == {"user": "alice", "renewed": False, "notAfter": NOW.isoformat()}
    renewed = issue.Renewal("alice", True, NOW, _issued(None)).as_dict()
    assert renewed["renewed"] is True and renewed["expirationHonoured"] is True
    json.dumps(renewed)


def test_change_and_revocation_json() -> None:
    target = bindings.target("role=clusterrole", "edit", "devs-edit", "devs")
    change = bindings.Change(target, Subject("User", "alice"), "added")
    assert change.as_dict() == {
        "subject": {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
        "binding": {"kind": "RoleBinding", "name": "devs-edit", "namespace": "devs"},
        "role": {"kind": "ClusterRole", "name": "edit"},
        "action": "added",
    }
    res = revoke.Revocation(
        cn="alice",
        serial="7",
        groups=("k8s",),
        changes=(change,),
        record_file="/var/lib/podsec/rbac/revoked.json",
        enforced=True,
        warnings=("w",),
        serials=("7",),
    )
    assert res.as_dict() == {
        "cn": "alice",
        "serial": "7",
        "serials": ["7"],
        "groups": ["k8s"],
        "enforced": True,
        "recordFile": "/var/lib/podsec/rbac/revoked.json",
        "changes": [
            {
                "subject": change.as_dict()["subject"],
                "binding": change.as_dict()["binding"],
                "action": "added",
            }
        ],
        "warnings": ["w"],
    }
