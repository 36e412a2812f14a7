"""podsec rbac against the real control plane (etcd + kube-apiserver + controller-manager
v1.20.2 from tests/fixtures/kube.py): users get certificates through the CSR API, and
``kubectl --kubeconfig ~USER/.kube/config auth can-i`` proves what bindings give and take.

Linux users live in a --root sandbox (useradd --prefix), so the machine's /etc is untouched;
ownership checks resolve against the sandbox's passwd.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from tests.fixtures.kube import ControlPlane
from tests.fixtures.require import require_root, require_tool

from podsec.host.paths import Host
from podsec.kube import kubeconfig
from podsec.kube.client import Client
from podsec.rbac import account, certs, csr

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

BIN = Path(sys.executable).parent
TAG = f"{os.getpid() % 100000}"


@dataclass(frozen=True)
class Env:
    cp: ControlPlane
    root: Path
    home: Path  # HOME of the admin running podsec (no ~/.kube/config there)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "PODSEC"))}
        env.update(HOME=str(self.home), LANG="C.UTF-8", LANGUAGE="")
        env.update(extra)
        return env

    def podsec(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        argv = [str(BIN / "podsec"), "--root", str(self.root), "rbac", *args]
        return self._run(argv, self.env(), check)

    def legacy(
        self, prog: str, *args: str, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        env = self.env(PODSEC_ROOT=str(self.root), KUBECONFIG=str(self.cp.kubeconfig))
        return self._run([str(BIN / prog), *args], env, check)

    @staticmethod
    def _run(argv: list[str], env: dict[str, str], check: bool) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"{argv} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def admin(self) -> tuple[str, str]:
        return ("--kubeconfig", str(self.cp.kubeconfig))

    def user_config(self, user: str) -> Path:
        return self.root / "home" / user / ".kube" / "config"

    def can_i(self, user: str, verb: str, resource: str, ns: str | None = None) -> str:
        args = ["auth", "can-i", verb, resource, *(["-n", ns] if ns else [])]
        out = self.cp.kubectl(*args, kubeconfig=self.user_config(user), check=False)
        assert out.stdout.strip() in ("yes", "no"), out.stderr
        return out.stdout.strip()

    def uid(self, user: str) -> int:
        for line in (self.root / "etc/passwd").read_text().splitlines():
            f = line.split(":")
            if f[0] == user:
                return int(f[2])
        raise KeyError(user)

    def gid(self, group: str) -> int:
        for line in (self.root / "etc/group").read_text().splitlines():
            f = line.split(":")
            if f[0] == group:
                return int(f[2])
        raise KeyError(group)


@pytest.fixture(scope="module")
def rb(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    require_root()
    require_tool("useradd", "kubectl")
    base = tmp_path_factory.mktemp("rbac")
    root = base / "root"
    (root / "etc").mkdir(parents=True)
    (root / "home").mkdir()
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\nwheel:x:10:\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/gshadow").write_text("root:*::\nwheel:*::\n")
    home = base / "admin-home"
    home.mkdir()
    yield Env(control_plane, root, home)


@pytest.fixture(scope="module")
def alice(rb: Env) -> str:
    """A sandbox user with a kubeconfig from the cluster (groups k8s and devs-TAG)."""
    user = f"alice{TAG}"
    rb.podsec("create-user", user, check=True)
    # an existing context of the user's own must survive create-kubeconfig
    cfg = rb.user_config(user)
    cfg.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "home", "cluster": {"server": "https://10.9.9.9:6443"}}],
                "users": [{"name": "me", "user": {"token": "x"}}],
                "contexts": [{"name": "home", "context": {"cluster": "home", "user": "me"}}],
                "current-context": "home",
            }
        )
    )
    r = rb.podsec(
        "create-kubeconfig", user, f"devs{TAG}", "k8s", *rb.admin(), "--json", "--expiration", "2h"
    )
    assert r.returncode == 0, r.stderr
    return user


def _csrs(rb: Env) -> list[str]:
    out = rb.cp.kubectl("get", "csr", "-o", "json")
    return [i["metadata"]["name"] for i in json.loads(out.stdout)["items"]]


# ----------------------------------------------------------------------------- accounts
def test_create_user_groups_modes_and_owners(rb: Env) -> None:
    user = f"carol{TAG}"
    r = rb.podsec("create-user", user)
    assert r.returncode == 0, r.stderr
    assert "created" in r.stdout
    group_lines = {
        ln.split(":")[0]: ln.split(":")[3]
        for ln in (rb.root / "etc/group").read_text().splitlines()
    }
    assert user in group_lines["podman"].split(",") and user in group_lines["k8s"].split(",")
    home = rb.root / "home" / user
    kube = home / ".kube"
    assert stat.S_IMODE(home.stat().st_mode) == 0o770
    assert stat.S_IMODE(kube.stat().st_mode) == 0o700
    assert (kube.stat().st_uid, kube.stat().st_gid) == (rb.uid(user), rb.gid("k8s"))
    again = rb.legacy("podsec-k8s-rbac-create-user", user)
    assert again.returncode == 0 and "already set up" in again.stdout


def test_existing_user_gets_what_is_missing(rb: Env) -> None:
    user = f"dave{TAG}"
    subprocess.run(["useradd", "--prefix", str(rb.root), "--create-home", user], check=True)
    (rb.root / "home" / user).chmod(0o755)
    r = rb.podsec("create-user", user)
    assert r.returncode == 0 and "completed" in r.stdout, r.stderr
    assert stat.S_IMODE((rb.root / "home" / user).stat().st_mode) == 0o770
    assert (rb.root / "home" / user / ".kube").is_dir()
    groups = (rb.root / "etc/group").read_text()
    assert any(ln.startswith("k8s:") and user in ln for ln in groups.splitlines())


# ----------------------------------------------------------------------------- kubeconfig
def test_kubeconfig_file_identity_and_kept_contexts(rb: Env, alice: str) -> None:
    cfg = rb.user_config(alice)
    st = cfg.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == rb.uid(alice)
    doc = kubeconfig.read(cfg)
    ctx = f"{alice}@podsec-test"
    assert {c["name"] for c in doc["contexts"]} == {"home", ctx}
    assert doc["current-context"] == ctx
    cert_pem, _key_pem = kubeconfig.user_credentials(doc, alice)
    info = certs.info(cert_pem)
    assert info.cn == alice and sorted(info.groups) == sorted([f"devs{TAG}", "k8s"])
    assert rb.can_i(alice, "get", "pods", "default") == "no"  # authenticated, nothing granted
    assert not [n for n in _csrs(rb) if alice in n], "no CSR object may be left behind"


def test_expiration_ignored_by_120_is_reported(rb: Env) -> None:
    user = f"erin{TAG}"
    rb.podsec("create-user", user, check=True)
    r = rb.podsec(
        "create-kubeconfig",
        user,
        *rb.admin(),
        "--expiration",
        "1h",
        "--key-type",
        "ecdsa",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["requestedSeconds"] == 3600
    # Kubernetes 1.20 drops spec.expirationSeconds; the signer uses its own duration
    assert data["expirationHonoured"] is False and data["lifetimeSeconds"] > 3600
    assert "ignores expirationSeconds" in r.stderr


# ----------------------------------------------------------------------------- bind / unbind
def test_can_i_no_then_yes_then_no(rb: Env, alice: str) -> None:
    ns = f"proj{TAG}"
    rb.cp.kubectl("create", "namespace", ns, check=False)
    assert rb.can_i(alice, "list", "pods", ns) == "no"
    r = rb.legacy("podsec-k8s-rbac-bindrole", alice, "role=clusterrole", "view", "viewers", ns)
    assert r.returncode == 0, r.stderr
    assert rb.can_i(alice, "list", "pods", ns) == "yes"
    assert rb.can_i(alice, "delete", "pods", ns) == "no"
    assert rb.can_i(alice, "list", "pods", "default") == "no"
    roles = json.loads(rb.legacy("podsec-k8s-rbac-get-userroles", alice, check=True).stdout)
    assert roles[alice]["roles"]["namespaces"] == [
        {
            ns: [
                {
                    "bindRoleName": "viewers",
                    "bindedRoleType": "ClusterRole",
                    "bindedRoleName": "view",
                    "unbindCmd": f"podsec-k8s-rbac-unbindrole {alice} role view viewers {ns}",
                }
            ]
        }
    ]
    # the unbindCmd printed by roles is the command that works
    unbind = roles[alice]["roles"]["namespaces"][0][ns][0]["unbindCmd"].split()
    r = rb.legacy(unbind[0], *unbind[1:])
    assert r.returncode == 0, r.stderr
    assert rb.can_i(alice, "list", "pods", ns) == "no"
    assert rb.cp.kubectl("get", "rolebinding", "viewers", "-n", ns, check=False).returncode != 0
    again = rb.legacy(unbind[0], *unbind[1:])
    assert again.returncode == 1 and "does not exist" in again.stderr


def test_shared_binding_lives_until_last_subject_leaves(rb: Env, alice: str) -> None:
    other = f"frank{TAG}"
    rb.podsec("create-user", other, check=True)
    bind = f"shared{TAG}"
    for user in (alice, other):
        rb.podsec("bind", user, "clusterrole", "view", bind, *rb.admin(), check=True)
    got = json.loads(rb.cp.kubectl("get", "clusterrolebinding", bind, "-o", "json").stdout)
    assert [s["name"] for s in got["subjects"]] == [alice, other]
    # binding the same user again changes nothing
    r = rb.podsec("bind", alice, "clusterrole", "view", bind, *rb.admin(), "--json")
    assert json.loads(r.stdout)["action"] == "unchanged"
    r = rb.podsec("unbind", alice, "clusterrole", "view", bind, *rb.admin(), "--json")
    assert json.loads(r.stdout)["action"] == "removed"
    got = json.loads(rb.cp.kubectl("get", "clusterrolebinding", bind, "-o", "json").stdout)
    assert [s["name"] for s in got["subjects"]] == [other]
    r = rb.podsec("unbind", alice, "clusterrole", "view", bind, *rb.admin())
    assert r.returncode == 1 and "is not bound" in r.stderr  # the original could not say so
    r = rb.podsec("unbind", other, "clusterrole", "view", bind, *rb.admin(), "--json")
    assert json.loads(r.stdout)["action"] == "deleted"
    assert rb.cp.kubectl("get", "clusterrolebinding", bind, check=False).returncode != 0


def test_system_prefix_is_kept(rb: Env) -> None:
    name = f"system:podsec-probe{TAG}"
    bind = f"probe{TAG}"
    rb.podsec("bind", name, "clusterrole", "view", bind, *rb.admin(), check=True)
    got = json.loads(rb.cp.kubectl("get", "clusterrolebinding", bind, "-o", "json").stdout)
    assert got["subjects"][0]["name"] == name
    rb.podsec("unbind", name, "clusterrole", "view", bind, *rb.admin(), check=True)


# ----------------------------------------------------------------------------- roles, who-can
def test_roles_through_certificate_groups_and_rules(rb: Env, alice: str) -> None:
    bind = f"devsview{TAG}"
    rb.podsec("bind", "--group", f"devs{TAG}", "clusterrole", "view", bind, *rb.admin(), check=True)
    try:
        assert rb.can_i(alice, "list", "configmaps", "kube-system") == "yes"
        r = rb.podsec("roles", alice, "showRules", *rb.admin())
        assert r.returncode == 0, r.stderr
        items = json.loads(r.stdout)[alice]["clusterRoles"]
        item = next(i for i in items if i["bindRoleName"] == bind)
        assert item["viaGroup"] == f"devs{TAG}"
        view = json.loads(rb.cp.kubectl("get", "clusterrole", "view", "-o", "json").stdout)
        assert item["rules"] == view["rules"]
        bare = json.loads(rb.podsec("roles", alice, "--no-groups", *rb.admin(), check=True).stdout)
        assert all(i["bindRoleName"] != bind for i in bare[alice]["clusterRoles"])
        table = rb.podsec("roles", alice, "--format", "table", *rb.admin(), check=True).stdout
        assert bind in table
        who = json.loads(
            rb.podsec(
                "who-can",
                "list",
                "configmaps",
                "-n",
                "kube-system",
                *rb.admin(),
                "--json",
                check=True,
            ).stdout
        )
        assert {"kind": "Group", "name": f"devs{TAG}"}.items() <= next(
            g for g in who if g["binding"]["name"] == bind
        ).items()
        nobody = json.loads(
            rb.podsec("who-can", "delete", "nodes", *rb.admin(), "--json", check=True).stdout
        )
        assert all(g["binding"]["name"] != bind for g in nobody)
    finally:
        rb.podsec("unbind", "--group", f"devs{TAG}", "clusterrole", "view", bind, *rb.admin())


def test_who_can_resolves_api_groups(rb: Env, alice: str) -> None:
    ns = f"apps{TAG}"
    rb.cp.kubectl("create", "namespace", ns, check=False)
    rb.podsec("bind", alice, "role=clusterrole", "edit", "editors", ns, *rb.admin(), check=True)
    who = json.loads(
        rb.podsec(
            "who-can", "create", "deployments", "-n", ns, *rb.admin(), "--json", check=True
        ).stdout
    )
    assert any(g["name"] == alice and g["binding"]["namespace"] == ns for g in who)
    assert rb.can_i(alice, "create", "deployments.apps", ns) == "yes"
    rb.podsec("unbind", alice, "role=clusterrole", "edit", "editors", ns, *rb.admin(), check=True)


# ----------------------------------------------------------------------------- renew / revoke
def test_renew_issues_a_new_working_certificate(rb: Env) -> None:
    user = f"gina{TAG}"
    rb.podsec("create-user", user, check=True)
    rb.podsec("create-kubeconfig", user, *rb.admin(), check=True)
    before = certs.info(kubeconfig.user_credentials(kubeconfig.read(rb.user_config(user)), user)[0])
    r = rb.podsec("renew", user, *rb.admin(), "--within", "1d", "--json")
    assert json.loads(r.stdout)["renewed"] is False  # valid for a year: nothing to do
    r = rb.podsec("renew", user, *rb.admin(), "--json")
    assert r.returncode == 0, r.stderr
    after = certs.info(kubeconfig.user_credentials(kubeconfig.read(rb.user_config(user)), user)[0])
    assert after.serial != before.serial and after.groups == before.groups
    assert rb.can_i(user, "get", "pods", "default") == "no"  # the new certificate authenticates


def test_revoke_records_and_removes_the_user_but_not_its_groups(rb: Env) -> None:
    """Without the webhook (this control plane has Node,RBAC only) revoke takes the user's
    own grants and says the groups' stay; tests/e2e/test_rbac_revocation.py is the webhook."""
    user = f"henry{TAG}"
    group = f"ops{TAG}"
    ns = f"rev{TAG}"
    rb.cp.kubectl("create", "namespace", ns, check=False)
    rb.podsec("create-user", user, check=True)
    rb.podsec("create-kubeconfig", user, group, *rb.admin(), check=True)
    rb.podsec("bind", user, "role=clusterrole", "edit", "eds", ns, *rb.admin(), check=True)
    rb.podsec(
        "bind", "--group", group, "clusterrole", "view", f"opsview{TAG}", *rb.admin(), check=True
    )
    assert rb.can_i(user, "delete", "pods", ns) == "yes"
    assert rb.can_i(user, "list", "secrets", ns) == "yes"
    r = rb.podsec("revoke", user, *rb.admin(), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["enforced"] is False and "not set up" in r.stderr
    assert rb.can_i(user, "delete", "pods", ns) == "no"
    # the group's binding is shared with its other members: left alone
    assert rb.can_i(user, "get", "pods", ns) == "yes"
    cert = certs.info(kubeconfig.user_credentials(kubeconfig.read(rb.user_config(user)), user)[0])
    records = json.loads((rb.root / "var/lib/podsec/rbac/revoked.json").read_text())
    mine = [x for x in records if x["cn"] == user]
    assert mine and mine[-1]["serial"] == str(cert.serial) and mine[-1]["groups"] == [group]
    assert json.loads(rb.podsec("roles", user, "--no-groups", *rb.admin(), check=True).stdout)[
        user
    ] == {"clusterRoles": [], "roles": {"allNamespaces": [], "namespaces": []}}
    # the revoked certificate still authenticates: re-binding its CN is refused, its group not
    again = rb.podsec("bind", user, "role=clusterrole", "edit", "eds", ns, *rb.admin())
    assert again.returncode == 1 and "revoked certificate" in again.stderr, again.stderr
    grp = rb.podsec("bind", "--group", group, "clusterrole", "view", f"opsview2{TAG}", *rb.admin())
    assert grp.returncode == 0, grp.stderr
    rb.podsec(
        "bind", user, "role=clusterrole", "edit", "forced", ns, "--force", *rb.admin(), check=True
    )
    assert rb.can_i(user, "delete", "pods", ns) == "yes"  # why the refusal matters
    rb.podsec("unbind", user, "role=clusterrole", "edit", "forced", ns, *rb.admin(), check=True)


# ----------------------------------------------------------------------------- bad input
def test_bad_input_one_clear_error_each(rb: Env, alice: str, tmp_path: Path) -> None:
    def err(r: subprocess.CompletedProcess[str], code: int, text: str) -> None:
        assert r.returncode == code, (r.returncode, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert lines and lines[0].startswith("podsec: ") and text in lines[0], r.stderr
        assert "Traceback" not in r.stderr

    err(
        rb.podsec("create-kubeconfig", "nosuchuser", *rb.admin()),
        1,
        "user nosuchuser does not exist",
    )
    err(rb.podsec("create-user", "Bad User"), 2, "invalid user or group name")
    err(rb.podsec("bind", alice, "role", "view", "b1", *rb.admin()), 2, "needs a namespace")
    err(
        rb.podsec("bind", alice, "role=clusterrole", "view", "b1", *rb.admin()),
        2,
        "needs a namespace",
    )
    err(
        rb.podsec("bind", alice, "clusterrole", "view", "b1", "default", *rb.admin()),
        2,
        "cluster-wide",
    )
    err(
        rb.podsec("bind", alice, "clusterrole", "no-such-role", "b1", *rb.admin()),
        1,
        "does not exist",
    )
    err(
        rb.podsec("bind", "ghost", "clusterrole", "view", "b1", *rb.admin()),
        1,
        "user ghost does not exist",
    )
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(rb.cp.kubeconfig.read_text().replace(rb.cp.server, "https://127.0.0.1:1"))
    err(rb.podsec("roles", alice, "--kubeconfig", str(dead)), 1, "cannot reach the Kubernetes API")
    err(rb.podsec("create-kubeconfig", alice, "--kubeconfig", str(dead)), 1, "cannot reach")
    err(rb.podsec("roles", alice, "--kubeconfig", str(tmp_path / "none")), 1, "does not exist")
    # an unreadable user kubeconfig: error before any CSR, the file untouched
    user = f"ivan{TAG}"
    rb.podsec("create-user", user, check=True)
    rb.user_config(user).write_text("clusters: [\n")
    before = set(_csrs(rb))
    err(rb.podsec("create-kubeconfig", user, *rb.admin()), 1, "is unreadable")
    assert rb.user_config(user).read_text() == "clusters: [\n"
    assert set(_csrs(rb)) == before
    # a non-admin identity: forbidden, named as such
    weak = rb.cp.kubeconfig_for(tmp_path, f"weak{TAG}")
    rb.user_config(user).unlink()
    err(rb.podsec("create-kubeconfig", user, "--kubeconfig", str(weak)), 1, "(403)")
    assert not rb.user_config(user).exists()


def _admin_api(rb: Env) -> Client:
    host = Host(rb.root)
    return Client(kubeconfig.admin_connection(str(rb.cp.kubeconfig), host))


def test_csr_not_signed_in_time_leaves_no_csr(rb: Env) -> None:
    key = certs.new_key("ecdsa")
    with _admin_api(rb) as api, pytest.raises(csr.CsrError, match="not signed within"):
        csr.issue(
            api,
            f"late{TAG}",
            certs.csr_pem(key, f"late{TAG}", ["k8s"]),
            expiration=None,
            timeout=1.0,
            approve=False,
        )
    assert not [n for n in _csrs(rb) if f"late{TAG}" in n]


def test_denied_csr_is_one_error_and_removed(rb: Env) -> None:
    user = f"deny{TAG}"
    key = certs.new_key("ecdsa")
    failure: list[BaseException] = []

    def request() -> None:
        with _admin_api(rb) as api:
            try:
                csr.issue(
                    api,
                    user,
                    certs.csr_pem(key, user, ["k8s"]),
                    expiration=None,
                    timeout=60,
                    approve=False,
                )
            except BaseException as exc:
                failure.append(exc)

    thread = threading.Thread(target=request)
    thread.start()
    deadline = time.monotonic() + 30
    name = ""
    while not name and time.monotonic() < deadline:
        name = next((n for n in _csrs(rb) if n.startswith(f"podsec-{user}-")), "")
        time.sleep(0.1)
    assert name, "the CSR never appeared"
    rb.cp.kubectl("certificate", "deny", name)
    thread.join(60)
    assert failure and isinstance(failure[0], csr.CsrError) and "denied" in str(failure[0])
    assert name not in _csrs(rb)


def test_kubeconfig_owner_via_core(rb: Env, alice: str) -> None:
    """account.write_config keeps 0600 and the owner when rewriting (idempotent)."""
    host = Host(rb.root)
    _entry, kube = account.kube_dir(host, alice)
    text = (kube / "config").read_text()
    assert account.write_config(host, alice, kube, text) is False


def test_token_admin_kubeconfig_through_kubeconfig_env(rb: Env, alice: str, tmp_path: Path) -> None:
    """A bearer-token admin (a ServiceAccount bound to cluster-admin) found through KUBECONFIG
    (a merged path list) works for both the fast read path and the official client's writes."""
    sa = f"podsec-admin{TAG}"
    rb.cp.kubectl("-n", "kube-system", "create", "serviceaccount", sa, check=False)
    rb.cp.kubectl(
        "create",
        "clusterrolebinding",
        sa,
        "--clusterrole=cluster-admin",
        f"--serviceaccount=kube-system:{sa}",
        check=False,
    )
    token = ""
    deadline = time.monotonic() + 30
    while not token and time.monotonic() < deadline:
        out = rb.cp.kubectl("-n", "kube-system", "get", "secrets", "-o", "json")
        for item in json.loads(out.stdout)["items"]:
            ann = item["metadata"].get("annotations") or {}
            if ann.get("kubernetes.io/service-account.name") == sa and item.get("data", {}).get(
                "token"
            ):
                import base64

                token = base64.b64decode(item["data"]["token"]).decode()
        time.sleep(0.2)
    assert token, "the token controller made no token"
    kc = tmp_path / "token.kubeconfig"
    kc.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "t",
                        "cluster": {
                            "server": rb.cp.server,
                            "certificate-authority": str(rb.cp.ca_cert),
                        },
                    }
                ],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "t", "context": {"cluster": "t", "user": "sa"}}],
                "current-context": "t",
            }
        )
    )
    env = rb.env(KUBECONFIG=f"{tmp_path / 'missing'}:{kc}")
    argv = [str(BIN / "podsec"), "--root", str(rb.root), "rbac"]
    bind = f"tok{TAG}"
    r = rb._run([*argv, "bind", alice, "clusterrole", "view", bind, "--json"], env, False)
    assert r.returncode == 0 and json.loads(r.stdout)["action"] == "created", r.stderr
    r = rb._run([*argv, "roles", alice, "--no-groups"], env, True)
    assert any(i["bindRoleName"] == bind for i in json.loads(r.stdout)[alice]["clusterRoles"])
    rb._run([*argv, "unbind", alice, "clusterrole", "view", bind], env, True)


def test_concurrent_binds_lose_nobody(rb: Env) -> None:
    """Five processes add five users to one new binding at once: resourceVersion + retry."""
    bind = f"crowd{TAG}"
    users = [f"system:crowd{TAG}-{i}" for i in range(5)]
    argv = [str(BIN / "podsec"), "--root", str(rb.root), "rbac", "bind"]
    procs = [
        subprocess.Popen(
            [*argv, u, "clusterrole", "view", bind, *rb.admin()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=rb.env(),
        )
        for u in users
    ]
    codes = [p.wait(120) for p in procs]
    assert codes == [0] * 5, [p.stderr.read() for p in procs if p.stderr]
    got = json.loads(rb.cp.kubectl("get", "clusterrolebinding", bind, "-o", "json").stdout)
    assert sorted(s["name"] for s in got["subjects"]) == sorted(users)
    rb.cp.kubectl("delete", "clusterrolebinding", bind)


def test_revoke_without_certificate_removes_bindings(rb: Env) -> None:
    user = f"system:nocert{TAG}"
    bind = f"nocert{TAG}"
    rb.podsec("bind", user, "clusterrole", "view", bind, *rb.admin(), check=True)
    r = rb.podsec("revoke", user, "--no-cert", *rb.admin(), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["serial"] == "" and data["changes"][0]["action"] == "deleted"
    assert rb.cp.kubectl("get", "clusterrolebinding", bind, check=False).returncode != 0


# ----------------------------------------------------------------------------- certs
def test_certs_lists_the_issued_certificate_its_revocation_and_last_sight(rb: Env) -> None:
    user = f"ivy{TAG}"
    rb.podsec("create-user", user, check=True)
    rb.podsec("create-kubeconfig", user, "devs", *rb.admin(), check=True)
    # the sandbox's audit directory is the control plane's (the log's own name is kept:
    # the reader refuses a symlinked log file)
    audit = rb.root / "etc/kubernetes/audit"
    if not audit.exists():
        audit.parent.mkdir(parents=True, exist_ok=True)
        audit.symlink_to(rb.cp.audit_log.parent)
    rb.cp.kubectl("get", "pods", kubeconfig=rb.user_config(user), check=False)  # 403, seen
    (mine,) = json.loads(rb.podsec("certs", user, *rb.admin(), "--json", check=True).stdout)
    cert = certs.info(kubeconfig.user_credentials(kubeconfig.read(rb.user_config(user)), user)[0])
    assert mine["serial"] == str(cert.serial) and mine["groups"] == ["devs"]
    assert mine["sources"] == ["record"] and mine["revoked"] is False and not mine["expired"]
    assert mine["lastSeen"] >= mine["notBefore"][:19], mine
    rb.podsec("revoke", user, *rb.admin(), check=True)
    (after,) = json.loads(rb.podsec("certs", user, "--no-cluster", "--json", check=True).stdout)
    assert after["revoked"] is True and after["revokedAt"]
    # the Nagios check sees the revoked certificate used after its revocation
    rb.cp.kubectl("get", "pods", kubeconfig=rb.user_config(user), check=False)
    check = subprocess.run(
        [str(BIN / "podsec"), "--root", str(rb.root), "monitor", "check-certs"],
        capture_output=True,
        text=True,
        env=rb.env(PODSEC_SYSLOG_SOCKET=str(rb.root / "no-syslog.sock")),
        timeout=60,
        check=False,
    )
    assert check.returncode == 2 and user in check.stdout, check.stdout + check.stderr


# ----------------------------------------------------------------------------- bind --for
def test_bind_for_is_removed_when_its_time_is_over_with_a_syslog_trail(
    rb: Env, tmp_path: Path
) -> None:
    import socket

    user = f"system:oncall{TAG}"
    bind = f"breakglass{TAG}"
    path = tmp_path / "log.sock"
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(str(path))
    sink.settimeout(5)
    env = rb.env(PODSEC_SYSLOG_SOCKET=str(path))
    base = [str(BIN / "podsec"), "--root", str(rb.root), "rbac"]
    r = rb._run(
        [*base, "bind", user, "clusterrole", "view", bind, "--for", "4s", *rb.admin(), "--json"],
        env,
        check=True,
    )
    granted = json.loads(r.stdout)
    assert granted["action"] == "created" and granted["until"]
    line = sink.recv(4096).decode()
    assert f"granted User {user} ClusterRoleBinding {bind} (ClusterRole view) until" in line
    assert (rb.root / "etc/systemd/system/podsec-rbac-expire.timer").is_file()
    early = rb._run([*base, "expire", *rb.admin(), "--json"], env, check=True)
    assert json.loads(early.stdout) == []
    assert rb.cp.kubectl("get", "clusterrolebinding", bind, check=False).returncode == 0
    time.sleep(4.5)
    late = rb._run([*base, "expire", *rb.admin(), "--json"], env, check=True)
    (gone,) = json.loads(late.stdout)
    assert gone["action"] == "deleted" and gone["subject"]["name"] == user
    assert rb.cp.kubectl("get", "clusterrolebinding", bind, check=False).returncode != 0
    line = sink.recv(4096).decode()
    assert f"expired: User {user} ClusterRoleBinding {bind} removed (granted" in line
    sink.close()


# ----------------------------------------------------------------------------- suggest
def _audit_dir(rb: Env) -> None:
    """The sandbox's audit directory is the control plane's."""
    audit = rb.root / "etc/kubernetes/audit"
    if not audit.exists():
        audit.parent.mkdir(parents=True, exist_ok=True)
        audit.symlink_to(rb.cp.audit_log.parent)


def _await_rbac(rb: Env, user: str, verb: str, what: str, ns: str) -> None:
    """RBAC sees new bindings through its informer: wait until ``user`` may (admin's can-i)."""
    deadline = time.monotonic() + 30
    while (
        rb.cp.kubectl(
            "auth", "can-i", verb, what, "-n", ns, f"--as={user}", check=False
        ).stdout.strip()
        != "yes"
    ):
        assert time.monotonic() < deadline, f"{user} may not {verb} {what} after 30 s"
        time.sleep(0.2)


def test_suggest_round_trip_a_fresh_user_does_the_same_work_and_nothing_more(
    rb: Env, tmp_path: Path
) -> None:
    ns, worker, fresh = f"rt{TAG}", f"sam{TAG}", f"fresh{TAG}"
    rb.cp.kubectl("create", "namespace", ns)
    rb.cp.kubectl(
        "create",
        "rolebinding",
        f"{worker}-edit",
        "-n",
        ns,
        "--clusterrole=edit",
        f"--user={worker}",
    )

    def work(kc: Path) -> None:
        for args in (
            ("create", "configmap", "c1", "--from-literal=a=1"),
            ("get", "configmap", "c1"),
            ("get", "pods"),
            ("delete", "configmap", "c1", "--wait=false"),
        ):
            rb.cp.kubectl(*args, "-n", ns, kubeconfig=kc)

    _await_rbac(rb, worker, "create", "configmaps", ns)
    work(rb.cp.kubeconfig_for(tmp_path, worker))
    _audit_dir(rb)
    text = rb.podsec("suggest", worker, "--since", "1h", "--bind-to", fresh, check=True).stdout
    rb.cp.kubectl("apply", "-f", "-", input=text)
    _await_rbac(rb, fresh, "delete", "configmaps/c1", ns)
    fresh_kc = rb.cp.kubeconfig_for(tmp_path, fresh)

    def can(verb: str, what: str) -> str:
        out = rb.cp.kubectl("auth", "can-i", verb, what, "-n", ns, kubeconfig=fresh_kc, check=False)
        assert out.stdout.strip() in ("yes", "no"), out.stderr
        return out.stdout.strip()

    assert [can("create", "configmaps"), can("get", "configmaps/c1"), can("list", "pods")] == [
        "yes"
    ] * 3
    assert can("delete", "configmaps/c1") == "yes"
    # nothing more: other names, other verbs, other resources
    for verb, what in (
        ("get", "configmaps/other"),
        ("update", "configmaps/c1"),
        ("get", "secrets"),
        ("create", "pods"),
        ("delete", "pods"),
    ):
        assert can(verb, what) == "no", (verb, what, text)
    work(fresh_kc)  # the same work, done for real
    r = rb.podsec("unused", worker, "--since", "1h", *rb.admin(), "--json", check=True)
    unused = {(x["resource"], x["verb"]) for x in json.loads(r.stdout)}
    assert ("secrets", "get") in unused and ("configmaps", "create") not in unused


def test_create_kubeconfig_leaves_the_seeds_files_and_the_admin_context(
    rb: Env, tmp_path: Path
) -> None:
    """issue 16: the seed leaves USER.key, USER.csr and USER.crt in ~USER/.kube and adds the
    user's context to the admin's kubeconfig (podsec did neither). The admin's current
    context is kept, and the added context really acts as the user."""
    user = f"seedk{TAG}"
    rb.podsec("create-user", user, check=True)
    admin_cfg = tmp_path / "admin.kubeconfig"
    admin_cfg.write_bytes(rb.cp.kubeconfig.read_bytes())
    admin_cfg.chmod(0o600)
    before = yaml.safe_load(admin_cfg.read_text())
    r = rb.podsec("create-kubeconfig", user, "--kubeconfig", str(admin_cfg), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    kube = rb.root / "home" / user / ".kube"
    for suffix, mode in (("key", 0o600), ("csr", 0o644), ("crt", 0o644)):
        path = kube / f"{user}.{suffix}"
        assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == mode, path
        assert path.stat().st_uid == rb.uid(user)
    assert b"PRIVATE KEY" in (kube / f"{user}.key").read_bytes()
    assert b"CERTIFICATE REQUEST" in (kube / f"{user}.csr").read_bytes()
    assert b"BEGIN CERTIFICATE" in (kube / f"{user}.crt").read_bytes()
    after = yaml.safe_load(admin_cfg.read_text())
    assert out["adminConfig"] == str(admin_cfg)
    assert after["current-context"] == before["current-context"]
    assert out["context"] in [c["name"] for c in after["contexts"]]
    assert after["clusters"] == before["clusters"]
    who = rb.cp.kubectl(
        "auth", "can-i", "list", "secrets", "--context", out["context"], kubeconfig=admin_cfg,
        check=False,
    )  # fmt: skip
    assert who.stdout.strip() == "no"  # the user's identity, not the admin's
    r = rb.podsec("create-kubeconfig", user, "--kubeconfig", str(admin_cfg), "--no-admin-context")
    assert r.returncode == 0, r.stderr
