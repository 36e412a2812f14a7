"""The whole air-gapped supply chain on the harness's real Kubernetes images.

save-k8s (the real kubeadm lists the v1.20.2 image set) → archive → load-sign into a fresh
repository path of a real registry → ``podman pull`` of every image under podsec's policy.

Stand-ins: Debian cannot build CoreDNS or flannel here, so the test's source layout maps
``coredns:1.7.0``, ``flannel:v0.19.2`` and ``flannel-cni-plugin:v1.1.0`` to the harness's
busybox image (same blobs, other names). Every other image is the real locally built one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.fixtures.images import (
    GnupgHome,
    PodmanEnv,
    Registry,
    Sigstore,
    _umount_under,
    make_podman_env,
)
from tests.fixtures.require import IMAGES_DIR, require_path, require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

PODSEC = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "podsec")
STAND_INS = {
    "registry.local/p10/coredns:1.7.0": "registry.local/p10/busybox:1.35",
    "registry.local/p10/flannel:v0.19.2": "registry.local/p10/busybox:1.35",
    "registry.local/p10/flannel-cni-plugin:v1.1.0": "registry.local/p10/busybox:1.35",
}


def _source_layout(dest: Path) -> Path:
    """The harness layout (hard links) plus the stand-in names."""
    src = require_path(IMAGES_DIR / "oci" / "index.json", "the harness image set").parent
    shutil.copytree(src, dest, copy_function=os.link)
    index = json.loads((dest / "index.json").read_text())
    by_ref = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in index["manifests"]}
    for name, same_as in STAND_INS.items():
        entry = json.loads(json.dumps(by_ref[same_as]))
        entry["annotations"]["org.opencontainers.image.ref.name"] = name
        index["manifests"].append(entry)
    (dest / "index.json").write_text(json.dumps(index))
    return dest


def test_save_k8s_load_sign_pull(
    tmp_path: Path, registry: Registry, sigstore: Sigstore, gnupg_home: GnupgHome
) -> None:
    require_tool("kubeadm", "skopeo", "podman")
    layout = _source_layout(tmp_path / "layout")
    env = {
        **os.environ,
        "U7S_REGISTRY": "registry.local",
        "U7S_PLATFORM": "p10",
        "U7S_KUBEVERSION": "v1.20.2",
        "U7S_FLANNEL_TAG": "v0.19.2",
        "U7S_FLANNELCNIPLUGIN_TAG": "v1.1.0",
    }
    listed = subprocess.run(
        [PODSEC, "images", "save-k8s", str(tmp_path / "out"), "amd64", "--dry-run", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    images = json.loads(listed.stdout)["images"]
    assert "registry.local/p10/kube-apiserver:v1.20.2" in images
    assert set(STAND_INS) <= set(images) and len(images) == 9

    saved = subprocess.run(
        [
            PODSEC,
            "images",
            "save-k8s",
            str(tmp_path / "out"),
            "amd64",
            "--source",
            f"oci:{layout}",
            "--zstd",
            "--level",
            "3",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert saved.returncode == 0, saved.stderr
    report = json.loads(saved.stdout)[0]
    archive = Path(report["archive"])
    assert archive.name == "amd64.tar.zst"
    assert {i["ref"] for i in report["images"]} == {i.split("/", 1)[1] for i in images}

    # a fresh repository path in the shared registry, the policy trusting the maker's key
    path = f"{registry.host}/k8s{os.getpid()}"
    penv = make_podman_env(tmp_path / "penv", insecure=(registry.host,))
    policy = {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {
                path: [
                    {
                        "type": "signedBy",
                        "keyType": "GPGKeys",
                        "keyPath": str(gnupg_home.nopass.public_key),
                    }
                ]
            },
            "containers-storage": {"": [{"type": "insecureAcceptAnything"}]},
        },
    }
    (penv.config_dir / "policy.json").write_text(json.dumps(policy))
    shutil.copytree(sigstore.registries_d, penv.config_dir / "registries.d")
    try:
        _load_and_pull(archive, path, penv, registry, gnupg_home)
    finally:
        _umount_under(tmp_path / "penv")


def _load_and_pull(
    archive: Path, path: str, penv: PodmanEnv, registry: Registry, gnupg_home: GnupgHome
) -> None:
    loaded = subprocess.run(
        [
            PODSEC,
            "images",
            "load-sign",
            str(archive),
            "amd64",
            gnupg_home.nopass.email,
            path,
            "--registry-url",
            registry.url,
            "--policy",
            str(penv.config_dir / "policy.json"),
            "--json",
        ],
        env={**penv.env, **gnupg_home.env},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert loaded.returncode == 0, loaded.stderr
    result = json.loads(loaded.stdout)
    assert len(result["images"]) == 9
    assert {i["status"] for i in result["images"]} == {"pushed"}
    for image in result["images"]:
        pulled = penv.run("podman", "pull", "--tls-verify=false", image["target"], check=False)
        assert pulled.returncode == 0, f"{image['target']}: {pulled.stderr}"
    # and an image outside the signed path is refused by the same policy
    refused = penv.run(
        "podman",
        "pull",
        "--tls-verify=false",
        f"{registry.host}/unsigned{os.getpid()}/pause:3.2",
        check=False,
    )
    assert refused.returncode != 0
