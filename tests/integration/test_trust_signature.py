"""Python simple signing against the real tools: our signatures are accepted by skopeo under a
signedBy policy, skopeo's signatures verify in Python, and the refusals agree."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.fixtures.images import skopeo_copy

from podsec.errors import PodsecError
from podsec.host.paths import Host
from podsec.registry.client import RegistryClient
from podsec.trust import policy as pol
from podsec.trust import registries_d, signature, verify

pytestmark = pytest.mark.integration


def _policy_file(tmp_path: Path, scope: str, key: Path) -> tuple[Path, pol.Policy]:
    p = pol.Policy(
        (pol.reject(),),
        {"docker": {scope: (pol.signed_by(str(key)),)}, "oci": {"": (pol.accept(),)}},
    )
    path = tmp_path / "policy.json"
    path.write_text(pol.render(p))
    return path, p


@pytest.fixture(scope="module")
def pushed(registry, sigstore, gnupg_home, test_images):
    """Module images: alpha signed in Python, beta signed by skopeo, busybox unsigned,
    and busybox copied to a second repo signed by the untrusted key."""
    env = {**os.environ, **gnupg_home.env}
    repo = f"sigtest{os.getpid()}"
    skopeo_copy(test_images.ref("alpha"), registry.ref(f"{repo}/alpha:1"), env=env)
    skopeo_copy(
        test_images.ref("beta"),
        registry.ref(f"{repo}/beta:1"),
        env=env,
        sign_by=gnupg_home.nopass.email,
        registries_d=sigstore.registries_d,
    )
    skopeo_copy(test_images.ref("busybox"), registry.ref(f"{repo}/unsigned:1"), env=env)
    skopeo_copy(
        test_images.ref("busybox"),
        registry.ref(f"{repo}/untrusted:1"),
        env=env,
        sign_by=gnupg_home.other.email,
        registries_d=sigstore.registries_d,
    )
    client = RegistryClient(registry.url)
    _m, digest, _t = client.manifest(f"{repo}/alpha", "1")
    payload = signature.make_payload(f"{registry.host}/{repo}/alpha:1", digest)
    sig = signature.sign(payload, gnupg_home.nopass.email, gnupg_home.path)
    signature.store_signature(sigstore.sigstore_dir, f"{repo}/alpha", digest, sig)
    return repo, client


def _conf(sigstore) -> registries_d.RegistriesD:
    return registries_d.load_dir(sigstore.registries_d)


def test_python_signature_accepted_by_skopeo(pushed, registry, sigstore, gnupg_home, tmp_path):
    repo, client = pushed
    policy_path, _p = _policy_file(tmp_path, registry.host, gnupg_home.nopass.public_key)
    skopeo_copy(
        registry.ref(f"{repo}/alpha:1"),
        f"dir:{tmp_path / 'out'}",
        policy=policy_path,
        registries_d=sigstore.registries_d,
    )
    # and skopeo itself verifies the raw signature offline
    manifest, digest, _t = client.manifest(f"{repo}/alpha", "1")
    (tmp_path / "m.json").write_bytes(manifest)
    sig = next(sigstore.sigstore_dir.glob(f"{repo}/alpha@sha256=*/signature-1"))
    import subprocess

    out = subprocess.run(
        [
            "skopeo",
            "standalone-verify",
            str(tmp_path / "m.json"),
            f"{registry.host}/{repo}/alpha:1",
            gnupg_home.nopass.fingerprint,
            str(sig),
        ],
        env={**os.environ, **gnupg_home.env},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert digest in out.stdout


def test_skopeo_signature_verifies_in_python(pushed, registry, sigstore, gnupg_home, tmp_path):
    repo, client = pushed
    _path, p = _policy_file(tmp_path, registry.host, gnupg_home.nopass.public_key)
    digest = client.head_manifest(f"{repo}/beta", "1")
    assert digest
    ref = f"{registry.host}/{repo}/beta:1"
    verdict = verify.check_image(Host(), ref, digest, p, _conf(sigstore))
    assert verdict.accepted, verdict.reason
    assert verdict.scope == registry.host
    assert verdict.signatures[0].fingerprint == gnupg_home.nopass.fingerprint
    sigs = signature.fetch_signatures(sigstore.lookaside, f"{repo}/beta", digest)
    v = signature.verify(sigs[0], [gnupg_home.nopass.public_key])
    assert v.docker_reference == ref and v.manifest_digest == digest
    for image, ok in [
        (ref, True),
        (f"{registry.host}/{repo}/other:1", False),
        (f"{registry.host}/{repo}/beta@{digest}", True),
    ]:
        assert verify.evaluate(Host(), p, image, digest, sigs).accepted is ok, image


@pytest.mark.parametrize(
    ("name", "skopeo_text", "python_text"),
    [
        ("unsigned", "A signature was required, but no signature exists", "no signature exists"),
        ("untrusted", "Invalid GPG signature", "Invalid GPG signature"),
    ],
)
def test_refusals_agree(
    pushed, registry, sigstore, gnupg_home, tmp_path, name, skopeo_text, python_text
):
    repo, client = pushed
    policy_path, p = _policy_file(tmp_path, registry.host, gnupg_home.nopass.public_key)
    bad = skopeo_copy(
        registry.ref(f"{repo}/{name}:1"),
        f"dir:{tmp_path / 'out'}",
        policy=policy_path,
        registries_d=sigstore.registries_d,
        check=False,
    )
    assert bad.returncode != 0 and skopeo_text in bad.stderr
    digest = client.head_manifest(f"{repo}/{name}", "1")
    verdict = verify.check_image(
        Host(), f"{registry.host}/{repo}/{name}:1", digest, p, _conf(sigstore)
    )
    assert not verdict.accepted
    assert python_text in verdict.reason


def test_passphrase_key(gnupg_home):
    payload = signature.make_payload("registry.local/x/y:1", "sha256:" + "0" * 64)
    sig = signature.sign(
        payload,
        gnupg_home.withpass.email,
        gnupg_home.path,
        passphrase=gnupg_home.withpass.passphrase,
    )
    v = signature.verify(sig, [gnupg_home.withpass.public_key])
    assert v.fingerprint == gnupg_home.withpass.fingerprint
    with pytest.raises(PodsecError, match=r"Bad passphrase|cannot sign"):
        signature.sign(payload, gnupg_home.withpass.email, gnupg_home.path, passphrase="wrong")
    with pytest.raises(signature.SignatureError):
        signature.verify(sig, [gnupg_home.nopass.public_key])
    tampered = bytearray(sig)
    tampered[len(tampered) // 2] ^= 1
    with pytest.raises(signature.SignatureError):
        signature.verify(bytes(tampered), [gnupg_home.withpass.public_key])
    assert json.loads(payload)["critical"]["type"] == "atomic container signature"
