"""podsec.rbac pure logic: kubeconfig loading and merging, certificates, argument forms,
the roles document, who-can rule matching, scp argv, revocation records."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from podsec.errors import UsageError, ValidationError
from podsec.host.paths import Host
from podsec.kube import kubeconfig
from podsec.rbac import bindings, certs, names, remoteplace, revoke, roles, whocan
from podsec.rbac.bindings import Subject

CA_PEM_FAKE = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


# ----------------------------------------------------------------------------- kubeconfig
def _kc(
    path: Path, *, cluster: str, server: str, user: str, ctx: str, current: bool = True
) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server}}],
        "users": [{"name": user, "user": {"token": f"tok-{user}"}}],
        "contexts": [{"name": ctx, "context": {"cluster": cluster, "user": user}}],
    }
    if current:
        doc["current-context"] = ctx
    path.write_text(yaml.safe_dump(doc))
    return path


def test_explicit_kubeconfig_is_the_only_file(tmp_path: Path) -> None:
    a = _kc(tmp_path / "a", cluster="c1", server="https://a:6443", user="ua", ctx="x")
    env = {"KUBECONFIG": str(tmp_path / "nothing"), "HOME": str(tmp_path)}
    conn = kubeconfig.admin_connection(str(a), Host(tmp_path), env=env)
    assert (conn.server, conn.token, conn.cluster_name) == ("https://a:6443", "tok-ua", "c1")


def test_kubeconfig_env_merges_first_wins_and_first_current_context(tmp_path: Path) -> None:
    a = _kc(tmp_path / "a", cluster="c1", server="https://a:6443", user="u", ctx="x", current=False)
    b = _kc(tmp_path / "b", cluster="c1", server="https://b:6443", user="u", ctx="x")
    env = {"KUBECONFIG": f"{a}:{tmp_path / 'missing'}:{b}", "HOME": str(tmp_path)}
    conn = kubeconfig.admin_connection(None, Host(tmp_path), env=env)
    assert conn.server == "https://a:6443"  # the first file defining c1 wins
    assert conn.context_name == "x"  # current-context from the first file that sets it


def test_home_then_admin_conf_fallback(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/kubernetes").mkdir(parents=True)
    _kc(
        root / "etc/kubernetes/admin.conf",
        cluster="k",
        server="https://adm:6443",
        user="a",
        ctx="y",
    )
    env = {"HOME": str(tmp_path / "home")}
    assert kubeconfig.admin_connection(None, Host(root), env=env).server == "https://adm:6443"
    (tmp_path / "home/.kube").mkdir(parents=True)
    _kc(tmp_path / "home/.kube/config", cluster="h", server="https://home:6443", user="a", ctx="z")
    assert kubeconfig.admin_connection(None, Host(root), env=env).server == "https://home:6443"


def test_no_kubeconfig_at_all_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(kubeconfig.KubeconfigError, match="no admin kubeconfig found"):
        kubeconfig.admin_connection(None, Host(tmp_path), env={"HOME": str(tmp_path)})


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (": [", "invalid YAML"),
        ("- a\n- b\n", "not a mapping"),
        ("clusters: 3\n", "clusters must be a list"),
    ],
)
def test_unreadable_kubeconfig(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "config"
    p.write_text(text)
    with pytest.raises(kubeconfig.KubeconfigError, match=match):
        kubeconfig.read(p)


def test_credential_plugins_are_refused(tmp_path: Path) -> None:
    p = _kc(tmp_path / "c", cluster="c", server="https://s:1", user="u", ctx="x")
    doc = yaml.safe_load(p.read_text())
    doc["users"][0]["user"] = {"exec": {"command": "aws"}}
    p.write_text(yaml.safe_dump(doc))
    with pytest.raises(kubeconfig.KubeconfigError, match="credential plugin"):
        kubeconfig.connection(kubeconfig.read(p))


def test_relative_files_resolve_against_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki/ca.crt").write_bytes(CA_PEM_FAKE)
    p = _kc(tmp_path / "c", cluster="c", server="https://s:1", user="u", ctx="x")
    doc = yaml.safe_load(p.read_text())
    doc["clusters"][0]["cluster"]["certificate-authority"] = "pki/ca.crt"
    p.write_text(yaml.safe_dump(doc))
    assert kubeconfig.connection(kubeconfig.read(p)).ca_pem == CA_PEM_FAKE


def test_merge_user_keeps_other_entries_and_sets_context() -> None:
    existing = kubeconfig.empty()
    existing["clusters"] = [{"name": "other", "cluster": {"server": "https://o:1"}}]
    existing["users"] = [{"name": "other", "user": {"token": "t"}}]
    existing["contexts"] = [{"name": "mine", "context": {"cluster": "other", "user": "other"}}]
    existing["current-context"] = "mine"
    out = kubeconfig.merge_user(
        existing,
        user="alice",
        cluster="prod",
        server="https://p:6443",
        ca_pem=b"CA",
        cert_pem=b"CERT",
        key_pem=b"KEY",
    )
    text = kubeconfig.dump(out)
    again = yaml.safe_load(text)
    assert [c["name"] for c in again["contexts"]] == ["mine", "alice@prod"]
    assert again["current-context"] == "alice@prod"
    user = next(u for u in again["users"] if u["name"] == "alice")["user"]
    assert base64.b64decode(user["client-key-data"]) == b"KEY"
    # re-running replaces, never duplicates
    twice = kubeconfig.merge_user(
        again,
        user="alice",
        cluster="prod",
        server="https://p:6443",
        ca_pem=b"CA",
        cert_pem=b"C2",
        key_pem=b"K2",
    )
    assert [c["name"] for c in twice["contexts"]] == ["mine", "alice@prod"]
    assert len(twice["users"]) == 2


def test_set_server_keeps_port_and_brackets_ipv6() -> None:
    doc = {"clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}]}
    kubeconfig.set_server(doc, "10.0.0.5")
    assert doc["clusters"][0]["cluster"]["server"] == "https://10.0.0.5:6443"
    kubeconfig.set_server(doc, "fd00::5")
    assert doc["clusters"][0]["cluster"]["server"] == "https://[fd00::5]:6443"


# ----------------------------------------------------------------------------- certificates
@pytest.mark.parametrize(
    ("text", "seconds"),
    [("600", 600), ("90d", 90 * 86400), ("1y", 365 * 86400), ("1d12h", 36 * 3600), ("30m", 1800)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert certs.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "10x", "1d 2h", "-1d", "abc"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        certs.parse_duration(text)


def _ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _sign(ca: tuple[Any, x509.Certificate], csr_pem: bytes, eku: bool = True) -> bytes:
    from cryptography.hazmat.primitives import serialization

    csr = x509.load_pem_x509_csr(csr_pem)
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca[1].subject)
        .public_key(csr.public_key())
        .serial_number(1234567890123456789)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(hours=1))
    )
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH if eku else ExtendedKeyUsageOID.SERVER_AUTH]
    b = b.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return b.sign(ca[0], hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _pem(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("kind", ["rsa", "ecdsa"])
def test_csr_subject_and_issued_checks(kind: str) -> None:
    ca = _ca()
    key = certs.new_key(kind)
    csr_pem = certs.csr_pem(key, "alice", ["devs", "k8s"])
    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    orgs = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert orgs == ["devs", "k8s"]
    cert = _sign(ca, csr_pem)
    got = certs.check_issued(cert, _pem(ca[1]), key, "alice", ["k8s", "devs"])
    assert (got.cn, got.serial, got.key_type) == ("alice", 1234567890123456789, kind)


def test_issued_checks_fail_one_by_one() -> None:
    ca, other = _ca(), _ca()
    key = certs.new_key("ecdsa")
    good = _sign(ca, certs.csr_pem(key, "alice", ["k8s"]))
    with pytest.raises(ValidationError, match="does not chain"):
        certs.check_issued(good, _pem(other[1]), key, "alice", ["k8s"])
    with pytest.raises(ValidationError, match="expected CN=bob"):
        certs.check_issued(good, _pem(ca[1]), key, "bob", ["k8s"])
    with pytest.raises(ValidationError, match="expected CN=alice O=admins"):
        certs.check_issued(good, _pem(ca[1]), key, "alice", ["admins"])
    with pytest.raises(ValidationError, match="private key"):
        certs.check_issued(good, _pem(ca[1]), certs.new_key("ecdsa"), "alice", ["k8s"])
    server_only = _sign(ca, certs.csr_pem(key, "alice", ["k8s"]), eku=False)
    with pytest.raises(ValidationError, match="client authentication"):
        certs.check_issued(server_only, _pem(ca[1]), key, "alice", ["k8s"])


@pytest.mark.parametrize("kind", ["rsa", "ecdsa"])
def test_issued_checks_without_the_newer_cryptography_api(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Debian 12's cryptography (38) has neither load_pem_x509_certificates (39) nor
    verify_directly_issued_by (40): the fallbacks decide the same."""
    from cryptography.exceptions import InvalidSignature

    ca, other = _ca(), _ca()
    key = certs.new_key(kind)
    good = x509.load_pem_x509_certificate(_sign(ca, certs.csr_pem(key, "alice", ["k8s"])))
    certs.verify_issued_by_manually(good, ca[1])
    # the same issuer name, another key: only the signature tells them apart
    with pytest.raises(InvalidSignature):
        certs.verify_issued_by_manually(good, other[1])
    stranger = _ca_named(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "other-ca")]))
    with pytest.raises(ValueError, match="issuer"):
        certs.verify_issued_by_manually(good, stranger[1])
    monkeypatch.delattr(x509, "load_pem_x509_certificates", raising=False)
    bundle = _pem(other[1]) + _pem(ca[1])
    assert [c.subject for c in certs.load_certs(bundle)] == [other[1].subject, ca[1].subject]
    with pytest.raises(ValueError):
        certs.load_certs(b"garbage")


def _ca_named(name: x509.Name) -> tuple[Any, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert


# ----------------------------------------------------------------------------- argument forms
def test_role_types_and_namespaces() -> None:
    t = bindings.target("role", "pod-reader", "readers", "default")
    assert (t.binding_kind, t.role_kind) == ("RoleBinding", "Role")
    t = bindings.target("role=clusterrole", "edit", "devs", "dev")
    assert (t.binding_kind, t.role_kind) == ("RoleBinding", "ClusterRole")
    t = bindings.target("clusterrole", "system:basic-user", "basic", None)
    assert (t.binding_kind, t.role_kind, t.namespace) == ("ClusterRoleBinding", "ClusterRole", None)
    assert t.role_url().endswith("/clusterroles/system:basic-user")
    with pytest.raises(UsageError, match="needs a namespace"):
        bindings.target("role", "r", "b", None)
    with pytest.raises(UsageError, match="needs a namespace"):
        bindings.target("role=clusterrole", "r", "b", "")
    with pytest.raises(UsageError, match="cluster-wide"):
        bindings.target("clusterrole", "view", "b", "default")
    with pytest.raises(UsageError, match="invalid role type"):
        bindings.target("roles", "view", "b", None)
    with pytest.raises(UsageError, match="invalid binding name"):
        bindings.target("clusterrole", "view", "Bad_Name", None)
    with pytest.raises(UsageError, match="invalid namespace"):
        bindings.target("role", "view", "b", "Not-A-Label")


@pytest.mark.parametrize("name", ["", "a b", "a/b", "x\n", "\x01"])
def test_invalid_subject_names(name: str) -> None:
    with pytest.raises(UsageError):
        names.subject(name)


def test_subject_names_are_kept_as_given() -> None:
    s = Subject("User", "system:serviceaccount-reader")
    assert s.to_api()["name"] == "system:serviceaccount-reader"  # the original stripped system:
    assert s.matches({"kind": "User", "name": "system:serviceaccount-reader"})
    assert not s.matches({"kind": "ServiceAccount", "name": "system:serviceaccount-reader"})


# ----------------------------------------------------------------------------- roles document
class FakeApi:
    """Canned list answers for the pure document logic (the real API is in integration)."""

    def __init__(self, docs: dict[str, Any]) -> None:
        self.docs = docs

    def get_many(self, urls: list[str]) -> list[Any]:
        return [self.docs[u.rsplit("/", 1)[-1]] for u in urls]


def _b(
    name: str, kind: str, role: str, subjects: list[dict[str, str]], ns: str | None = None
) -> Any:
    meta: dict[str, str] = {"name": name}
    if ns:
        meta["namespace"] = ns
    return {"metadata": meta, "roleRef": {"kind": kind, "name": role}, "subjects": subjects}


U = {"kind": "User", "name": "alice"}
G = {"kind": "Group", "name": "devs"}
SA = {"kind": "ServiceAccount", "name": "alice", "namespace": "default"}

DOCS = {
    "clusterrolebindings": {
        "items": [
            _b("z-view", "ClusterRole", "view", [U]),
            _b("a-edit", "ClusterRole", "edit", [G]),
            _b("sa-only", "ClusterRole", "admin", [SA]),
            _b("nobody", "ClusterRole", "admin", []),
        ]
    },
    "rolebindings": {
        "items": [
            _b("readers", "Role", "pod-reader", [U, G], "dev"),
            _b("basic", "ClusterRole", "system:basic-user", [G], "apps"),
            _b("other", "Role", "x", [{"kind": "User", "name": "bob"}], "dev"),
        ]
    },
    "clusterroles": {"items": [{"metadata": {"name": "view"}, "rules": [{"verbs": ["get"]}]}]},
    "roles": {
        "items": [
            {"metadata": {"name": "pod-reader", "namespace": "dev"}, "rules": [{"verbs": ["list"]}]}
        ]
    },
}


def test_roles_document_shape_and_groups() -> None:
    doc = roles.user_roles(FakeApi(DOCS), "alice", ["devs"])  # type: ignore[arg-type]
    body = doc["alice"]
    assert list(doc) == ["alice"]
    assert set(body) == {"clusterRoles", "roles"}
    assert body["roles"]["allNamespaces"] == []
    assert body["clusterRoles"] == [
        {
            "bindRoleName": "a-edit",
            "bindedRoleType": "ClusterRole",
            "bindedRoleName": "edit",
            "unbindCmd": "podsec rbac unbind --group devs clusterrole edit a-edit",
            "viaGroup": "devs",
        },
        {
            "bindRoleName": "z-view",
            "bindedRoleType": "ClusterRole",
            "bindedRoleName": "view",
            "unbindCmd": "podsec-k8s-rbac-unbindrole alice clusterrole view z-view",
        },
    ]
    assert body["roles"]["namespaces"] == [
        {
            "apps": [
                {
                    "bindRoleName": "basic",
                    "bindedRoleType": "ClusterRole",
                    "bindedRoleName": "system:basic-user",
                    "unbindCmd": "podsec rbac unbind --group devs role system:basic-user basic apps",
                    "viaGroup": "devs",
                }
            ]
        },
        {
            "dev": [
                {
                    "bindRoleName": "readers",
                    "bindedRoleType": "Role",
                    "bindedRoleName": "pod-reader",
                    "unbindCmd": "podsec-k8s-rbac-unbindrole alice role pod-reader readers dev",
                }
            ]
        },
    ]
    assert roles.user_roles(FakeApi(DOCS), "alice")["alice"]["roles"]["namespaces"][0].keys() == {  # type: ignore[arg-type]
        "dev"
    }


def test_roles_show_rules() -> None:
    doc = roles.user_roles(FakeApi(DOCS), "alice", show_rules=True)  # type: ignore[arg-type]
    body = doc["alice"]
    assert body["clusterRoles"][0]["rules"] == [{"verbs": ["get"]}]
    assert body["roles"]["namespaces"][0]["dev"][0]["rules"] == [{"verbs": ["list"]}]
    assert len(roles.table_rows(doc)) == 2


# ----------------------------------------------------------------------------- who-can
def test_rule_matching() -> None:
    rule = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]}
    assert whocan._rule_allows(rule, "get", "", "pods")
    assert whocan._rule_allows(rule, "get", "", "pods/log")
    assert not whocan._rule_allows(rule, "delete", "", "pods")
    assert not whocan._rule_allows(rule, "get", "apps", "pods")
    star = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}
    assert whocan._rule_allows(star, "delete", "apps", "deployments")
    assert whocan.parse_resource("deployments.apps/scale") == ("deployments", "apps", "scale")
    assert whocan.parse_resource("Pods") == ("pods", None, "")
    with pytest.raises(UsageError):
        whocan.parse_resource("po ds")


# ----------------------------------------------------------------------------- remoteplace
def test_scp_argv_is_an_argv_not_a_shell_string() -> None:
    argv = remoteplace.scp_argv(
        "10.0.0.5",
        "alice",
        port=2222,
        identity="/k/id",
        options=["StrictHostKeyChecking=yes"],
        dest="/tmp/x",
    )
    assert argv == [
        "scp",
        "-q",
        "-o",
        "BatchMode=yes",
        "-P",
        "2222",
        "-i",
        "/k/id",
        "-o",
        "StrictHostKeyChecking=yes",
        "--",
        "alice@10.0.0.5:.kube/config",
        "/tmp/x",
    ]
    assert remoteplace.scp_argv("fd00::1", "a", dest="d")[-2] == "a@[fd00::1]:.kube/config"


@pytest.mark.parametrize("address", ["-oProxyCommand=x", "a b", "host;rm", ""])
def test_bad_addresses_and_logins(address: str) -> None:
    with pytest.raises(UsageError):
        remoteplace.check_address(address)
    with pytest.raises(UsageError):
        remoteplace.scp_argv("h", "-oProxyCommand=x", dest="d")
    with pytest.raises(UsageError):
        remoteplace.scp_argv("h", "a", options=["ProxyCommand x"], dest="d")


def test_remote_merge_keeps_local_entries() -> None:
    local = kubeconfig.empty()
    local["contexts"] = [{"name": "home", "context": {}}, {"name": "alice@k", "context": {"x": 1}}]
    remote = kubeconfig.empty()
    remote["contexts"] = [{"name": "alice@k", "context": {"cluster": "k", "user": "alice"}}]
    remote["current-context"] = "alice@k"
    out = remoteplace.merge(local, remote)
    assert [c["name"] for c in out["contexts"]] == ["home", "alice@k"]
    assert out["contexts"][1]["context"] == {"cluster": "k", "user": "alice"}
    assert out["current-context"] == "alice@k"


# ----------------------------------------------------------------------------- revocation
def test_revocation_record_shape(tmp_path: Path) -> None:
    host = Host(tmp_path)
    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    info = certs.CertInfo(
        cn="alice",
        groups=("k8s",),
        serial=2**100 + 7,
        not_before=now,
        not_after=now + dt.timedelta(days=1),
        fingerprint="ab" * 32,
        key_type="rsa",
    )
    path = revoke.record(host, info, "alice", now)
    revoke.record(host, info, "alice", now)  # the same serial is recorded once
    data = json.loads(path.read_text())
    assert isinstance(data, list) and len(data) == 1
    assert data[0]["cn"] == "alice" and data[0]["serial"] == str(2**100 + 7)
    assert data[0]["groups"] == ["k8s"] and data[0]["revoked_at"].startswith("2026-01-02")
    # the unprivileged webhook reads it (it names certificates, no secret)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert path == tmp_path / "var/lib/podsec/rbac/revoked.json"
    path.write_text("{}")
    with pytest.raises(ValidationError, match="JSON list"):
        revoke.load_records(host)


# ----------------------------------------------------------------------------- CSR round trip
class CsrApi:
    """Records requests; signs on the first GET after approval (a stand-in for the signer in
    pure-logic tests — the real signer is exercised in tests/integration/test_rbac_cluster.py)."""

    def __init__(self, outcome: str = "sign") -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.outcome = outcome

    def request(self, method: str, url: str, body: Any = None, query: Any = None) -> Any:
        self.calls.append((method, url, body))
        if method == "GET":
            status: dict[str, Any] = {}
            if self.outcome == "sign":
                status["certificate"] = base64.b64encode(b"CERT").decode()
            elif self.outcome == "deny":
                status["conditions"] = [{"type": "Denied", "status": "True", "message": "no"}]
            return {"metadata": {"name": url.rsplit("/", 1)[-1]}, "status": status}
        return {}

    def retry_conflicts(self, action: Any) -> Any:
        return action()


def test_csr_body_expiration_and_cleanup() -> None:
    from podsec.rbac import csr

    api = CsrApi()
    got = csr.issue(api, "alice", b"PEM", expiration=7200, timeout=5)  # type: ignore[arg-type]
    assert got.cert_pem == b"CERT"
    method, _url, body = api.calls[0]
    assert method == "POST"
    assert body["spec"] == {
        "request": base64.b64encode(b"PEM").decode(),
        "signerName": "kubernetes.io/kube-apiserver-client",
        "usages": ["client auth"],
        "expirationSeconds": 7200,
    }
    assert body["metadata"]["name"].startswith("podsec-alice-")
    approval = next(c for c in api.calls if c[1].endswith("/approval"))
    assert approval[2]["status"]["conditions"][-1]["type"] == "Approved"
    assert api.calls[-1][0] == "DELETE"  # the CSR object is always removed


def test_csr_denied_still_deleted() -> None:
    from podsec.rbac import csr

    api = CsrApi("deny")
    with pytest.raises(csr.CsrError, match="denied"):
        csr.issue(api, "alice", b"PEM", expiration=None, timeout=5)  # type: ignore[arg-type]
    assert "expirationSeconds" not in api.calls[0][2]["spec"]
    assert api.calls[-1][0] == "DELETE"


def test_rebinding_a_revoked_name_is_refused_until_expiry(tmp_path: Path) -> None:
    host = Host(tmp_path)
    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    info = certs.CertInfo("bob", ("ops",), 5, now, now + dt.timedelta(days=30), "00", "rsa")
    revoke.record(host, info, "bob", now)
    with pytest.raises(ValidationError, match="revoked certificate valid until 2026-02-01"):
        revoke.refuse_rebinding(host, "User", "bob", now)
    # a group is shared: binding it serves its other members (the webhook refuses bob)
    revoke.refuse_rebinding(host, "Group", "ops", now)
    revoke.refuse_rebinding(host, "User", "alice", now)
    revoke.refuse_rebinding(host, "User", "bob", now + dt.timedelta(days=31))  # expired: fine


def test_user_at_remote_user() -> None:
    from podsec.rbac import issue

    assert issue.split_user("alice") == ("alice", "u7s-admin")  # rootless default
    assert issue.split_user("alice@root") == ("alice", "root")
    with pytest.raises(UsageError):
        issue.split_user("alice@")


class _LostAnswer(CsrApi):
    """The API server makes the CSR, then the connection drops before the answer: the
    client sees an error for a create that happened (the API server stopped mid-run)."""

    def request(self, method: str, url: str, body: Any = None, query: Any = None) -> Any:
        answer = super().request(method, url, body, query)
        if method == "POST":
            from podsec.kube.client import Unreachable

            raise Unreachable("cannot reach the Kubernetes API at https://x: EOF")
        return answer


def test_csr_whose_create_answer_is_lost_is_still_deleted() -> None:
    from podsec.kube.client import Unreachable
    from podsec.rbac import csr

    api = _LostAnswer()
    with pytest.raises(Unreachable):
        csr.issue(api, "alice", b"PEM", expiration=None, timeout=5)  # type: ignore[arg-type]
    assert [c[0] for c in api.calls] == ["POST", "DELETE"]
    assert api.calls[1][1] == f"{CSR_URL}/{api.calls[0][2]['metadata']['name']}"


CSR_URL = "/apis/certificates.k8s.io/v1/certificatesigningrequests"


class _Listing(CsrApi):
    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names
        self.queries: list[Any] = []

    def get(self, url: str, query: Any = None) -> Any:
        self.queries.append((url, query))
        return {"items": [{"metadata": {"name": n}} for n in self.names]}


def test_stale_csrs_of_the_user_are_removed_and_no_others() -> None:
    """What a killed run (or one whose API server went away) left is removed by the next
    run for the same user: names of podsec's exact form for that user only."""
    from podsec.rbac import csr

    listing = [
        "podsec-alice-0badc0de",  # an earlier run's
        "podsec-alice-bob-0badc0de",  # user alice-bob's
        "podsec-alice-0badc0de1",  # not podsec's form
        "podsec-alicex-0badc0de",
        "csr-alice",
    ]
    api = _Listing(listing)
    assert csr.remove_stale(api, "alice") == ["podsec-alice-0badc0de"]  # type: ignore[arg-type]
    assert api.queries == [(CSR_URL, {"labelSelector": "podsec.alt/user=alice"})]
    assert api.calls == [("DELETE", f"{CSR_URL}/podsec-alice-0badc0de", None)]
