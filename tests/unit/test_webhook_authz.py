"""The revocation authorizer: decisions, the denylist's reloads, the TLS server with its pinned
CA, the API server's flags and the manifest edit of enforce-revocation.

The answer shapes are kube-apiserver 1.20's (plugin/pkg/authorizer/webhook/webhook.go):
``denied`` ends the decision, ``allowed: false`` without ``denied`` is no opinion."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from podsec import revocations
from podsec.errors import ValidationError
from podsec.host.paths import Host
from podsec.rbac import certs, enforce, revoke
from podsec.rbac.bindings import Subject
from podsec.webhook import authz

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _sar(user: str, groups: list[str], version: str = "v1") -> dict[str, Any]:
    key = "groups" if version == "v1" else "group"  # v1beta1 spells it "group"
    return {
        "apiVersion": f"authorization.k8s.io/{version}",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            key: groups,
            "resourceAttributes": {"namespace": "dev", "verb": "get", "resource": "pods"},
        },
    }


def _write(path: Path, *records: revocations.Revoked) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(revocations.dumps(records))
    tmp.replace(path)  # as revoke writes it: a new inode


def _rec(cn: str, serial: str, not_after: dt.datetime | None) -> revocations.Revoked:
    return revocations.Revoked(
        cn, serial, ("devs",), not_after=not_after.isoformat() if not_after else ""
    )


def test_revoked_user_is_denied_through_every_group_others_no_opinion(tmp_path: Path) -> None:
    path = tmp_path / "revoked.json"
    _write(path, _rec("alice", "7", NOW + dt.timedelta(days=30)))
    deny = authz.Denylist(path)
    for groups in (["devs", "system:authenticated"], ["ops"], []):
        out = authz.review(_sar("alice", groups), deny, NOW)
        assert out["status"]["denied"] is True and out["status"]["allowed"] is False
        assert "alice" in out["status"]["reason"] and "serial 7" in out["status"]["reason"]
    bob = authz.review(_sar("bob", ["devs", "system:authenticated"]), deny, NOW)
    assert bob == {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "status": {"allowed": False},
    }
    # v1beta1 is answered in v1beta1
    old = authz.review(_sar("alice", ["devs"], "v1beta1"), deny, NOW)
    assert old["apiVersion"] == "authorization.k8s.io/v1beta1" and old["status"]["denied"]


def test_denial_lasts_until_the_last_revoked_certificate_expires(tmp_path: Path) -> None:
    path = tmp_path / "revoked.json"
    first, second = NOW + dt.timedelta(hours=1), NOW + dt.timedelta(days=2)
    _write(path, _rec("alice", "1", first), _rec("alice", "2", second))
    deny = authz.Denylist(path)
    assert authz.review(_sar("alice", []), deny, NOW + dt.timedelta(hours=2))["status"]["denied"]
    later = authz.review(_sar("alice", []), deny, second + dt.timedelta(seconds=1))
    assert "denied" not in later["status"]  # the name is free again
    # an unknown expiry is refused until the record goes
    _write(path, _rec("carol", "3", None))
    far = NOW + dt.timedelta(days=3650)
    assert authz.review(_sar("carol", []), deny, far)["status"]["denied"]


def test_denylist_follows_the_file_and_keeps_the_last_good_list(tmp_path: Path) -> None:
    path = tmp_path / "revoked.json"
    deny = authz.Denylist(path)
    assert deny.lookup("alice", NOW) is None  # no file: nothing revoked
    _write(path, _rec("alice", "1", NOW + dt.timedelta(days=1)))
    assert deny.lookup("alice", NOW) is not None  # picked up without a restart
    path.write_text("{broken")
    out = authz.review(_sar("alice", []), deny, NOW)
    assert out["status"]["denied"] is True  # a broken file lifts nothing
    assert "revoked.json" in out["status"]["evaluationError"]
    _write(path)
    assert authz.review(_sar("alice", []), deny, NOW)["status"] == {"allowed": False}


def test_review_refuses_what_is_not_a_subject_access_review(tmp_path: Path) -> None:
    deny = authz.Denylist(tmp_path / "none.json")
    for body in (
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
        {"apiVersion": "authorization.k8s.io/v2", "kind": "SubjectAccessReview"},
    ):
        with pytest.raises(ValueError, match="SubjectAccessReview"):
            authz.review(body, deny, NOW)
    empty = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview"}
    assert authz.review(empty, deny, NOW)["status"] == {"allowed": False}


def test_webhook_mode_goes_before_rbac() -> None:
    assert authz.with_webhook_mode("Node,RBAC") == "Node,Webhook,RBAC"
    assert authz.with_webhook_mode("RBAC") == "Webhook,RBAC"
    assert authz.with_webhook_mode("Node,RBAC,Webhook") == "Node,Webhook,RBAC"
    assert authz.with_webhook_mode("Node,ABAC") == "Node,ABAC,Webhook"
    args = authz.apiserver_args()
    assert args["authorization-webhook-cache-unauthorized-ttl"] == "0s"
    assert args["authorization-webhook-version"] == "v1"
    assert (
        args["authorization-webhook-config-file"]
        == "/etc/kubernetes/podsec-authz/webhook.kubeconfig"
    )


def test_kubeconfig_is_private_and_names_the_ca(tmp_path: Path) -> None:
    kc = authz.install_config(tmp_path / "d", port=9555, uid=os.getuid(), gid=os.getgid())
    assert kc.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "d" / "tls.key").stat().st_mode & 0o777 == 0o600
    target = authz.read_kubeconfig(kc)
    assert target.url == "https://127.0.0.1:9555/authorize"
    assert target.ca_pem == (tmp_path / "d" / "ca.crt").read_bytes()
    with pytest.raises(authz.AuthzError, match="not set up"):
        authz.read_kubeconfig(tmp_path / "missing")


MANIFEST = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "kube-apiserver", "namespace": "kube-system"},
    "spec": {
        "containers": [
            {
                "name": "kube-apiserver",
                "command": [
                    "kube-apiserver",
                    "--authorization-mode=Node,RBAC",
                    "--secure-port=6443",
                ],
                "volumeMounts": [{"name": "k8s-certs", "mountPath": "/etc/kubernetes/pki"}],
            }
        ],
        "volumes": [{"name": "k8s-certs", "hostPath": {"path": "/etc/kubernetes/pki"}}],
    },
}


def test_manifest_edit_is_idempotent_and_mounts_only_the_kubeconfig() -> None:
    text, args = enforce.patch_manifest(yaml.safe_dump(MANIFEST))
    pod = yaml.safe_load(text)
    command = pod["spec"]["containers"][0]["command"]
    assert "--authorization-mode=Node,Webhook,RBAC" in command
    assert "--authorization-mode=Node,RBAC" not in command and "--secure-port=6443" in command
    assert (
        f"--authorization-webhook-config-file={args['authorization-webhook-config-file']}"
        in command
    )
    mount = pod["spec"]["containers"][0]["volumeMounts"][-1]
    assert mount == {
        "name": "podsec-authz",
        "mountPath": "/etc/kubernetes/podsec-authz/webhook.kubeconfig",
        "readOnly": True,
    }
    assert pod["spec"]["volumes"][-1]["hostPath"]["type"] == "File"
    again, _ = enforce.patch_manifest(text)
    assert again == text
    allow_all = json.loads(json.dumps(MANIFEST))
    allow_all["spec"]["containers"][0]["command"][1] = "--authorization-mode=AlwaysAllow"
    with pytest.raises(ValidationError, match="allows everything"):
        enforce.patch_manifest(yaml.safe_dump(allow_all))


def test_enforce_writes_config_unit_and_manifest_keeping_a_copy_away(tmp_path: Path) -> None:
    host = Host(tmp_path)
    manifest = tmp_path / "etc/kubernetes/manifests/kube-apiserver.yaml"
    manifest.parent.mkdir(parents=True)
    original = yaml.safe_dump(MANIFEST)
    manifest.write_text(original)
    res = enforce.enforce(host, start=False)
    assert res.manifest_changed and "Webhook" in manifest.read_text()
    # the kubelet runs every file of manifests/: the copy lives elsewhere
    assert sorted(p.name for p in manifest.parent.iterdir()) == ["kube-apiserver.yaml"]
    assert (tmp_path / res.backup.lstrip("/")).read_text() == original
    assert (tmp_path / "etc/kubernetes/podsec-authz/webhook.kubeconfig").is_file()
    unit = (tmp_path / "etc/systemd/system/podsec-rbac-authz.service").read_text()
    assert "podsec.cli.daemon authz address=127.0.0.1 port=9444" in unit
    assert not enforce.enforce(host, start=False).manifest_changed
    # a missing manifest changes nothing
    empty = Host(tmp_path / "other")
    with pytest.raises(ValidationError, match="does not exist"):
        enforce.enforce(empty, start=False)
    assert not (tmp_path / "other").exists()


def test_revoke_leaves_group_bindings_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    removed: list[list[Subject]] = []
    monkeypatch.setattr(
        revoke.bindings, "remove_subjects", lambda api, subjects: removed.append(subjects) or []
    )
    info = certs.CertInfo("alice", ("devs",), 11, NOW, NOW + dt.timedelta(days=1), "ab" * 32, "ec")
    res = revoke.revoke(Host(tmp_path), object(), "alice", info, now=NOW)  # type: ignore[arg-type]
    assert removed == [[Subject("User", "alice")]]
    assert not res.enforced and any("not set up" in w for w in res.warnings)
    deny = authz.Denylist(tmp_path / "var/lib/podsec/rbac/revoked.json")
    assert deny.lookup("alice", NOW) is not None and deny.lookup("bob", NOW) is None


def test_check_authz_is_critical_when_the_webhook_fails_open() -> None:
    from podsec.monitor import authz_check, plugin

    thresholds, _ = plugin.build_thresholds({})
    down = authz_check.report(
        authz_check.Result("https://127.0.0.1:9444/authorize", None, "refused"), thresholds
    )
    assert down.state == plugin.State.CRITICAL and "fail-open" in down.summary
    assert down.render().endswith("| 'time'=U;;;0\n")
    blind = authz_check.report(
        authz_check.Result("u", 1.0, evaluation_error="revoked.json: not JSON"), thresholds
    )
    assert blind.state == plugin.State.CRITICAL and "revocation list" in blind.summary
    ok = authz_check.report(authz_check.Result("u", 2.5), thresholds)
    assert ok.state == plugin.State.OK and "'time'=2.5ms;;100;0" in ok.render()
    slow, _ = plugin.build_thresholds({"w": "1"})
    assert authz_check.report(authz_check.Result("u", 2.5), slow).state == plugin.State.WARNING


def test_revoke_without_a_certificate_refuses_what_podsec_issued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--no-cert: the certificates podsec's issued.json holds for the user, still valid, are
    recorded — the webhook refuses the name (it recorded nothing before, issue 15)."""
    from podsec import issued

    monkeypatch.setattr(revoke.bindings, "remove_subjects", lambda api, subjects: [])
    host = Host(tmp_path)
    day = dt.timedelta(days=1)
    records = [
        issued.Issued("carol", "7", ("devs",), not_after=(NOW + 30 * day).isoformat()),
        issued.Issued("carol", "6", ("devs",), not_after=(NOW - day).isoformat()),  # expired
        issued.Issued("dan", "8", ("ops",), not_after=(NOW + 30 * day).isoformat()),
    ]
    path = host.path("/var/lib/podsec/rbac/issued.json")
    path.parent.mkdir(parents=True)
    path.write_text(issued.dumps(records))
    res = revoke.revoke(host, object(), "carol", None, now=NOW)  # type: ignore[arg-type]
    assert res.serials == ("7",) and res.serial == "7" and res.groups == ("devs",)
    assert not any("no certificate recorded" in w for w in res.warnings)
    deny = authz.Denylist(tmp_path / "var/lib/podsec/rbac/revoked.json")
    assert deny.lookup("carol", NOW) is not None and deny.lookup("dan", NOW) is None
    # a name podsec issued nothing to: nothing recorded, and it says so
    other = revoke.revoke(host, object(), "erin", None, now=NOW)  # type: ignore[arg-type]
    assert other.serials == () and other.serial == "" and other.record_file == ""
    assert any("no certificate recorded" in w for w in other.warnings)
