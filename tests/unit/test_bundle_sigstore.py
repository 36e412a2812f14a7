"""The pieces of a signature-carrying bundle for sigstore signatures (issue 19): the
signature-N files in containers/image's dir: storage form, the attachments read and verified
before they go in, the keys and the policy fragment; on load, the target's registries.d must
take attachments back and only simple signatures need a lookaside staging directory."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from tests.unit.test_sigstore_attachments import D, Memory

from podsec.errors import ValidationError
from podsec.host.paths import Host
from podsec.registry import bundle, load_plan, naming, oci
from podsec.trust import attachments, sigstore, sigstore_keys
from podsec.trust import policy as pol
from podsec.trust import registries_d as rd

FIXTURES = Path(__file__).resolve().parents[1] / "conformance/fixtures/containers-image/signature"
REPO = "127.0.0.1:5000/apps/app"


# ------------------------------------------------------------------------------ storage form
def test_blob_is_what_containers_image_writes() -> None:
    """containers/image's own dir: copies (signature/fixtures/dir-img-cosign-*): parsed and
    written again, byte for byte (two fixtures were saved with a trailing newline that
    Go's encoder does not write)."""
    files = sorted(FIXTURES.glob("dir-img-cosign-*/signature-*"))
    assert len(files) >= 10
    for path in files:
        data = path.read_bytes()
        found = sigstore.from_blob(data)
        assert found is not None, path
        assert found.blob() == data.rstrip(b"\n"), path


def test_blob_is_go_json() -> None:
    """encoding/json: map keys sorted, <>& escaped, UTF-8 kept."""
    sig = sigstore.Sigstore("m", b"p", {"z": "a<b>&c", "a": "ж\u2028"})
    assert sig.blob() == (
        b'\0sigstore-json\n{"mimeType":"m","payload":"cA==","annotations":'
        b'{"a":"\xd0\xb6\\u2028","z":"a\\u003cb\\u003e\\u0026c"}}'
    )
    assert sigstore.from_blob(sig.blob()) == sig


def test_carried_signatures_lookaside_first_and_attachments_once() -> None:
    a = sigstore.Sigstore(sigstore.MIME_TYPE, b"1", {"k": "1"}).blob()
    b = sigstore.Sigstore(sigstore.MIME_TYPE, b"2", {"k": "2"}).blob()
    gpg = b"\xa3gpg"
    assert bundle.carried_signatures([gpg, a], [a, b]) == [gpg, a, b]
    assert bundle.carried_signatures([gpg], []) == [gpg]


# ------------------------------------------------------------------------------ the fragment
def test_fragment_requirement_keeps_any_of_several_keys() -> None:
    one = pol.sigstore_signed("/etc/keys/maker.pub")
    assert bundle.fragment_requirement(one, ["maker.pub"]) == {
        "type": "sigstoreSigned",
        "keyPath": "/var/sigstore/keys/maker.pub",
    }
    two = pol.signed_by(["/k/a.pgp", "/k/b.pgp"])
    assert bundle.fragment_requirement(two, ["a.pgp", "b.pgp"]) == {
        "type": "signedBy",
        "keyType": "GPGKeys",
        "keyPaths": ["/var/sigstore/keys/a.pgp", "/var/sigstore/keys/b.pgp"],
    }


def test_key_data_is_carried_as_a_file(tmp_path: Path) -> None:
    import base64

    pem = sigstore_keys.generate(b"").public_key
    req = pol.parse(
        json.dumps(
            {"default": [{"type": "sigstoreSigned", "keyData": base64.b64encode(pem).decode()}]}
        ),
        "p",
    ).default[0]
    (key,) = bundle.requirement_keys(Host(tmp_path), req)
    assert key.data == pem and key.name.startswith("keydata-") and key.name.endswith(".pub")


# ------------------------------------------------------------------------------ saving
class Node:
    """A host tree whose policy requires a sigstore signature by maker.pub for
    127.0.0.1:5000/apps, a registry in memory, and a signing key."""

    def __init__(self, root: Path, *, attachments_on: bool = True, gpg_too: bool = False):
        self.pair = sigstore_keys.generate(b"")
        self.key = sigstore_keys.load_private(self.pair.private_key, b"")
        keys = root / "etc/keys"
        keys.mkdir(parents=True)
        (keys / "maker.pub").write_bytes(self.pair.public_key)
        reqs = [{"type": "sigstoreSigned", "keyPath": "/etc/keys/maker.pub"}]
        if gpg_too:
            (keys / "maker.pgp").write_text("not used: the verdict fails first\n")
            reqs.insert(0, {"type": "signedBy", "keyType": "GPGKeys",
                            "keyPath": "/etc/keys/maker.pgp"})  # fmt: skip
        policy = {"default": [{"type": "reject"}], "transports": {"docker": {
            "127.0.0.1:5000/apps": reqs}}}  # fmt: skip
        (root / "policy.json").write_text(json.dumps(policy))
        (root / "registries.d").mkdir()
        (root / "registries.d/default.yaml").write_text(
            "docker:\n  127.0.0.1:5000/apps:\n"
            f"    use-sigstore-attachments: {'true' if attachments_on else 'false'}\n"
        )
        self.root = root
        self.layout = root / "layout"
        self.layout.mkdir()
        self.copy = root / "copy"
        self.copy.mkdir()
        self.registry = Memory()

    def builder(self, monkeypatch: pytest.MonkeyPatch) -> bundle.BundleBuilder:
        monkeypatch.setattr(bundle, "_registry_source", lambda _d, _t: self.registry)
        return bundle.BundleBuilder(
            Host(self.root), self.layout, self.root / "registries.d", self.root / "policy.json"
        )

    def attach(self, sig: sigstore.Sigstore) -> None:
        self.registry.store("apps/app", attachments.updated(None, None, [sig]))


ENTRY = oci.ImageEntry("apps/app:1", D, 10, oci.OCI_MANIFEST, "amd64", oci.Blob(D, 1), ())
SOURCE = naming.Source("docker://", f"{REPO}:1")


def test_save_carries_the_verified_attachment(tmp_path: Path, monkeypatch) -> None:
    node = Node(tmp_path)
    sig = sigstore.sign_image(node.key, f"{REPO}:1", D)
    node.attach(sig)
    builder = node.builder(monkeypatch)
    entry = builder.add(node.copy, ENTRY, SOURCE)
    (rel,) = entry.signatures
    assert rel == f"podsec-signatures/apps/app@sha256={'ab' * 32}/signature-1"
    assert (node.layout / rel).read_bytes() == sig.blob()
    assert builder.finish() == {"keys": ("podsec-keys/maker.pub",), "policy": "podsec-policy.json"}
    assert (node.layout / "podsec-keys/maker.pub").read_bytes() == node.pair.public_key
    fragment = pol.load(node.layout / "podsec-policy.json")
    (req,) = fragment.transports["docker"]["127.0.0.1:5000/apps"]
    assert (req.type, req.key_path) == ("sigstoreSigned", "/var/sigstore/keys/maker.pub")


def test_save_refuses_a_tampered_attachment(tmp_path: Path, monkeypatch) -> None:
    node = Node(tmp_path)
    good = sigstore.sign_image(node.key, f"{REPO}:1", D)
    node.attach(sigstore.Sigstore(good.mime_type, good.payload + b" ", good.annotations))
    with pytest.raises(ValidationError, match="cryptographic signature verification failed"):
        node.builder(monkeypatch).add(node.copy, ENTRY, SOURCE)
    assert not any(node.layout.iterdir())


def test_save_refuses_an_image_without_its_sigstore_signature(tmp_path, monkeypatch) -> None:
    node = Node(tmp_path)
    with pytest.raises(ValidationError, match="has no signature"):
        node.builder(monkeypatch).add(node.copy, ENTRY, SOURCE)
    # a lookaside (simple) signature does not stand in for the sigstore one
    (node.copy / "signature-1").write_bytes(b"\xa3not a sigstore signature")
    with pytest.raises(ValidationError, match="verifies"):
        node.builder(monkeypatch).add(node.copy, ENTRY, SOURCE)


def test_save_refuses_when_registries_d_reads_no_attachments(tmp_path, monkeypatch) -> None:
    node = Node(tmp_path, attachments_on=False)
    node.attach(sigstore.sign_image(node.key, f"{REPO}:1", D))
    with pytest.raises(ValidationError, match="does not read its sigstore attachments"):
        node.builder(monkeypatch).add(node.copy, ENTRY, SOURCE)


def test_save_both_kinds_needs_both(tmp_path: Path, monkeypatch) -> None:
    """A scope requiring signedBy and sigstoreSigned: a sigstore signature alone is not
    enough (containers/image checks every requirement)."""
    node = Node(tmp_path, gpg_too=True)
    node.attach(sigstore.sign_image(node.key, f"{REPO}:1", D))
    with pytest.raises(ValidationError, match="verifies"):
        node.builder(monkeypatch).add(node.copy, ENTRY, SOURCE)


# ------------------------------------------------------------------------------ loading
def _trust(root: Path, attachments_on: bool) -> tuple[load_plan.Trust, Node]:
    node = Node(root, attachments_on=attachments_on)
    trust = load_plan.Trust(
        rd.load_dir(root / "registries.d"),
        pol.load(root / "policy.json"),
        None,
        tempfile.TemporaryDirectory(),
    )
    return trust, node


Planned = tuple[load_plan.PlannedImage, dict[str, bytes], oci.Contents]


def _planned(sig: bytes) -> Planned:
    rel = "podsec-signatures/apps/app@sha256=" + "ab" * 32 + "/signature-1"
    entry = oci.ImageEntry("apps/app:1", D, 10, oci.OCI_MANIFEST, "amd64", oci.Blob(D, 1), (),
                           signatures=(rel,))  # fmt: skip
    image = load_plan.PlannedImage(entry, naming.parse_reference(f"{REPO}:1"), set())
    contents = oci.Contents("amd64", (entry,))
    return image, {rel: sig}, contents


@pytest.mark.parametrize("attachments_on", [True, False])
def test_load_takes_sigstore_back_only_where_attachments_are_read(
    tmp_path: Path, attachments_on: bool
) -> None:
    trust, node = _trust(tmp_path, attachments_on)
    try:
        sig = sigstore.sign_image(node.key, f"{REPO}:1", D).blob()
        image, meta, contents = _planned(sig)
        if attachments_on:
            load_plan.check_bundle(Host(tmp_path), trust, [image], meta, contents)
            assert image.bundle_sigs == [sig]
            # sigstore signatures go to the registry: no lookaside staging needed
            assert not load_plan.needs_staging(image, trust, verify_bundle=True)
            image.bundle_sigs.append(b"\xa3simple")
            assert load_plan.needs_staging(image, trust, verify_bundle=True)
        else:
            with pytest.raises(ValidationError, match="does not use sigstore attachments"):
                load_plan.check_bundle(Host(tmp_path), trust, [image], meta, contents)
    finally:
        trust.close()


def test_load_refuses_an_untrusted_sigstore_signature(tmp_path: Path) -> None:
    trust, _node = _trust(tmp_path, True)
    try:
        other = sigstore_keys.load_private(sigstore_keys.generate(b"").private_key, b"")
        image, meta, contents = _planned(sigstore.sign_image(other, f"{REPO}:1", D).blob())
        with pytest.raises(ValidationError, match="refused by the policy of this node"):
            load_plan.check_bundle(Host(tmp_path), trust, [image], meta, contents)
    finally:
        trust.close()
