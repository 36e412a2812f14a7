"""Sigstore key pairs and the passphrase encryption cosign uses: checked against libsodium
(PyNaCl) and against the files containers/image and cosign write."""

from __future__ import annotations

import base64
import json
import os

import nacl.secret
import pytest

from podsec.trust import secretbox, sigstore, sigstore_keys


@pytest.mark.parametrize("size", [0, 1, 31, 32, 63, 64, 65, 138, 300])
def test_secretbox_is_libsodiums(size: int) -> None:
    key, nonce, message = os.urandom(32), os.urandom(24), os.urandom(size)
    theirs = nacl.secret.SecretBox(key).encrypt(message, nonce).ciphertext
    assert secretbox.seal(message, nonce, key) == theirs
    assert secretbox.open_box(theirs, nonce, key) == message


def test_secretbox_refuses_a_flipped_bit() -> None:
    key, nonce = os.urandom(32), os.urandom(24)
    box = bytearray(secretbox.seal(b"private key", nonce, key))
    box[-1] ^= 1
    assert secretbox.open_box(bytes(box), nonce, key) is None


def test_hsalsa20_vector_from_the_nacl_paper() -> None:
    # "Cryptography in NaCl", section 8: firstkey = HSalsa20(shared, zero) for Alice/Bob
    shared = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    first = bytes.fromhex("1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389")
    assert secretbox.hsalsa20(shared, bytes(16)) == first


def test_encrypted_document_is_securesystemslibs_format() -> None:
    doc = json.loads(secretbox.encrypt(b"secret", b"pass"))
    assert doc["kdf"]["name"] == "scrypt"
    assert doc["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 32
    assert doc["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(doc["cipher"]["nonce"])) == 24
    assert secretbox.decrypt(json.dumps(doc).encode(), b"pass") == b"secret"
    with pytest.raises(secretbox.DecryptionError, match="decryption failed"):
        secretbox.decrypt(json.dumps(doc).encode(), b"wrong")


def test_tampered_kdf_parameters_are_refused_before_the_kdf_runs() -> None:
    doc = json.loads(secretbox.encrypt(b"secret", b"pass"))
    doc["kdf"]["params"]["N"] = 1 << 30  # would need 1 TiB of memory
    with pytest.raises(secretbox.DecryptionError, match="unexpected kdf parameters"):
        secretbox.decrypt(json.dumps(doc).encode(), b"pass")


def test_a_generated_key_pair_signs_and_verifies() -> None:
    pair = sigstore_keys.generate(b"some passphrase")
    assert pair.private_key.startswith(b"-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n")
    assert pair.public_key.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    private = sigstore_keys.load_private(pair.private_key, b"some passphrase")
    digest = "sha256:" + "a" * 64
    sig = sigstore.sign_image(private, "example.com/foo:notlatest", digest)
    assert sig.mime_type == sigstore.MIME_TYPE
    key = sigstore.load_public_key(pair.public_key)
    payload, signer = sigstore.verify_payload(
        [key], sig.payload, sig.annotations[sigstore.SIGNATURE_ANNOTATION]
    )
    assert (payload.docker_reference, payload.manifest_digest, signer) == (
        "example.com/foo:notlatest",
        digest,
        0,
    )
    other = sigstore.load_public_key(sigstore_keys.generate(b"x").public_key)
    with pytest.raises(sigstore.SigstoreError, match="verification failed"):
        sigstore.verify_payload(
            [other], sig.payload, sig.annotations[sigstore.SIGNATURE_ANNOTATION]
        )


def test_wrong_passphrase_and_foreign_pem_types_are_refused() -> None:
    pair = sigstore_keys.generate(b"right")
    with pytest.raises(sigstore.SigstoreError, match="decrypt"):
        sigstore_keys.load_private(pair.private_key, b"wrong")
    with pytest.raises(sigstore.SigstoreError, match="unsupported pem type: PUBLIC KEY"):
        sigstore_keys.load_private(pair.public_key, b"right")
    sigstore_type = pair.private_key.replace(b"COSIGN", b"SIGSTORE")
    assert sigstore_keys.load_private(sigstore_type, b"right") is not None


def test_the_blob_round_trips_in_containers_image_storage_form() -> None:
    sig = sigstore.Sigstore(sigstore.MIME_TYPE, b'{"x":1}', {"a": "b"})
    blob = sig.blob()
    assert blob.startswith(b"\0sigstore-json\n{")
    assert sigstore.from_blob(blob) == sig
    with pytest.raises(sigstore.SigstoreError):  # containers/image refuses the image then
        sigstore.from_blob(b"\0sigstore-json\nnot json")
    assert sigstore.from_blob(b"\x89simple signature bytes") is None
