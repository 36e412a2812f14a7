"""The shared image fixtures work end to end with the real tools (no podsec code involved):
push + sign with skopeo into the sigstore lookaside, then a signedBy policy accepts the signed
image and refuses the unsigned one — as root (skopeo, podman) and as a rootless user."""

from __future__ import annotations

import json
import urllib.request

import pytest
from tests.fixtures.images import skopeo_copy

pytestmark = pytest.mark.integration


def _policy(tmp_path, scope, key):
    policy = {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {scope: [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(key)}]},
            "oci": {"": [{"type": "insecureAcceptAnything"}]},
        },
    }
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    return path


def test_fixtures_sign_push_and_verify(registry, sigstore, gnupg_home, test_images, tmp_path):
    env = {**__import__("os").environ, **gnupg_home.env}
    signed = registry.ref("fixtures/alpha:1")
    unsigned = registry.ref("fixtures/beta:1")
    skopeo_copy(
        test_images.ref("alpha"),
        signed,
        env=env,
        sign_by=gnupg_home.nopass.email,
        registries_d=sigstore.registries_d,
    )
    skopeo_copy(test_images.ref("beta"), unsigned, env=env)
    sigs = list(sigstore.sigstore_dir.glob("fixtures/alpha@sha256=*/signature-1"))
    assert len(sigs) == 1
    # served by nginx under /sigstore/, keys listing is JSON
    (sigstore.keys_dir / "nopass.pgp").write_bytes(gnupg_home.nopass.public_key.read_bytes())
    with urllib.request.urlopen(f"http://{sigstore.address}:{sigstore.port}/keys/") as resp:
        assert [e["name"] for e in json.load(resp)] == ["nopass.pgp"]
    rel = sigs[0].relative_to(sigstore.sigstore_dir)
    with urllib.request.urlopen(f"http://{sigstore.address}:{sigstore.port}/sigstore/{rel}") as r:
        assert r.read() == sigs[0].read_bytes()

    policy = _policy(tmp_path, registry.host, gnupg_home.nopass.public_key)
    ok = skopeo_copy(
        signed, f"dir:{tmp_path / 'ok'}", policy=policy, registries_d=sigstore.registries_d
    )
    assert ok.returncode == 0
    bad = skopeo_copy(
        unsigned,
        f"dir:{tmp_path / 'bad'}",
        policy=policy,
        registries_d=sigstore.registries_d,
        check=False,
    )
    assert "A signature was required, but no signature exists" in bad.stderr


def test_podman_env_and_rootless_user(
    registry, sigstore, gnupg_home, test_images, podman_env, rootless_user
):
    import os

    signed = registry.ref("fixtures/busybox:1")
    skopeo_copy(
        test_images.ref("busybox"),
        signed,
        env={**os.environ, **gnupg_home.env},
        sign_by=gnupg_home.nopass.email,
        registries_d=sigstore.registries_d,
    )
    # root podman with policy + registries.d in $HOME/.config/containers
    _policy(podman_env.config_dir, registry.host, gnupg_home.nopass.public_key)
    (podman_env.config_dir / "registries.d").mkdir()
    (podman_env.config_dir / "registries.d" / "default.yaml").write_text(
        f"default-docker:\n  lookaside: {sigstore.lookaside}\n"
    )
    ref = f"{registry.host}/fixtures/busybox:1"
    podman_env.run("podman", "pull", "--tls-verify=false", ref)
    out = podman_env.run("podman", "run", "--rm", "--network=none", ref)
    assert "hello from busybox" in out.stdout

    # rootless: the same policy in the user's own config dir
    user = rootless_user
    cfg = user.home / ".config" / "containers"
    user.run("mkdir", "-p", str(cfg / "registries.d"))
    key = user.home / "nopass.pgp"
    key.write_bytes(gnupg_home.nopass.public_key.read_bytes())
    os.chmod(key, 0o644)
    user.run(
        "sh",
        "-c",
        f"cat > {cfg}/policy.json",
        input=_policy(podman_env.home, registry.host, key).read_text(),
    )
    user.run(
        "sh",
        "-c",
        f"cat > {cfg}/registries.d/default.yaml",
        input=f"default-docker:\n  lookaside: {sigstore.lookaside}\n",
    )
    user.run("podman", "pull", "--tls-verify=false", ref)
    out = user.run("podman", "run", "--rm", "--network=none", ref)
    assert "hello from busybox" in out.stdout
