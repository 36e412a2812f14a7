"""``podsec u7s pull`` of images whose scope requires sigstore signatures: Debian's skopeo
refuses every one ("sigstore disabled"), so podsec's verifier decides and skopeo copies the
verified digest; other scopes stay skopeo's policy check. The registry is in memory."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from podsec.errors import NotFoundError
from podsec.host import run as hostrun
from podsec.host.paths import Host
from podsec.registry import client as registry_client
from podsec.trust import attachments, sigstore, sigstore_keys
from podsec.u7s import node_images
from podsec.u7s.lifecycle import NodeError
from podsec.u7s.plan import NodePlan

CONFIG = {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
          "digest": "sha256:" + "0" * 64}  # fmt: skip
MANIFEST = json.dumps(
    {"schemaVersion": 2, "mediaType": attachments.OCI_MANIFEST, "config": CONFIG, "layers": []}
).encode()
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


class Memory:
    """What the verifier asks of a registry: manifests by tag, blobs by digest."""

    def __init__(self) -> None:
        self.manifests: dict[tuple[str, str], bytes] = {}
        self.blobs: dict[str, bytes] = {}

    def manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]:
        if (repo, ref) not in self.manifests:
            raise NotFoundError(f"{repo}:{ref} is not in the registry")
        body = self.manifests[(repo, ref)]
        return body, "sha256:" + hashlib.sha256(body).hexdigest(), attachments.OCI_MANIFEST

    def blob(self, repo: str, digest: str) -> bytes:
        return self.blobs[digest]

    def attach(self, repo: str, sig: sigstore.Sigstore) -> None:
        update = attachments.updated(None, None, [sig])
        for blob in update.blobs:
            self.blobs["sha256:" + hashlib.sha256(blob).hexdigest()] = blob
        self.manifests[(repo, attachments.tag_for(DIGEST))] = update.manifest


@pytest.fixture
def node(host_root: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Host, Memory, object]:
    pair = sigstore_keys.generate(b"")
    (host_root / "etc/pki").mkdir()
    (host_root / "etc/pki/maker.pub").write_bytes(pair.public_key)
    policy = {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {
                "registry.local/sig": [{"type": "sigstoreSigned", "keyPath": "/etc/pki/maker.pub"}],
                "registry.local/gpg": [
                    {"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/etc/pki/x.pgp"}
                ],
            }
        },
    }
    (host_root / "etc/containers/registries.d").mkdir(parents=True)
    (host_root / "etc/containers/policy.json").write_text(json.dumps(policy))
    (host_root / "etc/containers/registries.d/default.yaml").write_text(
        "docker:\n  registry.local/sig:\n    use-sigstore-attachments: true\n"
    )
    reg = Memory()
    monkeypatch.setattr(registry_client, "RegistryClient", lambda *_a, **_k: reg)
    key = sigstore_keys.load_private(pair.private_key, b"")
    return Host(host_root), reg, key


def test_a_signed_image_is_copied_by_its_verified_digest(node) -> None:  # type: ignore[no-untyped-def]
    host, reg, key = node
    reg.manifests[("sig/app", "1")] = MANIFEST
    reg.attach("sig/app", sigstore.sign_image(key, "registry.local/sig/app:1", DIGEST))
    assert node_images.sigstore_verified(host, "registry.local/sig/app:1") == (
        f"registry.local/sig/app@{DIGEST}"
    )


def test_a_tampered_or_missing_signature_is_refused_with_the_verifiers_reason(node) -> None:  # type: ignore[no-untyped-def]
    host, reg, key = node
    reg.manifests[("sig/app", "1")] = MANIFEST
    with pytest.raises(Exception, match="no signature exists"):
        node_images.sigstore_verified(host, "registry.local/sig/app:1")
    good = sigstore.sign_image(key, "registry.local/sig/app:1", DIGEST)
    flipped = bytearray(good.payload)
    flipped[flipped.index(b"sha256:") + 7] ^= 1
    reg.attach("sig/app", sigstore.Sigstore(good.mime_type, bytes(flipped), good.annotations))
    with pytest.raises(Exception, match="cryptographic signature verification failed"):
        node_images.sigstore_verified(host, "registry.local/sig/app:1")


def test_other_scopes_are_left_to_skopeos_policy(node) -> None:  # type: ignore[no-untyped-def]
    host, _reg, _key = node
    assert node_images.sigstore_verified(host, "registry.local/gpg/app:1") is None
    assert node_images.sigstore_verified(host, "docker.io/library/busybox:1") is None


def test_pull_copies_what_was_verified(node, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    host, reg, key = node
    reg.manifests[("sig/app", "1")] = MANIFEST
    reg.attach("sig/app", sigstore.sign_image(key, "registry.local/sig/app:1", DIGEST))
    ran: list[list[str]] = []
    monkeypatch.setattr(node_images, "present_images", lambda _layout: set())
    monkeypatch.setattr(node_images, "import_archive", lambda *_a: None)
    monkeypatch.setattr(node_images, "ctr", lambda *_a, **_k: None)
    monkeypatch.setattr(hostrun, "run", lambda argv, **_k: ran.append(argv))
    plan = NodePlan.__new__(NodePlan)
    object.__setattr__(plan, "images", ("registry.local/sig/app:1", "registry.local/gpg/app:1"))
    monkeypatch.setattr(node_images.render, "retag_pairs", lambda _plan: [])

    class Progress:
        def start(self, *_a: object, **_k: object) -> None: ...
        def advance(self, *_a: object, **_k: object) -> None: ...
        def finish(self, *_a: object, **_k: object) -> None: ...

    node_images.pull_images(None, plan, Progress(), tmp_path, host)  # type: ignore[arg-type]
    sig_argv, gpg_argv = ran
    assert sig_argv[:2] == ["skopeo", "--insecure-policy"]
    assert f"docker://registry.local/sig/app@{DIGEST}" in sig_argv
    assert sig_argv[-1].endswith(":registry.local/sig/app:1")  # stored under its tag
    assert "--insecure-policy" not in gpg_argv and "docker://registry.local/gpg/app:1" in gpg_argv
    # a refusal stops the pull before skopeo runs
    ran.clear()
    reg.manifests.pop(("sig/app", attachments.tag_for(DIGEST)))
    object.__setattr__(plan, "images", ("registry.local/sig/app:1",))
    with pytest.raises(NodeError, match="no signature exists"):
        node_images.pull_images(None, plan, Progress(), tmp_path, host)  # type: ignore[arg-type]
    assert ran == []
