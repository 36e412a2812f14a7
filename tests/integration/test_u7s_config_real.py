"""The u7s planning against real programs: kubeadm 1.20.2 (flags table, image list, the
generated v1beta2 configuration accepted by `kubeadm init --dry-run`) and a real registry
(tag checks, U7S_SETAVAILABLEIMAGES) — the HostProbe end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.fixtures.images import skopeo_copy
from tests.fixtures.require import K8S_BIN, require_path, require_root, require_tool

from podsec import config
from podsec.errors import UsageError
from podsec.host.paths import Host
from podsec.registry import client, k8s_images
from podsec.u7s import flags, probe, render, wrapper

pytestmark = pytest.mark.integration

KUBEADM = K8S_BIN / "kubeadm"
TOKEN = "abcdef.0123456789abcdef"


def _kubeadm() -> str:
    return str(require_path(KUBEADM, "kubeadm 1.20.2 built by scripts/build-kubernetes"))


def _help_flags(command: str) -> set[str]:
    out = subprocess.run(
        [_kubeadm(), command, "--help"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    return set(re.findall(r"^\s+(?:-\w, )?--([a-z0-9-]+)", out, re.MULTILINE)) - {"help"}


@pytest.mark.parametrize("command", ["init", "join"])
def test_every_real_kubeadm_flag_is_known(command: str) -> None:
    real = _help_flags(command)
    known = {name for name, spec in flags.FLAGS.items() if command in spec.commands}
    assert real - known == set(), f"kubeadm {command} flags podsec does not know"


def test_host_probe_asks_the_real_kubeadm_and_network() -> None:
    p = probe.HostProbe(Host(), kubeadm=_kubeadm())
    assert p.kubeadm_version() == "v1.20.2"
    assert p.images_list("v1.20.2", "registry.local/p10") == [
        "registry.local/p10/kube-apiserver:v1.20.2",
        "registry.local/p10/kube-controller-manager:v1.20.2",
        "registry.local/p10/kube-scheduler:v1.20.2",
        "registry.local/p10/kube-proxy:v1.20.2",
        "registry.local/p10/pause:3.2",
        "registry.local/p10/etcd:3.4.13-0",
        "registry.local/p10/coredns:1.7.0",
    ]
    assert any(not a.interface.ip.is_loopback for a in p.addresses())


def test_real_kubeadm_finder_skips_the_wrapper_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(k8s_images.KUBEADM_ENV, raising=False)
    found = k8s_images.real_kubeadm(f"/usr/libexec/podsec/u7s/bin:{K8S_BIN}")
    assert found == str(KUBEADM) or not KUBEADM.exists()


@pytest.fixture(scope="module")
def k8s_registry(registry, test_images):  # type: ignore[no-untyped-def]
    """The registry fixture holding stand-in images under the names kubeadm 1.20.2 lists
    (busybox content: only names and tags matter to the planner)."""
    require_tool("skopeo")
    repo = f"{registry.host}/u7scfg{os.getpid()}"
    names = {
        "kube-apiserver": "v1.20.2",
        "kube-controller-manager": "v1.20.2",
        "kube-scheduler": "v1.20.2",
        "kube-proxy": "v1.20.2",
        "pause": "3.2",
        "etcd": "3.4.13-0",
        "coredns": "1.7.0",
        "flannel": "v0.25.1",
        "flannel-cni-plugin": "v1.4.0-flannel1",
    }
    for name, tag in names.items():
        skopeo_copy(test_images.ref("busybox"), f"docker://{repo}/{name}:{tag}")
    return repo


def _plan(argv: list[str], env: dict[str, str], root: Path) -> object:
    (root / "etc").mkdir(exist_ok=True)
    settings = config.load(root, env)
    return wrapper.build_plan(
        settings, Host(root), flags.parse(argv), probe.HostProbe(Host(root), kubeadm=_kubeadm())
    )


def test_plan_against_real_registry_and_kubeadm(k8s_registry: str, tmp_path: Path) -> None:
    plan = _plan(["init", "--token", TOKEN], {"U7S_REGISTRY": k8s_registry}, tmp_path)
    assert plan.image_repository == k8s_registry  # type: ignore[attr-defined]
    assert plan.cni == "flannel"  # type: ignore[attr-defined]
    assert f"{k8s_registry}/flannel:v0.25.1" in plan.images  # type: ignore[attr-defined]
    cfg = tmp_path / "init.yaml"
    cfg.write_text(plan.kubeadm_config)  # type: ignore[attr-defined]
    listed = subprocess.run(
        [_kubeadm(), "config", "images", "list", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert listed.stdout.split() == [r for r in plan.images if "flannel" not in r]  # type: ignore[attr-defined]
    assert "unknown field" not in listed.stderr


def test_missing_tag_real_registry(k8s_registry: str, tmp_path: Path) -> None:
    env = {"U7S_REGISTRY": k8s_registry, "U7S_KUBEVERSION": "v1.20.1"}
    with pytest.raises(
        UsageError,
        match=r"kube-apiserver:v1\.20\.1 is not in the registry; available versions: v1\.20\.2",
    ):
        _plan(["init"], env, tmp_path)
    plan = _plan(["init"], {**env, "U7S_SETAVAILABLEIMAGES": "yes"}, tmp_path)
    assert plan.kube_version == "v1.20.2"  # type: ignore[attr-defined]


def test_wrong_registry_real(tmp_path: Path) -> None:
    # nothing listens on this loopback port: a clear message, not a traceback
    with pytest.raises(Exception, match=r"cannot read image tags from registry 127.0.0.1:9"):
        _plan(["init"], {"U7S_REGISTRY": "127.0.0.1:9/p10"}, tmp_path)


def _sandboxed(argv: list[str], tmp_path: Path) -> list[str]:
    """argv run in a private mount namespace with the node sandbox (tests/fixtures/sandbox.py:
    overlays, node-state paths empty as on a fresh machine)."""
    repo = Path(__file__).resolve().parents[2]
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "env",
        f"PYTHONPATH={repo}",
        sys.executable,
        "-m",
        "tests.fixtures.sandbox",
        str(tmp_path / "sandbox"),
        "--",
        *argv,
    ]


def test_generated_v1beta2_init_config_passes_kubeadm_dry_run(
    k8s_registry: str, tmp_path: Path
) -> None:
    """The whole `kubeadm init --dry-run` with our config, in the node sandbox, so the host is
    untouched and a leftover /etc/kubernetes cannot change the outcome."""
    require_root()
    require_tool("unshare")
    existed = Path("/etc/kubernetes").exists()
    plan = _plan(
        [
            "init",
            "--token",
            TOKEN,
            "--control-plane-endpoint",
            "192.0.2.10:8443",
            "--dry-run",
            "--ignore-preflight-errors=all",
            "--skip-phases=addon/coredns",
        ],
        {"U7S_REGISTRY": k8s_registry},
        tmp_path,
    )
    cfg = tmp_path / "init.yaml"
    cfg.write_text(plan.kubeadm_config)  # type: ignore[attr-defined]
    argv = render.kubeadm_argv(plan, str(cfg), kubeadm=_kubeadm())  # type: ignore[arg-type]
    result = subprocess.run(_sandboxed(argv, tmp_path), capture_output=True, text=True, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-2000:]
    assert "Your Kubernetes control-plane has initialized successfully" in out
    assert "kubeadm join 192.0.2.10:8443 --token abcdef.0123456789abcdef" in out
    for needle in (
        "--audit-policy-file=/etc/kubernetes/audit/policy.yaml",
        "--audit-log-path=/etc/kubernetes/audit/audit.log",
        '"/var/lib/podsec/u7s/etcd" directory',
        f"image: {k8s_registry}/kube-apiserver:v1.20.2",
        "cgroupsPerQOS: false",
        "--node-ip=",
        # the real kubeadm turns the flag into the controller-manager's flexvolume hostPath
        "--flex-volume-plugin-dir=/var/lib/kubelet/volumeplugins",
        "path: /var/lib/kubelet/volumeplugins",
        "volumePluginDir: /var/lib/kubelet/volumeplugins",
        # the revocation webhook (issue 20): Webhook before RBAC, its kubeconfig mounted
        "--authorization-mode=Node,Webhook,RBAC",
        "--authorization-webhook-config-file=/etc/kubernetes/podsec-authz/webhook.kubeconfig",
        "--authorization-webhook-cache-unauthorized-ttl=0s",
        "path: /etc/kubernetes/podsec-authz/webhook.kubeconfig",
    ):
        assert needle in out, needle
    assert "/usr/libexec/kubernetes" not in out  # issue 12: u7s-admin cannot create it
    assert "unknown field" not in out and "strict decod" not in out
    assert Path("/etc/kubernetes").exists() == existed  # the overlay kept the host clean
    kinds = [d["kind"] for d in yaml.safe_load_all(plan.kubeadm_config)]  # type: ignore[attr-defined]
    assert kinds == [
        "InitConfiguration",
        "ClusterConfiguration",
        "KubeletConfiguration",
        "KubeProxyConfiguration",
    ]


@pytest.mark.parametrize("control_plane", [False, True])
def test_generated_v1beta2_join_config_is_accepted(
    k8s_registry: str, tmp_path: Path, control_plane: bool
) -> None:
    """kubeadm 1.20.2 loads and validates our JoinConfiguration and starts discovery (there is
    no cluster to find: the test stops it there)."""
    require_root()
    require_tool("unshare")
    argv = [
        "join",
        "127.0.0.1:9",
        "--token",
        TOKEN,
        "--discovery-token-ca-cert-hash",
        "sha256:" + "a" * 64,
    ]
    if control_plane:
        argv += ["--control-plane", "--certificate-key", "b" * 64]
    plan = _plan(argv, {"U7S_REGISTRY": k8s_registry}, tmp_path)
    cfg = tmp_path / "join.yaml"
    cfg.write_text(plan.kubeadm_config)  # type: ignore[attr-defined]
    cmd = [
        _kubeadm(),
        "join",
        "phase",
        "preflight",
        "--config",
        str(cfg),
        "--ignore-preflight-errors=all",
        "-v",
        "1",
    ]
    proc = subprocess.Popen(
        _sandboxed(cmd, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "cluster-info discovery client" in line or len(lines) > 400:
                break
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=30)
    out = "".join(lines)
    assert "cluster-info discovery client" in out, out[-2000:]
    assert 'requesting info from "127.0.0.1:9"' in out
    assert "unknown field" not in out and "Invalid value" not in out


def test_registry_tags_anonymous_bearer_token_flow() -> None:
    """A registry that wants an anonymous bearer token (as docker.io and registry.k8s.io do):
    a stdlib HTTP server on loopback playing both the registry and its token realm."""
    import http.server
    import json
    import threading

    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.path)
            port = self.server.server_address[1]
            if self.path.startswith("/token"):
                body = json.dumps({"token": "t0k"}).encode()
            elif self.path == "/v2/p10/pause/tags/list":
                if self.headers.get("Authorization") != "Bearer t0k":
                    self.send_response(401)
                    self.send_header(
                        "WWW-Authenticate",
                        f'Bearer realm="http://127.0.0.1:{port}/token",service="reg",scope="repository:p10/pause:pull"',
                    )
                    self.end_headers()
                    return
                body = json.dumps({"name": "p10/pause", "tags": ["3.2", "3.9"]}).encode()
            else:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"127.0.0.1:{server.server_address[1]}"
        assert client.tags(f"{base}/p10/pause") == ["3.2", "3.9"]
        assert any(p.startswith("/token?") and "scope=repository" in p for p in seen)
        assert client.tags(f"{base}/p10/nothing") is None  # 404: no such repository
    finally:
        server.shutdown()
        server.server_close()
