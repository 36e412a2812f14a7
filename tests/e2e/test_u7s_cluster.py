"""The headline flow, for real: `kubeadm init` rootless on this machine, as the seed does it.

The node runs as u7s-admin in rootlesskit's namespaces with the local v1.20.2 images (the OCI
layout built by scripts/build-images, imported offline — this machine has no registry with
Kubernetes images). The machine is untouched: the module runs under scripts/test-env (a
private mount namespace) in the node sandbox of tests/fixtures/sandbox.py — overlays over /etc,
/var, /root, /home, /run and /usr/libexec, every node-state path empty whatever an earlier run
left — so u7s-admin, /etc/kubernetes, the etcd data and the kubeconfigs exist only for this
module, and the node is set up as on a fresh machine. /dev/net/tun is made 0666 for slirp4netns
(a device node cannot be overlaid; this is the one change to the machine, and podsec's doctor
asks for the same). The worker is a nested sandbox over the machine's own directories.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fixtures import sandbox as node_sandbox
from tests.fixtures.images import GnupgHome, Registry, Sigstore, require_real_names, skopeo_copy
from tests.fixtures.require import (
    IMAGES_DIR,
    K8S_BIN,
    missing,
    require_path,
    require_root,
    require_tool,
)

pytestmark = [pytest.mark.e2e, pytest.mark.rootless]

REPO = Path(__file__).resolve().parents[2]
PODSEC = [str(REPO / ".venv/bin/python"), "-m", "podsec.cli"]
USER = "u7s-admin"
NODE = "u7s-e2e"


def _sh(
    *argv: str, check: bool = True, timeout: float = 60, **kw: object
) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        list(argv), check=False, timeout=timeout, text=True, capture_output=True, **kw
    )  # type: ignore[call-overload]
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr[-2000:]}")
    return r  # type: ignore[no-any-return]


@contextlib.contextmanager
def sandbox(tmp: Path) -> Iterator[dict[str, str]]:
    """The control plane's node sandbox (``tmp/cp``) in scripts/test-env's private mount
    namespace, and the environment podsec's commands run with."""
    if not os.environ.get("PODSEC_TEST_NS"):
        missing("the u7s e2e needs scripts/test-env (a private mount namespace)")
    with node_sandbox.sandbox(tmp / "cp"):
        env = dict(os.environ)
        env.update(
            PATH=f"{K8S_BIN}:{REPO / '.venv/bin'}:{env.get('PATH', '/usr/bin:/bin')}",
            U7S_REGISTRY="registry.local",
            U7S_PLATFORM="p10",
            U7S_CNI_PLUGIN="bridge",
            PODSEC_U7S_OCI_IMAGES=str(IMAGES_DIR / "oci"),
            KUBECONFIG="/etc/kubernetes/admin.conf",
        )
        yield env


def _uid_processes(uid: int, tmp: Path) -> list[int]:
    """Processes of ``uid`` that belong to this module's nodes: their mount namespace has our
    overlays (other runs on this machine may have a u7s-admin with the same uid)."""
    mark = node_sandbox.mark(tmp)
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            with contextlib.suppress(OSError):
                if p.stat().st_uid == uid and mark in (p / "mountinfo").read_text():
                    pids.append(int(p.name))
    return pids


def _cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def kubectl(env: dict[str, str], *args: str, check: bool = True, input: str | None = None) -> str:
    r = subprocess.run(
        ["kubectl", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
        input=input,
        check=False,
    )
    if check and r.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {r.stderr}")
    return r.stdout


def wait_for(what: str, probe, timeout: float = 180.0, interval: float = 1.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            last = probe()
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


BUSYBOX = f"oci:{IMAGES_DIR / 'oci'}:registry.local/p10/busybox:1.35"
SIG_REPO = "u7s-e2e-sig"  # registry.local/u7s-e2e-sig requires a sigstore signature
# containers/image's reason for a payload its signature does not cover
TAMPERED_SIGSTORE = "cryptographic signature verification failed"


def _trust(registry: Registry, sigstore: Sigstore, gnupg_home: GnupgHome, tmp: Path) -> None:
    """In the sandbox's /etc: registry.local needs the maker's signature; a signed and an
    unsigned busybox in the registry. registry.local/u7s-e2e-sig needs a sigstore signature
    (a key pair podsec made, attachments on in registries.d): one image signed with ``podsec
    images sign --sigstore``, one whose only attachment has a bit of its payload flipped."""
    # world-readable like the real /etc/pki keys: the verifier runs as u7s-admin
    Path("/etc/containers").mkdir(exist_ok=True)
    key = Path("/etc/containers/u7s-e2e-maker.pgp")
    shutil.copy(gnupg_home.nopass.public_key, key)
    key.chmod(0o644)
    from podsec.trust import sigstore_keys

    pair = sigstore_keys.generate(b"")
    sig_key = Path("/etc/containers/u7s-e2e-maker.pub")
    sig_key.write_bytes(pair.public_key)
    sig_key.chmod(0o644)
    (tmp / "maker.key").write_bytes(pair.private_key)
    policy = {
        "default": [{"type": "insecureAcceptAnything"}],
        "transports": {
            "docker": {
                "registry.local": [
                    {
                        "type": "signedBy",
                        "keyType": "GPGKeys",
                        "keyPath": str(key),
                    }
                ],
                f"registry.local/{SIG_REPO}": [{"type": "sigstoreSigned", "keyPath": str(sig_key)}],
            },
        },
    }
    Path("/etc/containers").mkdir(exist_ok=True)
    Path("/etc/containers/policy.json").write_text(json.dumps(policy, indent=4))
    regd = Path("/etc/containers/registries.d")
    regd.mkdir(exist_ok=True)
    for f in regd.glob("*.yaml"):
        f.unlink()
    (regd / "default.yaml").write_text(
        (sigstore.registries_d / "default.yaml").read_text()
        + f"docker:\n  registry.local/{SIG_REPO}:\n    use-sigstore-attachments: true\n"
    )
    skopeo_copy(
        BUSYBOX,
        registry.ref("u7s-e2e/signed:1"),
        env={**os.environ, **gnupg_home.env},
        sign_by=gnupg_home.nopass.fingerprint,
        registries_d=sigstore.registries_d,
    )
    skopeo_copy(BUSYBOX, registry.ref("u7s-e2e/unsigned:1"))
    # issue 14's two refusals: a signature for another tag of the same digest, and a
    # payload whose docker-reference is duplicated (containers/image refuses both)
    from podsec.registry.client import RegistryClient
    from podsec.trust import signature

    skopeo_copy(BUSYBOX, registry.ref("u7s-e2e/retag:1"))
    skopeo_copy(BUSYBOX, registry.ref("u7s-e2e/retag:2"))
    skopeo_copy(BUSYBOX, registry.ref("u7s-e2e/dup:1"))
    client = RegistryClient(registry.url)
    digest = client.head_manifest("u7s-e2e/retag", "1")
    assert digest and digest == client.head_manifest("u7s-e2e/retag", "2")
    key = gnupg_home.nopass.email
    other_tag = signature.sign(
        signature.make_payload("registry.local/u7s-e2e/retag:2", digest), key, gnupg_home.path
    )
    signature.store_signature(sigstore.sigstore_dir, "u7s-e2e/retag", digest, other_tag)
    payload = signature.make_payload("registry.local/u7s-e2e/dup:1", digest).replace(
        b'"docker-reference":',
        b'"docker-reference":"registry.local/u7s-e2e/dup:9","docker-reference":',
    )
    dup = signature.sign(payload, key, gnupg_home.path)
    signature.store_signature(sigstore.sigstore_dir, "u7s-e2e/dup", digest, dup)
    RETAG_DIGEST[:] = [digest]
    _sigstore_images(registry, pair.private_key, tmp / "maker.key")


def _sigstore_images(registry: Registry, private_key: bytes, key_file: Path) -> None:
    from podsec.registry import sign
    from podsec.registry.client import RegistryClient
    from podsec.trust import sigstore as cosign
    from podsec.trust import sigstore_keys

    skopeo_copy(BUSYBOX, registry.ref(f"{SIG_REPO}/signed:1"))
    signed = _sh(*PODSEC, "images", "sign", "--sigstore", "--key", str(key_file),
                 f"registry.local/{SIG_REPO}/signed:1", "--json", timeout=120)  # fmt: skip
    assert json.loads(signed.stdout)[0]["accepted"], signed.stdout
    skopeo_copy(BUSYBOX, registry.ref(f"{SIG_REPO}/tampered:1"))
    client = RegistryClient(registry.url)
    digest = client.head_manifest(f"{SIG_REPO}/tampered", "1")
    assert digest
    key = sigstore_keys.load_private(private_key, b"")
    good = cosign.sign_image(key, f"registry.local/{SIG_REPO}/tampered:1", digest)
    flipped = bytearray(good.payload)
    flipped[flipped.index(b"sha256:") + 7] ^= 1  # one bit of the signed digest
    forged = cosign.Sigstore(good.mime_type, bytes(flipped), good.annotations)
    assert sign.push_sigstore(client, f"{SIG_REPO}/tampered", digest, [forged])


RETAG_DIGEST: list[str] = []


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    registry: Registry,
    sigstore: Sigstore,
    gnupg_home: GnupgHome,
) -> Iterator[dict[str, object]]:
    require_root()
    require_real_names()
    require_tool(
        "rootlesskit",
        "slirp4netns",
        "containerd",
        "runc",
        "nsenter",
        "kubectl",
        "kubeadm",
        "kubelet",
    )
    require_path(IMAGES_DIR / "oci" / "index.json", "the local v1.20.2 images")
    tmp = tmp_path_factory.mktemp("u7s-e2e")
    with sandbox(tmp) as env:
        _trust(registry, sigstore, gnupg_home, tmp)
        init = subprocess.run(
            [
                *PODSEC,
                "u7s",
                "kubeadm",
                "init",
                "--skip-phases=addon/coredns",
                f"--node-name={NODE}",
            ],
            env=env,
            text=True,
            capture_output=True,
            timeout=600,
            check=False,
        )
        uid = int(_sh("id", "-u", USER).stdout) if init.returncode == 0 else -1
        try:
            assert init.returncode == 0, (
                f"init failed: {init.stderr[-3000:]}\n{init.stdout[-2000:]}"
            )
            yield {"env": env, "init": init, "uid": uid, "tmp": tmp}
        finally:
            subprocess.run(
                [*PODSEC, "u7s", "kubeadm", "reset"],
                env=env,
                capture_output=True,
                timeout=300,
                check=False,
            )
            subprocess.run(
                [*PODSEC, "u7s", "stop"], env=env, capture_output=True, timeout=120, check=False
            )
            if uid > 0:
                for pid in _uid_processes(uid, tmp):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)


def test_init_prints_the_join_commands(cluster: dict[str, object]) -> None:
    out = cluster["init"].stdout  # type: ignore[attr-defined]
    assert "Your Kubernetes control-plane has initialized successfully!" in out
    assert re.search(
        r"kubeadm join \S+:6443 --token \S+ \\\n\s+--discovery-token-ca-cert-hash sha256:[0-9a-f]{64}",
        out,
    )
    assert "--control-plane --certificate-key" in out


def test_node_ready(cluster: dict[str, object]) -> None:
    env = cluster["env"]

    def ready() -> bool:
        node = json.loads(kubectl(env, "get", "node", NODE, "-o", "json"))  # type: ignore[arg-type]
        return any(
            c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"]
        )

    wait_for("node Ready", ready)
    assert os.stat("/root/.kube/config").st_mode & 0o777 == 0o600


def test_every_kube_system_pod_running(cluster: dict[str, object]) -> None:
    env = cluster["env"]
    wanted = {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

    def running() -> bool:
        pods = json.loads(kubectl(env, "get", "pods", "-n", "kube-system", "-o", "json"))["items"]  # type: ignore[arg-type]
        names = {p["metadata"]["name"].removesuffix(f"-{NODE}") for p in pods}
        return wanted <= names and all(p["status"].get("phase") == "Running" for p in pods)

    wait_for("kube-system pods Running", running)


def test_controller_manager_runs_and_makes_the_default_service_account(
    cluster: dict[str, object],
) -> None:
    """Issue 12: kubeadm's default flexvolume hostPath (/usr/libexec/kubernetes/…) cannot be
    created by the namespace's root, so the controller-manager never started and no pod could
    be created (no `default` ServiceAccount). Its flexvolume dir is now the node's own."""
    env = cluster["env"]

    def running() -> bool:
        pod = json.loads(
            kubectl(
                env,
                "get",
                "pod",
                "-n",
                "kube-system",
                f"kube-controller-manager-{NODE}",
                "-o",
                "json",
            )  # type: ignore[arg-type]
        )
        return pod["status"].get("phase") == "Running"

    wait_for("kube-controller-manager Running", running)
    wait_for(
        "default ServiceAccount",
        lambda: bool(kubectl(env, "get", "serviceaccount", "default", "-o", "name")),  # type: ignore[arg-type]
    )
    pod = json.loads(
        kubectl(
            env, "get", "pod", "-n", "kube-system", f"kube-controller-manager-{NODE}", "-o", "json"
        )  # type: ignore[arg-type]
    )
    paths = {v["name"]: v.get("hostPath", {}).get("path") for v in pod["spec"]["volumes"]}
    assert paths["flexvolume-dir"] == "/var/lib/kubelet/volumeplugins"
    assert not Path("/usr/libexec/kubernetes/kubelet-plugins").exists()


def test_control_plane_runs_as_u7s_admin(cluster: dict[str, object]) -> None:
    uid = cluster["uid"]
    assert isinstance(uid, int) and uid > 0
    programs = (
        "kube-apiserver",
        "etcd",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kube-proxy",
        "containerd",
        "rootlesskit",
    )
    st = json.loads(_sh(*PODSEC, "u7s", "status", "--json", env=cluster["env"]).stdout)
    root_pid = st["services"]["rootlesskit"]["pid"]
    stat = Path(f"/proc/{root_pid}/stat").read_text()
    supervisor = int(stat.rsplit(")", 1)[1].split()[1])  # field 4: the parent
    # this node's processes are what its supervisor started: a kube-apiserver of another
    # fixture (the harness control plane runs as root) or of another run is not ours
    seen: dict[str, set[int]] = {p: set() for p in programs}
    for pid in _descendants(supervisor):
        name = Path(_cmd(pid).split(" ", 1)[0]).name
        if name in seen:
            with contextlib.suppress(OSError):
                seen[name].add(Path(f"/proc/{pid}").stat().st_uid)
    for name in programs:
        assert seen[name] == {uid}, f"{name} runs as uids {seen[name]}, not only u7s-admin's {uid}"
    # nothing inside the namespace runs as root on the host: every descendant of our
    # rootlesskit has u7s-admin's uid
    children = _descendants(root_pid)
    assert children, "rootlesskit has no children"
    for pid in children:
        with contextlib.suppress(FileNotFoundError):
            assert Path(f"/proc/{pid}").stat().st_uid == uid, (
                f"{pid} {_cmd(pid)} is not u7s-admin's"
            )


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        cur = todo.pop()
        for task in Path(f"/proc/{cur}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                kids = [int(x) for x in task.read_text().split()]
                out += kids
                todo += kids
    return out


POD = """apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default}}
spec:
  tolerations: [{{key: node-role.kubernetes.io/master, operator: Exists, effect: NoSchedule}}]
  containers:
  - name: c
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "id -u; sleep 3600"]
"""


def test_nsenter_sees_the_runtime(cluster: dict[str, object]) -> None:
    r = _sh(
        *PODSEC, "u7s", "nsenter", "ctr", "-n", "k8s.io", "images", "ls", "-q", env=cluster["env"]
    )
    assert "registry.local/p10/kube-apiserver:v1.20.2" in r.stdout


def test_second_init_is_refused(cluster: dict[str, object]) -> None:
    r = subprocess.run(
        [*PODSEC, "u7s", "kubeadm", "init", "--skip-phases=addon/coredns"],
        env=cluster["env"],
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert r.returncode != 0
    assert "already" in r.stderr
    # and the running node is untouched
    assert kubectl(cluster["env"], "get", "--raw=/readyz").strip() == "ok"  # type: ignore[arg-type]


def test_supervisor_restarts_a_crashed_kubelet(cluster: dict[str, object]) -> None:
    env = cluster["env"]
    uid = cluster["uid"]
    tmp: Path = cluster["tmp"]  # type: ignore[assignment]
    old = [p for p in _uid_processes(uid, tmp) if Path(_cmd(p).split(" ", 1)[0]).name == "kubelet"]  # type: ignore[arg-type]
    assert old
    for pid in old:
        os.kill(pid, signal.SIGKILL)

    def restarted() -> bool:
        new = [
            p for p in _uid_processes(uid, tmp) if Path(_cmd(p).split(" ", 1)[0]).name == "kubelet"
        ]  # type: ignore[arg-type]
        return bool(new) and not set(new) & set(old)

    wait_for("a new kubelet", restarted, timeout=60)
    st = json.loads(_sh(*PODSEC, "u7s", "status", "--json", env=env).stdout)
    assert st["services"]["kubelet"]["restarts"] >= 1


def test_signed_pod_runs(cluster: dict[str, object]) -> None:
    env = cluster["env"]
    # the policy is enforced on the way into the node's store ...
    _sh(*PODSEC, "u7s", "pull", "registry.local/u7s-e2e/signed:1", env=env, timeout=300)
    # ... and at admission
    kubectl(
        env,
        "apply",
        "-f",
        "-",
        input=POD.format(name="signed", image="registry.local/u7s-e2e/signed:1"),
    )  # type: ignore[arg-type]

    def running() -> bool:
        pod = json.loads(kubectl(env, "get", "pod", "signed", "-o", "json"))  # type: ignore[arg-type]
        return pod["status"].get("phase") == "Running"

    wait_for("signed pod Running", running, timeout=120)
    assert kubectl(env, "logs", "signed").strip() == "0"  # type: ignore[arg-type]  # root in the pod, u7s-admin outside


def test_unsigned_pod_refused(cluster: dict[str, object]) -> None:
    env = cluster["env"]
    r = subprocess.run(
        ["kubectl", "apply", "-f", "-"],
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
        check=False,  # type: ignore[arg-type]
        input=POD.format(name="unsigned", image="registry.local/u7s-e2e/unsigned:1"),
    )
    assert r.returncode != 0
    assert "denied the request" in r.stderr and "u7s-e2e/unsigned:1" in r.stderr, r.stderr
    assert (
        'pods "unsigned" not found'
        in kubectl(env, "get", "pod", "unsigned", check=False)
        + subprocess.run(
            ["kubectl", "get", "pod", "unsigned"],
            env=env,
            text=True,
            capture_output=True,
            check=False,
        ).stderr
    )  # type: ignore[arg-type]
    # and skopeo's pull through the node's policy refuses it as well
    p = subprocess.run(
        [*PODSEC, "u7s", "pull", "registry.local/u7s-e2e/unsigned:1"],
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert p.returncode != 0 and "signature" in p.stderr.lower(), p.stderr


def test_sigstore_signed_pod_runs(cluster: dict[str, object]) -> None:
    """Issue 19: a scope requiring a sigstore signature on a containerd node. The node's
    pull is decided by podsec's verifier (Debian's skopeo refuses sigstore), the pod is
    admitted by the webhook, which read the attachment, and runs."""
    env = cluster["env"]
    image = f"registry.local/{SIG_REPO}/signed:1"
    _sh(*PODSEC, "u7s", "pull", image, env=env, timeout=300)
    kubectl(env, "apply", "-f", "-", input=POD.format(name="sigstore-signed", image=image))  # type: ignore[arg-type]

    def running() -> bool:
        pod = json.loads(kubectl(env, "get", "pod", "sigstore-signed", "-o", "json"))  # type: ignore[arg-type]
        return pod["status"].get("phase") == "Running"

    wait_for("sigstore-signed pod Running", running, timeout=120)
    assert kubectl(env, "logs", "sigstore-signed").strip() == "0"  # type: ignore[arg-type]


def test_tampered_sigstore_pod_refused(cluster: dict[str, object]) -> None:
    """The webhook refuses a pod whose image's only sigstore signature was tampered with (a
    bit of the payload flipped), with the verifier's reason; the node's pull refuses it too."""
    env = cluster["env"]
    image = f"registry.local/{SIG_REPO}/tampered:1"
    err = _refused_at_admission(env, "sigstore-tampered", image)
    assert image in err and TAMPERED_SIGSTORE in err, err
    p = subprocess.run(
        [*PODSEC, "u7s", "pull", image],
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )  # type: ignore[call-overload]
    assert p.returncode != 0 and TAMPERED_SIGSTORE in p.stderr, p.stderr


def test_the_nodes_api_server_refuses_a_revoked_certificate(
    cluster: dict[str, object], tmp_path: Path
) -> None:
    """Issue 20 on the rootless node: kubeadm's ClusterConfiguration made the API server ask
    the revocation webhook, which the supervisor runs on the host side with its port on
    127.0.0.1 of the namespace; revoking mallory of devs refuses her, bob of devs keeps his."""
    from tests.fixtures.kube import CertAuthority, write_kubeconfig

    env = cluster["env"]
    assert isinstance(env, dict)
    ok = subprocess.run(
        [*PODSEC, "monitor", "check-authz"], env=env, text=True, capture_output=True, timeout=60
    )
    assert ok.returncode == 0 and ok.stdout.startswith("AUTHZ OK"), ok.stdout + ok.stderr
    kubectl(env, "create", "rolebinding", "devs-view", "--clusterrole=view", "--group=devs")
    server = kubectl(
        env, "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"
    )
    pki = Path("/etc/kubernetes/pki")
    ca = CertAuthority.load(pki / "ca.crt", pki / "ca.key")
    configs = {}
    for cn in ("mallory", "bob"):
        crt, key = ca.issue(tmp_path, cn, cn, ["devs"])
        configs[cn] = write_kubeconfig(
            tmp_path / f"{cn}.kubeconfig",
            server=server,
            ca_cert=pki / "ca.crt",
            client_cert=crt,
            client_key=key,
            user=cn,
        )

    def get_pods(cn: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", "--kubeconfig", str(configs[cn]), "get", "pods", "-n", "default"],
            text=True,
            capture_output=True,
            timeout=60,
        )

    wait_for("devs may list pods", lambda: get_pods("mallory").returncode == 0, timeout=60)
    assert get_pods("bob").returncode == 0
    revoked = subprocess.run(
        [*PODSEC, "rbac", "revoke", "mallory", "--cert", str(tmp_path / "mallory.crt"), "--json"],
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["enforced"], revoked.stderr
    refused = get_pods("mallory")
    assert refused.returncode != 0 and "revoked" in refused.stderr, refused.stderr
    assert get_pods("bob").returncode == 0


def _refused_at_admission(env: object, name: str, image: str) -> str:
    r = subprocess.run(
        ["kubectl", "apply", "-f", "-"],
        env=env,  # type: ignore[arg-type]
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
        input=POD.format(name=name, image=image),
    )
    assert r.returncode != 0, r.stdout
    assert "denied the request" in r.stderr, r.stderr
    return r.stderr


def test_signature_for_another_tag_of_the_same_digest_refused(cluster: dict[str, object]) -> None:
    # retag:1 and retag:2 are one digest; only retag:2 is signed. A pod naming
    # retag:1@digest is not covered by that signature (containers/image: exact match)
    image = f"registry.local/u7s-e2e/retag:1@{RETAG_DIGEST[0]}"
    err = _refused_at_admission(cluster["env"], "retag", image)
    assert "retag:2" in err and "is not accepted" in err, err


def test_duplicated_docker_reference_refused(cluster: dict[str, object]) -> None:
    err = _refused_at_admission(cluster["env"], "dup", "registry.local/u7s-e2e/dup:1")
    assert "duplicate" in err, err


WORKER = "u7s-e2e-worker"
WORKER_STATE = "worker"  # the worker's nested sandbox, below the module's tmp


def _worker_pidfile(tmp: Path) -> Path:
    return node_sandbox.Sandbox(tmp / WORKER_STATE).upper("/run/podsec/u7s/supervisor.pid")


def _join_argv(init_output: str) -> list[str]:
    """The worker join command exactly as kubeadm printed it (the last one)."""
    text = init_output.replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("kubeadm join")]
    worker = [line for line in lines if "--control-plane" not in line]
    assert worker, init_output
    return worker[-1].split()


@pytest.fixture(scope="module")
def worker(cluster: dict[str, object]) -> Iterator[dict[str, object]]:
    """A second node: its own network namespace (veth to the host) and its own overlays."""
    env = dict(cluster["env"])  # type: ignore[call-overload]
    tmp: Path = cluster["tmp"]  # type: ignore[assignment]
    tag = os.getpid() % 10000
    netns, host_if, ns_if = f"u7sw{tag}", f"u7sw{tag}h", f"u7sw{tag}n"
    net = f"10.252.{tag % 250}"
    _sh("ip", "netns", "add", netns)
    try:
        _sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _sh("ip", "link", "set", ns_if, "netns", netns)
        _sh("ip", "addr", "add", f"{net}.1/24", "dev", host_if)
        _sh("ip", "link", "set", host_if, "up")
        for cmd in (
            ["ip", "link", "set", "lo", "up"],
            ["ip", "addr", "add", f"{net}.2/24", "dev", ns_if],
            ["ip", "link", "set", ns_if, "up"],
            ["ip", "route", "add", "default", "via", f"{net}.1"],
        ):
            _sh("ip", "netns", "exec", netns, *cmd)
        join = _join_argv(cluster["init"].stdout)  # type: ignore[attr-defined]
        r = subprocess.run(
            [
                # nsenter --net, not `ip netns exec`: that remounts /sys and hides the cgroup mounts
                "nsenter",
                f"--net=/run/netns/{netns}",
                "unshare",
                "--mount",
                "--propagation",
                "private",
                # over the machine's own directories, with the control plane's trust
                sys.executable,
                "-m",
                "tests.fixtures.sandbox",
                str(tmp / WORKER_STATE),
                f"--lower={tmp / 'cp' / 'real'}",
                "--inherit=/etc/containers",
                "--",
                *PODSEC,
                "u7s",
                "kubeadm",
                *join[1:],
                f"--node-name={WORKER}",
            ],
            env=env,
            cwd=REPO,
            text=True,
            capture_output=True,
            timeout=600,
            check=False,
        )
        yield {"join": r, "address": f"{net}.2", "env": env, "tmp": tmp}
    finally:
        pidfile = _worker_pidfile(tmp)
        if pidfile.exists():
            pid = pidfile.read_text().strip()
            for args in (["u7s", "kubeadm", "reset"], ["u7s", "stop"]):
                subprocess.run(
                    ["nsenter", "-t", pid, "-m", "-n", "--", *PODSEC, *args],
                    env=env,
                    capture_output=True,
                    timeout=300,
                    check=False,
                )
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)


def test_worker_joins_with_the_printed_command(
    cluster: dict[str, object], worker: dict[str, object]
) -> None:
    r = worker["join"]
    assert r.returncode == 0, f"join failed: {r.stderr[-3000:]}\n{r.stdout[-2000:]}"  # type: ignore[attr-defined]
    assert "This node has joined the cluster" in r.stdout  # type: ignore[attr-defined]
    env = cluster["env"]

    def ready() -> bool:
        node = json.loads(kubectl(env, "get", "node", WORKER, "-o", "json"))  # type: ignore[arg-type]
        ok = any(
            c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"]
        )
        return ok and any(a["address"] == worker["address"] for a in node["status"]["addresses"])

    wait_for("the worker Ready", ready, timeout=180)


def test_pod_runs_on_the_worker(cluster: dict[str, object], worker: dict[str, object]) -> None:
    """The control plane's apiserver reaches the worker's kubelet (logs) through the worker's
    forwarded port; the image enters the worker's store through its policy."""
    env = cluster["env"]
    pid = _worker_pidfile(Path(worker["tmp"])).read_text().strip()  # type: ignore[arg-type]
    # the worker's mount namespace (its store, policy view) but the host's network, where
    # this run's registry.local listens
    _sh(
        "nsenter",
        "-t",
        pid,
        "-m",
        "--",
        *PODSEC,
        "u7s",
        "pull",
        "registry.local/u7s-e2e/signed:1",
        env=worker["env"],
        timeout=300,
    )
    pod = POD.format(name="on-worker", image="registry.local/u7s-e2e/signed:1").replace(
        "spec:\n", f"spec:\n  nodeName: {WORKER}\n"
    )
    kubectl(env, "apply", "-f", "-", input=pod)  # type: ignore[arg-type]

    def running() -> bool:
        p = json.loads(kubectl(env, "get", "pod", "on-worker", "-o", "json"))  # type: ignore[arg-type]
        return p["status"].get("phase") == "Running"

    wait_for("pod on the worker Running", running, timeout=120)
    assert kubectl(env, "logs", "on-worker").strip() == "0"  # type: ignore[arg-type]


def test_reset_stops_everything_and_removes_podsec_state(cluster: dict[str, object]) -> None:
    """Last: `kubeadm reset` on the control plane (the worker goes at module teardown)."""
    env, uid, tmp = cluster["env"], cluster["uid"], cluster["tmp"]
    r = subprocess.run(
        [*PODSEC, "u7s", "kubeadm", "reset"],
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
        check=False,
    )  # type: ignore[arg-type]
    assert r.returncode == 0, r.stderr

    worker = Path(tmp) / WORKER_STATE  # type: ignore[arg-type]

    def control_plane_gone() -> bool:
        mine = [
            p
            for p in _uid_processes(uid, tmp)  # type: ignore[arg-type]
            if not node_sandbox.in_sandbox(p, worker)
        ]
        return not mine

    wait_for("no process of the control-plane node left", control_plane_gone, timeout=60)
    assert not list(Path("/etc/kubernetes").glob("*.conf"))
    assert not Path("/etc/podsec/u7s/node-plan.json").exists()
    assert not Path("/root/.kube/config").exists()
    assert not Path("/var/lib/podsec/u7s/etcd/member").exists()
    st = subprocess.run(
        [*PODSEC, "u7s", "status", "--json"], env=env, text=True, capture_output=True, check=False
    )  # type: ignore[arg-type]
    assert st.returncode == 3 and json.loads(st.stdout)["running"] is False
