"""Sigstore (cosign) key signatures, offline: the format, signing and verification.

A sigstore signature is a *payload* (JSON much like a simple signature's, of type ``cosign
container image signature``) plus annotations; ``dev.cosignproject.cosign/signature`` holds
the base64 of an ASN.1 ECDSA (P-256, SHA-256) signature of the payload bytes. In a registry
it is one layer of an OCI manifest tagged ``sha256-<hex>.sig`` next to the image (see
:mod:`podsec.trust.attachments`); on disk and in lookaside directories containers/image
stores it as ``\\0sigstore-json\\n{"mimeType":…,"payload":B64,"annotations":{…}}``.

:func:`verify_payload` is containers/image's ``VerifySigstorePayload``: every configured key
must load (a broken fallback key refuses, so it is fixed before it is needed), one of them
must verify the signature, then the payload is parsed strictly. The policy rules (digest,
identity) are applied by the verifier in :mod:`podsec.trust.verify_sigstore`. Only key
signatures are verified here: Fulcio certificates, Rekor SETs and PKI chains are refused
with that reason (they are about public transparency logs; podsec runs air-gapped).

cryptography is imported where it is used: the monitoring plugins import this module's
callers without paying for it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from podsec import __version__
from podsec.errors import ValidationError
from podsec.i18n import _
from podsec.trust import signature

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

MIME_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SET_ANNOTATION = "dev.sigstore.cosign/bundle"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
PAYLOAD_TYPE = "cosign container image signature"
BLOB_FORMAT = b"sigstore-json"


class SigstoreError(signature.SignatureError):
    """A sigstore signature that does not verify, or a key that cannot be used."""


@dataclass(frozen=True)
class Sigstore:
    """One sigstore signature as containers/image keeps it (``signature.Sigstore``)."""

    mime_type: str
    payload: bytes
    annotations: Mapping[str, str] = field(default_factory=dict)

    def blob(self) -> bytes:
        """The storage form (``signature.Blob``): ``\\0sigstore-json\\n`` + JSON, byte for
        byte as containers/image writes it (a ``dir:`` copy's ``signature-N``)."""
        chunk = go_json(
            {
                "mimeType": self.mime_type,
                "payload": base64.b64encode(self.payload).decode(),
                "annotations": dict(self.annotations),
            }
        )
        return b"\0" + BLOB_FORMAT + b"\n" + chunk


# ------------------------------------------------------------------------------ the blob
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
               "\u2029": "\\u2029"}  # fmt: skip


def go_json(value: dict[str, Any]) -> bytes:
    """encoding/json's ``Marshal`` of a struct of strings and a map of strings: compact, map
    keys sorted, UTF-8 kept, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped (the struct's
    own field order is the dict's)."""
    sorted_maps = {k: dict(sorted(v.items())) if isinstance(v, dict) else v
                   for k, v in value.items()}  # fmt: skip
    text = json.dumps(sorted_maps, separators=(",", ":"), ensure_ascii=False)
    return re.sub("[<>&\u2028\u2029]", lambda m: _GO_ESCAPES[m.group(0)], text).encode()


_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def go_b64decode(text: str) -> bytes:
    """Go's ``base64.StdEncoding.DecodeString``: padded, nothing after the padding (Python's
    decoder accepts ``…==`` + more), line breaks ignored."""
    clean = text.replace("\r", "").replace("\n", "")
    if len(clean) % 4 or not _B64.fullmatch(clean):
        raise ValueError(_("illegal base64 data"))
    return base64.b64decode(clean, validate=True)


is_sigstore_blob = signature.is_sigstore


def _go_field(doc: dict[str, Any], name: str) -> Any:
    """encoding/json's field match: the exact key, else a case-insensitive one (the last
    such key wins, as Go decodes them in order)."""
    found: Any = None
    for key, value in doc.items():
        if key.lower() == name.lower():
            found = value
    return doc.get(name, found)


def parse_chunk(chunk: bytes) -> Sigstore:
    """``sigstoreFromBlobChunk``: Go's json.Unmarshal into {mimeType, payload, annotations}
    (unknown keys ignored, null is empty, payload is standard base64)."""
    try:
        doc = json.loads(chunk)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SigstoreError(str(exc)) from exc
    if doc is None:
        return Sigstore("", b"", {})
    if not isinstance(doc, dict):
        raise SigstoreError(_("json: cannot unmarshal a non-object into a sigstore signature"))
    mime = _go_field(doc, "mimeType")
    payload = _go_field(doc, "payload")
    annotations = _go_field(doc, "annotations")
    if mime is not None and not isinstance(mime, str):
        raise SigstoreError(_("json: mimeType is not a string"))
    if payload is not None and not isinstance(payload, str):
        raise SigstoreError(_("json: payload is not a base64 string"))
    if annotations is not None and not (
        isinstance(annotations, dict) and all(isinstance(v, str) for v in annotations.values())
    ):
        raise SigstoreError(_("json: annotations is not a map of strings"))
    try:
        data = go_b64decode(payload or "")
    except (ValueError, binascii.Error) as exc:
        raise SigstoreError(_("json: payload: illegal base64 data")) from exc
    return Sigstore(mime or "", data, dict(annotations or {}))


def from_blob(blob: bytes) -> Sigstore | None:
    """The sigstore signature in a storage blob; None for a simple signature. An invalid
    blob raises (containers/image then refuses the image)."""
    problem = signature.blob_problem(blob)
    if problem is not None:
        raise SigstoreError(problem)
    if not is_sigstore_blob(blob):
        return None
    return parse_chunk(blob[1:].partition(b"\n")[2])


def chunk_problem(blob: bytes) -> str | None:
    """Why a ``sigstore-json`` blob cannot be read (None if it can, or is another format)."""
    if not is_sigstore_blob(blob):
        return None
    try:
        parse_chunk(blob[1:].partition(b"\n")[2])
    except SigstoreError as exc:
        return exc.message
    return None


# ------------------------------------------------------------------------------ payloads
def make_payload(
    docker_reference: str, manifest_digest: str, *, timestamp: int | None = None
) -> bytes:
    """``NewUntrustedSigstorePayload`` + MarshalJSON: compact JSON, keys sorted as Go's
    maps are."""
    if not docker_reference or not manifest_digest:
        raise ValidationError(_("Unexpected empty signature content"))
    doc = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": {
            "creator": f"podsec {__version__}",
            "timestamp": int(time.time()) if timestamp is None else timestamp,
        },
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def parse_payload(data: bytes) -> signature.Payload:
    """``UntrustedSigstorePayload.UnmarshalJSON`` (``optional`` may be null, as cosign
    writes it)."""
    return signature.parse_payload(data, kind=PAYLOAD_TYPE, optional_may_be_null=True)


# ------------------------------------------------------------------------------ keys
_PEM = re.compile(rb"-----BEGIN ([^\r\n-]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


def pem_block(data: bytes) -> tuple[str, bytes] | None:
    """Go's ``pem.Decode``: the first PEM block (type, DER) found in ``data``; headers
    (``Key: value`` lines before a blank line) are skipped."""
    for match in _PEM.finditer(data):
        body = match.group(2)
        if b":" in body.split(b"\n", 1)[0]:
            body = body.partition(b"\n\n")[2] or body.partition(b"\r\n\r\n")[2]
        text = b"".join(body.split())
        try:
            return match.group(1).decode(), base64.b64decode(text, validate=True)
        except (ValueError, binascii.Error):
            continue
    return None


def load_public_key(pem: bytes) -> PublicKeyTypes:
    """sigstore's ``cryptoutils.UnmarshalPEMToPublicKey``."""
    from cryptography.hazmat.primitives import serialization

    block = pem_block(pem)
    if block is None:
        raise SigstoreError(_("PEM decoding failed"))
    kind, der = block
    try:
        if kind == "PUBLIC KEY":
            return serialization.load_der_public_key(der)
        if kind == "RSA PUBLIC KEY":
            from cryptography.hazmat.primitives.asymmetric import rsa

            key = serialization.load_der_public_key(_pkcs1_to_spki(der))
            assert isinstance(key, rsa.RSAPublicKey)
            return key
    except (ValueError, TypeError, AssertionError) as exc:
        raise SigstoreError(_("parsing public key: {err}").format(err=exc)) from exc
    raise SigstoreError(
        _(
            "unknown Public key PEM file type: {kind}. Are you passing the correct public key?"
        ).format(kind=kind)
    )


def _pkcs1_to_spki(der: bytes) -> bytes:
    """Wrap a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo (cryptography reads only that)."""

    def length(n: int) -> bytes:
        if n < 0x80:
            return bytes([n])
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return bytes([0x80 | len(raw)]) + raw

    algo = bytes.fromhex("300d06092a864886f70d0101010500")
    bitstring = b"\x03" + length(len(der) + 1) + b"\x00" + der
    inner = algo + bitstring
    return b"\x30" + length(len(inner)) + inner


def public_key_pem(key: PublicKeyTypes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _verify_one(key: PublicKeyTypes, sig: bytes, payload: bytes) -> str | None:
    """None when ``key`` verifies ``sig`` over ``payload`` (sigstore's LoadVerifier with
    SHA-256: ECDSA ASN.1, RSA PKCS#1 v1.5, Ed25519), else the failure."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, payload, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, payload)
        else:
            return _("unsupported public key type")
    except InvalidSignature:
        if isinstance(key, ec.EllipticCurvePublicKey):
            return _("invalid signature when validating ASN.1 encoded signature")
        return _("crypto/rsa: verification error")
    except ValueError as exc:  # e.g. a malformed DER signature
        return _("invalid signature when validating ASN.1 encoded signature: {err}").format(err=exc)
    return None


def _usable(key: PublicKeyTypes) -> str | None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        return None
    return _("unsupported public key type")


def verify_payload(
    public_keys: Sequence[PublicKeyTypes], payload: bytes, base64_signature: str
) -> tuple[signature.Payload, int]:
    """``VerifySigstorePayload`` without the policy rules: the payload, parsed, and the
    index of the key that signed it, if one of ``public_keys`` did; :class:`SigstoreError`
    with containers/image's reason else."""
    try:
        sig = go_b64decode(base64_signature)
    except (ValueError, binascii.Error) as exc:
        raise SigstoreError(_("base64 decoding: {err}").format(err=exc)) from exc
    if not public_keys:
        raise SigstoreError(
            _("Need at least one public key to verify the sigstore payload, but got 0")
        )
    for key in public_keys:  # every key must be usable before any is tried
        problem = _usable(key)
        if problem is not None:
            raise SigstoreError(problem)
    failures = []
    signer = -1
    for index, key in enumerate(public_keys):
        failure = _verify_one(key, sig, payload)
        if failure is None:
            signer = index
            break
        failures.append(failure)
    if signer < 0:
        raise SigstoreError(
            _("cryptographic signature verification failed: {errs}").format(
                errs=", ".join(failures)
            )
        )
    try:
        return parse_payload(payload), signer
    except signature.PayloadError as exc:
        raise SigstoreError(exc.message) from exc


# ------------------------------------------------------------------------------ signing
def sign_payload(private_key: PrivateKeyTypes, payload: bytes) -> str:
    """The base64 signature annotation of ``payload`` (ECDSA/SHA-256 as cosign signs)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        raw = private_key.sign(payload, ec.ECDSA(hashes.SHA256()))
    elif isinstance(private_key, rsa.RSAPrivateKey):
        raw = private_key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(private_key, ed25519.Ed25519PrivateKey):
        raw = private_key.sign(payload)
    else:
        raise SigstoreError(_("unsupported key type"))
    return base64.b64encode(raw).decode()


def sign_image(
    private_key: PrivateKeyTypes, docker_reference: str, manifest_digest: str
) -> Sigstore:
    """A sigstore signature claiming ``docker_reference`` for ``manifest_digest``."""
    payload = make_payload(docker_reference, manifest_digest)
    return Sigstore(MIME_TYPE, payload, {SIGNATURE_ANNOTATION: sign_payload(private_key, payload)})


# ------------------------------------------------------------------------------ claims
def read_claims(sig: Sigstore) -> signature.Claims:
    """What a sigstore signature says about itself, not verified (for explaining)."""
    try:
        p = parse_payload(sig.payload)
    except signature.PayloadError as exc:
        return signature.Claims(problem=exc.message)
    return signature.Claims(
        _("sigstore key"), p.docker_reference, p.manifest_digest, p.creator, p.timestamp
    )
