"""save-k8s against a real registry: missing tags and U7S_SETAVAILABLEIMAGES (reference §4.1).

The registry holds tiny busybox-based stand-ins under the names kubeadm v1.20.2 lists (the
real control-plane images are exercised by tests/e2e/test_archive_k8s.py); kube-apiserver
exists only as v1.20.5.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from tests.fixtures.images import Registry, build_oci_layout, skopeo_copy
from tests.fixtures.require import require_tool

pytestmark = pytest.mark.integration

PODSEC = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "podsec")
TAGS = {
    "kube-apiserver": "v1.20.5",  # v1.20.2 is missing on purpose
    "kube-controller-manager": "v1.20.2",
    "kube-scheduler": "v1.20.2",
    "kube-proxy": "v1.20.2",
    "pause": "3.2",
    "etcd": "3.4.13-0",
    "coredns": "1.7.0",
}


def test_missing_tag_and_set_available_images(tmp_path: Path, registry: Registry) -> None:
    require_tool("kubeadm", "skopeo")
    layout = tmp_path / "oci"
    build_oci_layout(layout, ["stand-in"])
    base = f"{registry.host}/tags{os.getpid()}"
    for name, tag in TAGS.items():
        skopeo_copy(f"oci:{layout}:stand-in:1", f"docker://{base}/p10/{name}:{tag}")
    # a U7S_REGISTRY with a path is the whole repository (the seed's registry.local/k8s-p10),
    # as for the node: the platform is not appended to it
    env = {**os.environ, "U7S_REGISTRY": f"{base}/p10", "U7S_KUBEVERSION": "v1.20.2"}
    argv = [
        PODSEC,
        "images",
        "save-k8s",
        str(tmp_path / "out"),
        "amd64",
        "p10",
        "--no-flannel",
        "--no-src-tls-verify",
        "--zstd",
        "--level",
        "3",
        "--json",
    ]
    missing = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert missing.returncode != 0
    assert f"{base}/p10/kube-apiserver:v1.20.2 does not exist" in missing.stderr
    assert "v1.20.5" in missing.stderr and "U7S_SETAVAILABLEIMAGES" in missing.stderr
    assert not (tmp_path / "out" / "amd64.tar.zst").exists()

    ok = subprocess.run(
        argv,
        env={**env, "U7S_SETAVAILABLEIMAGES": "yes"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    images = {i["ref"]: i["source"] for i in json.loads(ok.stdout)[0]["images"]}
    stored = f"tags{os.getpid()}/p10/kube-apiserver:v1.20.2"
    assert images[stored] == f"docker://{base}/p10/kube-apiserver:v1.20.5"
    assert len(images) == 7


@pytest.mark.parametrize(
    ("platform", "os_release", "repository"),
    [
        ("c10f", "", "registry.altlinux.org/k8s-c10f1"),
        ("k8s-c10f1", "", "registry.altlinux.org/k8s-c10f1"),
        (None, 'ID=debian\nVERSION_ID="12"\n', "registry.altlinux.org/k8s-p10"),
    ],
)
def test_readme_save_k8s_line_names_the_seeds_images(
    tmp_path: Path, platform: str | None, os_release: str, repository: str
) -> None:
    """issue 16: the README's `U7S_KUBEVERSION=… U7S_FLANNEL_TAG=v0.25.1 podsec images save-k8s
    /tmp/oci amd64 c10f` failed ("flannel-cni-plugin tag not known": the shipped versions.json
    was ignored); the seed's k8s-c10f1 / k8s-p10 repositories, the k8s- names accepted, and
    Debian uses p10 as the node does (save-k8s asked for a platform)."""
    found = require_tool("kubeadm")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text(os_release)
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("U7S_", "PODSEC"))}
    env.update(
        U7S_KUBEVERSION="v1.20.2", U7S_FLANNEL_TAG="v0.25.1", PODSEC_KUBEADM=found["kubeadm"]
    )
    argv = [PODSEC, "--root", str(root), "images", "save-k8s", str(tmp_path / "oci"), "amd64"]
    argv += [platform] if platform else []
    r = subprocess.run([*argv, "--dry-run"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    images = r.stdout.split()
    assert f"{repository}/kube-apiserver:v1.20.2" in images
    assert f"{repository}/flannel:v0.25.1" in images
    assert f"{repository}/flannel-cni-plugin:v1.4.0-flannel1" in images
