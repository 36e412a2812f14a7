"""Revocation at the API server, end to end on the real control plane (kube-apiserver 1.20.2
built from Debian's source, with --authorization-mode=Node,Webhook,RBAC and the flags
`podsec rbac enforce-revocation` prints): revoke alice of devs and alice is refused at once,
through every group, while bob of devs keeps his access; a new certificate for alice is
refused until the last revoked one expires; the webhook down is fail-open and check-authz
goes CRITICAL."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID
from tests.fixtures.kube import (
    CertAuthority,
    ControlPlane,
    _name,
    free_port,
    new_key,
    require_k8s_binaries,
    require_program,
    running_control_plane,
    write_cert,
    write_key,
    write_kubeconfig,
)
from tests.fixtures.require import require_root

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

BIN = Path(sys.executable).parent
NS = "dev"


@dataclass
class Setup:
    cp: ControlPlane
    root: Path
    port: int
    work: Path
    webhook: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "PODSEC"))}
        return {**base, "PODSEC_SYSLOG_SOCKET": str(self.work / "no-syslog.sock")}

    def argv(self, *args: str) -> list[str]:
        return [str(BIN / "podsec"), "--root", str(self.root), *args]

    def podsec(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=120,
            check=False,
        )

    def start_webhook(self) -> None:
        log = (self.work / "authz.log").open("ab")
        self.webhook = subprocess.Popen(
            [*self.argv("rbac", "authz-serve"), "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while self.check().returncode != 0:
            assert self.webhook.poll() is None, (self.work / "authz.log").read_text()
            assert time.monotonic() < deadline, "the webhook did not answer"
            time.sleep(0.2)

    def stop_webhook(self) -> None:
        if self.webhook is not None and self.webhook.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.webhook.pid, signal.SIGTERM)
            self.webhook.wait(10)
        self.webhook = None

    def check(self) -> subprocess.CompletedProcess[str]:
        return self.podsec("monitor", "check-authz")

    def user(self, cn: str, groups: list[str], *, seconds: int = 365 * 86400) -> Path:
        """A kubeconfig for a CA-signed client certificate valid ``seconds``."""
        ca = CertAuthority.load(self.cp.ca_cert, self.cp.ca_key)
        key = new_key("ec")
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, groups))
            .issuer_name(ca.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(seconds=seconds))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(ca.key, hashes.SHA256())
        )
        stem = f"{cn}-{cert.serial_number % 10**8}"
        crt = write_cert(self.work / f"{stem}.crt", cert)
        return write_kubeconfig(
            self.work / f"{stem}.kubeconfig",
            server=self.cp.server,
            ca_cert=self.cp.ca_cert,
            client_cert=crt,
            client_key=write_key(self.work / f"{stem}.key", key),
            user=cn,
        )

    def get_pods(self, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
        return self.cp.kubectl("get", "pods", "-n", NS, kubeconfig=kubeconfig, check=False)

    def can_i(self, kubeconfig: Path, verb: str, resource: str) -> str:
        out = self.cp.kubectl(
            "auth", "can-i", verb, resource, "-n", NS, kubeconfig=kubeconfig, check=False
        )
        assert out.stdout.strip() in ("yes", "no"), out.stderr
        return out.stdout.strip()

    def revoke(self, cn: str, kubeconfig: Path) -> dict[str, object]:
        crt = kubeconfig.with_suffix(".crt")
        admin = ("--kubeconfig", str(self.cp.kubeconfig))
        r = self.podsec("rbac", "revoke", cn, "--cert", str(crt), *admin, "--json")
        assert r.returncode == 0, r.stderr
        data: dict[str, object] = json.loads(r.stdout)
        return data

    def refused(self, kubeconfig: Path) -> bool:
        out = self.get_pods(kubeconfig)
        if out.returncode == 0:
            return False
        assert "Forbidden" in out.stderr and "revoked" in out.stderr, out.stderr
        return True


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    require_root()
    bin_dir = require_k8s_binaries("kube-apiserver", "kube-controller-manager", "kube-scheduler")
    require_program("etcd")
    require_program("kubectl")
    work = tmp_path_factory.mktemp("revocation")
    root = work / "root"
    root.mkdir()
    port = free_port()
    s = Setup(None, root, port, work)  # type: ignore[arg-type]
    r = s.podsec(
        "rbac", "enforce-revocation", "--no-manifest", "--no-start", "--port", str(port), "--json"
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # the flags as printed, the kubeconfig's path rooted in the sandbox
    args = [a.replace("=/etc/", f"={root}/etc/") for a in out["apiserverArgs"]]
    assert "--authorization-mode=Node,Webhook,RBAC" in args
    assert "--authorization-webhook-cache-unauthorized-ttl=0s" in args
    with running_control_plane(work / "cp", bin_dir, apiserver_args=args) as cp:
        s.cp = cp
        cp.kubectl("create", "namespace", NS)
        cp.kubectl("create", "rolebinding", "devs-edit", "-n", NS, "--clusterrole=edit")
        cp.kubectl("set", "subject", "rolebinding", "devs-edit", "-n", NS, "--group=devs")
        # RBAC sees a new binding through its informer: wait for it (not the webhook's doing)
        deadline = time.monotonic() + 30
        while (
            cp.kubectl(
                *("auth", "can-i", "list", "pods", "-n", NS, "--as=probe", "--as-group=devs"),
                check=False,
            ).stdout.strip()
            != "yes"
        ):
            assert time.monotonic() < deadline, "the devs binding did not take effect"
            time.sleep(0.2)
        try:
            s.start_webhook()
            yield s
        finally:
            s.stop_webhook()


def test_revoke_refuses_alice_through_every_group_and_spares_bob(setup: Setup) -> None:
    s = setup
    ok = s.check()
    assert ok.returncode == 0 and ok.stdout.startswith("AUTHZ OK"), ok.stdout + ok.stderr
    alice, bob = s.user("alice", ["devs"]), s.user("bob", ["devs"])
    for kc in (alice, bob):
        assert s.get_pods(kc).returncode == 0
        assert s.can_i(kc, "delete", "pods") == "yes"
    res = s.revoke("alice", alice)
    assert res["enforced"] is True and res["groups"] == ["devs"]
    # at once: the very next request (no unauthorized-TTL cache in the way)
    assert s.refused(alice)
    # even asking is refused: the SelfSubjectAccessReview kubectl auth can-i creates
    ask = s.cp.kubectl("auth", "can-i", "get", "pods", "-n", NS, kubeconfig=alice, check=False)
    assert ask.returncode != 0 and "revoked" in ask.stderr, ask.stdout + ask.stderr
    raw = s.cp.kubectl("get", "--raw", "/version", kubeconfig=alice, check=False)
    assert raw.returncode != 0 and "Forbidden" in raw.stderr  # non-resource requests too
    # bob of devs keeps what devs is granted; the group's binding is untouched
    assert s.get_pods(bob).returncode == 0
    assert s.can_i(bob, "delete", "pods") == "yes"
    binding = json.loads(
        s.cp.kubectl("get", "rolebinding", "devs-edit", "-n", NS, "-o", "json").stdout
    )
    assert [(x["kind"], x["name"]) for x in binding["subjects"]] == [("Group", "devs")]
    # a new certificate for the revoked name, other groups: refused as well
    assert s.refused(s.user("alice", ["devs", "ops"]))
    assert s.refused(s.user("alice", []))


def test_a_revoked_name_is_free_again_once_its_certificate_expires(setup: Setup) -> None:
    s = setup
    seconds = 20
    short = s.user("carol", ["devs"], seconds=seconds)
    issued = time.monotonic()
    s.revoke("carol", short)
    fresh = s.user("carol", ["devs"])
    assert s.refused(fresh)
    time.sleep(max(0.0, issued + seconds + 2 - time.monotonic()))
    # the revoked certificate no longer authenticates: its name is free again
    assert s.get_pods(fresh).returncode == 0
    assert s.get_pods(short).returncode != 0  # expired: the API server refuses it itself


def test_system_masters_cannot_be_revoked_and_revoke_says_so(setup: Setup) -> None:
    s = setup
    eve = s.user("eve", ["system:masters"])
    res = s.revoke("eve", eve)
    assert any("system:masters" in str(w) for w in res["warnings"])  # type: ignore[attr-defined]
    assert s.get_pods(eve).returncode == 0  # allowed before any authorizer is asked


def test_webhook_down_is_fail_open_and_check_authz_is_critical(setup: Setup) -> None:
    s = setup
    dave = s.user("dave", ["devs"])
    s.revoke("dave", dave)
    assert s.refused(dave)
    s.stop_webhook()
    try:
        t0 = time.monotonic()
        out = s.get_pods(dave)
        down_seconds = time.monotonic() - t0
        # Kubernetes: an unreachable webhook is an error, i.e. no opinion: RBAC decides alone
        assert out.returncode == 0, out.stderr
        print(f"request of a revoked user with the webhook down: {down_seconds:.2f} s (kubectl)")
        crit = s.check()
        assert crit.returncode == 2, crit.stdout + crit.stderr
        assert crit.stdout.startswith("AUTHZ CRITICAL") and "fail-open" in crit.stdout
    finally:
        s.start_webhook()
    assert s.refused(dave)
    assert s.check().returncode == 0


def test_enforce_edits_a_real_kubeadm_manifest_the_api_server_accepts(
    setup: Setup, tmp_path: Path
) -> None:
    """`enforce-revocation` on an existing cluster edits kube-apiserver's static-pod manifest:
    here the manifest the real kubeadm 1.20.2 writes (`init phase control-plane apiserver
    --rootfs`), not a hand-written one. Webhook goes before RBAC, the webhook flags and the
    read-only kubeconfig mount are added, every other flag of kubeadm's stays, the original is
    kept outside the manifests directory, a re-run changes nothing, and the real API server
    accepts the edited Pod (server-side dry run: schema, volume names, hostPath type)."""
    import yaml
    from tests.fixtures.require import K8S_BIN, require_path

    kubeadm = require_path(K8S_BIN / "kubeadm", "kubeadm 1.20.2 built by scripts/build-kubernetes")
    tree = tmp_path / "node"
    tree.mkdir()
    made = subprocess.run(
        [str(kubeadm), "init", "phase", "control-plane", "apiserver", "--rootfs", str(tree),
         "--apiserver-advertise-address", "192.0.2.10", "--kubernetes-version", "v1.20.2"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    manifest = tree / "etc/kubernetes/manifests/kube-apiserver.yaml"
    original = manifest.read_bytes()

    def enforce() -> dict[str, object]:
        r = subprocess.run(
            [str(BIN / "podsec"), "--root", str(tree), "rbac", "enforce-revocation",
             "--no-start", "--port", str(setup.port), "--json"],
            capture_output=True, text=True, env=setup.env(), timeout=120, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        out: dict[str, object] = json.loads(r.stdout)
        return out

    out = enforce()
    assert out["manifestChanged"] is True
    assert out["manifest"] == "/etc/kubernetes/manifests/kube-apiserver.yaml"

    def flags(text: bytes) -> tuple[dict[str, str], dict[str, object]]:
        (c,) = yaml.safe_load(text)["spec"]["containers"]
        assert c["command"][0] == "kube-apiserver"
        return dict(a.split("=", 1) for a in c["command"][1:]), c

    before, _ = flags(original)
    after, container = flags(manifest.read_bytes())
    assert before["--authorization-mode"] == "Node,RBAC"  # kubeadm's own
    added = dict(str(a).split("=", 1) for a in out["apiserverArgs"])  # type: ignore[attr-defined]
    assert after["--authorization-mode"] == "Node,Webhook,RBAC"
    assert {k: after[k] for k in added} == added
    assert {k: v for k, v in after.items() if k not in added} == {
        k: v for k, v in before.items() if k not in added
    }
    kubeconfig = str(out["kubeconfig"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == kubeconfig]  # type: ignore[index, union-attr]
    assert mount["readOnly"] is True
    pod = yaml.safe_load(manifest.read_bytes())
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume["hostPath"] == {"path": kubeconfig, "type": "File"}
    assert (tree / kubeconfig.lstrip("/")).is_file()
    backup = tree / str(out["backup"]).lstrip("/")
    assert backup.read_bytes() == original
    assert not backup.is_relative_to(manifest.parent)  # the kubelet would run a second pod

    again = enforce()
    assert again["manifestChanged"] is False
    assert flags(manifest.read_bytes())[0] == after

    accepted = setup.cp.kubectl(
        "create", "--dry-run=server", "-n", "kube-system", "-f", str(manifest), check=False
    )
    assert accepted.returncode == 0, accepted.stderr
    assert "created (server dry run)" in accepted.stdout
