"""`podsec ingress prepare --push --sign-by`: the rewritten manifest's images really land in a
registry, signed (real podman, gpg, docker-registry, skopeo verifying a signedBy policy; test
images stand in for ingress-nginx's)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.fixtures.images import GnupgHome, PodmanEnv, Registry, Sigstore
from tests.fixtures.images import TestImages as Images
from tests.integration.lb_env import podsec

pytestmark = pytest.mark.integration

MANIFEST = (
    Path(__file__).resolve().parents[1] / "data/ingress-nginx-controller-v1.8.0-baremetal.yaml"
)
UPSTREAM = {
    "controller": "registry.k8s.io/ingress-nginx/controller:v1.8.0@sha256:744ae2afd433a395eeb13dc03d3313facba92e96ad71d9feaafc85925493fee3",
    "certgen": "registry.k8s.io/ingress-nginx/kube-webhook-certgen:v20230407@sha256:543c40fd093964bc9ab509d3e791f9989963021f1e9e4c9c7b6700b02bfb227b",
}


def test_prepare_push_tags_signs_and_pushes(
    registry: Registry,
    sigstore: Sigstore,
    gnupg_home: GnupgHome,
    test_images: Images,
    podman_env: PodmanEnv,
    tmp_path: Path,
) -> None:
    env = podman_env
    with env.registries_conf.open("a") as conf:  # plain-HTTP test registry
        conf.write(f'\n[[registry]]\nlocation = "{registry.host}"\ninsecure = true\n')
    # signatures go to the sigstore's staging directory (lookaside-staging)
    shutil.copytree(sigstore.registries_d, env.config_dir / "registries.d")
    # the test images play ingress-nginx: same names, their own digests in the manifest
    text = MANIFEST.read_text()
    for role, image in (("controller", "alpha"), ("certgen", "beta")):
        image_id = env.run("podman", "pull", "-q", test_images.ref(image)).stdout.strip()
        name = UPSTREAM[role].split("@")[0]
        env.run("podman", "tag", image_id, name)
        text = text.replace(UPSTREAM[role], f"{name}@{test_images.digests[image]}")
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(text)
    target = f"{registry.host}/lb{os.getpid()}"  # repositories accumulate over the session

    keep = ("HOME", "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "CONTAINERS_REGISTRIES_CONF")
    r = podsec(
        "ingress",
        "prepare",
        str(manifest),
        "--registry",
        target,
        "--push",
        "--sign-by",
        gnupg_home.nopass.email,
        "--json",
        env={**{k: v for k, v in env.env.items() if k in keep}, **gnupg_home.env},
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["service"] == "ingress-nginx/ingress-nginx-controller"
    assert result["commands"] == []
    assert f"image: {target}/ingress-nginx/controller:v1.8.0" in manifest.read_text()
    assert (tmp_path / "deploy.yaml.podsec-bak").read_text() == text

    signatures = sorted(sigstore.sigstore_dir.glob(f"lb{os.getpid()}/ingress-nginx/*/signature-1"))
    assert len(signatures) == 2, list(sigstore.sigstore_dir.rglob("*"))[:20]
    # a node whose policy demands this key's signature accepts both images
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "default": [{"type": "reject"}],
                "transports": {
                    "docker": {
                        target: [
                            {
                                "type": "signedBy",
                                "keyType": "GPGKeys",
                                "keyPath": str(gnupg_home.nopass.public_key),
                            }
                        ]
                    },
                    "dir": {"": [{"type": "insecureAcceptAnything"}]},
                },
            }
        )
    )
    for path, image in (
        ("ingress-nginx/controller:v1.8.0", "alpha"),
        ("ingress-nginx/kube-webhook-certgen:v20230407", "beta"),
    ):
        out = tmp_path / image
        done = env.run(
            "skopeo",
            "--policy",
            str(policy),
            "--registries.d",
            str(sigstore.registries_d),
            "copy",
            "--src-tls-verify=false",
            f"docker://{target}/{path}",
            f"dir:{out}",
        )
        assert done.returncode == 0
        local = json.loads(
            subprocess.run(
                ["skopeo", "inspect", "--raw", test_images.ref(image)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )["config"]["digest"]
        pushed = json.loads((out / "manifest.json").read_text())["config"]["digest"]
        assert pushed == local  # layers get compressed on push; the config is the image


def test_prepare_prints_the_seed_commands(tmp_path: Path) -> None:
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(MANIFEST.read_text())
    r = podsec("ingress", "prepare", str(manifest), "--output", "-")
    assert r.returncode == 0, r.stderr
    assert "nodePort: 31000" in r.stdout
    assert (
        f"podman tag {UPSTREAM['controller']} registry.local/ingress-nginx/controller:v1.8.0"
        in r.stderr
    )
    assert "podman push registry.local/ingress-nginx/kube-webhook-certgen:v20230407" in r.stderr
    assert manifest.read_text() == MANIFEST.read_text()  # --output - leaves the file alone
