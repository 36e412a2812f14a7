"""Attachment manifests as containers/image writes and reads them, registries.d's
use-sigstore-attachments lookup, and the audit's attachment tags."""

from __future__ import annotations

import hashlib
import json

import pytest

from podsec.errors import NotFoundError, PodsecError
from podsec.registry.audit import attachment_target
from podsec.trust import attachments, sigstore
from podsec.trust import registries_d as rd

D = "sha256:" + "ab" * 32


class Memory:
    """A registry's manifests and blobs in memory (what attachments.read asks of one)."""

    def __init__(self) -> None:
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.blobs: dict[str, bytes] = {}

    def manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]:
        if (repo, ref) not in self.manifests:
            raise NotFoundError("not in the registry")
        body, media = self.manifests[(repo, ref)]
        return body, "sha256:" + hashlib.sha256(body).hexdigest(), media

    def blob(self, repo: str, digest: str) -> bytes:
        return self.blobs[digest]

    def store(self, repo: str, update: attachments.Update) -> None:
        for blob in update.blobs:
            self.blobs["sha256:" + hashlib.sha256(blob).hexdigest()] = blob
        self.manifests[(repo, attachments.tag_for(D))] = (update.manifest, attachments.OCI_MANIFEST)


def sig(n: int) -> sigstore.Sigstore:
    return sigstore.Sigstore(sigstore.MIME_TYPE, f'{{"n":{n}}}'.encode(), {"k": str(n)})


def test_tag_is_containers_images() -> None:
    assert attachments.tag_for(D) == "sha256-" + "ab" * 32 + ".sig"
    with pytest.raises(PodsecError):
        attachments.tag_for("sha256:../../x")


def test_signatures_append_once_and_read_back_in_order() -> None:
    reg = Memory()
    assert attachments.read(reg, "r", D) == []
    first = attachments.updated(None, None, [sig(1)])
    reg.store("r", first)
    doc = json.loads(first.manifest)
    assert doc["mediaType"] == attachments.OCI_MANIFEST
    assert doc["config"]["mediaType"] == attachments.OCI_CONFIG
    assert doc["layers"][0]["annotations"] == {"k": "1"}
    conf = json.loads(first.config)
    assert conf["rootfs"] == {"type": "layers", "diff_ids": [doc["layers"][0]["digest"]]}
    second = attachments.updated(first.manifest, first.config, [sig(1), sig(2)])
    assert second.added == 1  # sig(1) is already there
    reg.store("r", second)
    got = [sigstore.from_blob(b) for b in attachments.read(reg, "r", D)]
    assert got == [sig(1), sig(2)]


def test_a_blob_that_does_not_match_its_descriptor_refuses() -> None:
    reg = Memory()
    update = attachments.updated(None, None, [sig(1)])
    reg.store("r", update)
    digest = json.loads(update.manifest)["layers"][0]["digest"]
    reg.blobs[digest] = b'{"n":9}'
    with pytest.raises(PodsecError, match="does not match"):
        attachments.read(reg, "r", D)


def test_an_attachment_tag_that_is_not_an_oci_manifest_refuses() -> None:
    reg = Memory()
    reg.manifests[("r", attachments.tag_for(D))] = (
        b"{}",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
    with pytest.raises(PodsecError, match="unexpected MIME type"):
        attachments.read(reg, "r", D)


def test_use_sigstore_attachments_most_specific_scope_then_default() -> None:
    conf = rd.parse(
        "default-docker:\n  use-sigstore-attachments: true\n"
        "docker:\n  a.io/off:\n    use-sigstore-attachments: false\n  a.io/on/x:\n"
        "    use-sigstore-attachments: true\n  a.io/unset:\n    lookaside: http://l/\n",
        "t.yaml",
    )
    assert rd.use_sigstore_attachments(conf, "a.io/off/img:1") is False
    assert rd.use_sigstore_attachments(conf, "a.io/on/x/img:1") is True
    assert rd.use_sigstore_attachments(conf, "a.io/unset/img:1") is True  # falls to default
    assert rd.use_sigstore_attachments(rd.RegistriesD(), "a.io/img:1") is False
    text = rd.render(conf)
    again = rd.parse(text, "again.yaml")  # the flag survives a rewrite
    assert {k: v.use_sigstore_attachments for k, v in again.docker.items()} == {
        "a.io/off": False,
        "a.io/on/x": True,
        "a.io/unset": None,
    }
    assert again.default_docker is not None and again.default_docker.use_sigstore_attachments


def test_audit_recognises_attachment_tags() -> None:
    assert attachment_target("sha256-" + "ab" * 32 + ".sig") == D
    assert attachment_target("sha256-" + "ab" * 32 + ".att") == D
    assert attachment_target("1.0") is None
    assert attachment_target("sha256-abc.sig") is None
