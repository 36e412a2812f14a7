"""Sigstore key pairs in the files cosign and containers/image read.

:func:`generate` is containers/image's ``sigstore.GenerateKeyPair``: an ECDSA P-256 key, the
private half as PKCS#8 encrypted with the passphrase (:mod:`podsec.trust.secretbox`) in a PEM
block ``ENCRYPTED COSIGN PRIVATE KEY`` — the type containers/image writes so that every
cosign release reads it — and the public half as a ``PUBLIC KEY`` PEM (PKIX), the file a
``sigstoreSigned`` requirement's ``keyPath`` names. :func:`load_private` reads both PEM types
(``ENCRYPTED SIGSTORE PRIVATE KEY`` is what newer cosign writes), as ``loadPrivateKey`` does.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from podsec.i18n import _
from podsec.trust import secretbox
from podsec.trust.sigstore import SigstoreError, load_public_key, pem_block, public_key_pem

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

USER_PRIVATE_KEY = ".config/podsec/sigstore.key"  # an image maker's key, under their home
COSIGN_PEM_TYPE = "ENCRYPTED COSIGN PRIVATE KEY"
SIGSTORE_PEM_TYPE = "ENCRYPTED SIGSTORE PRIVATE KEY"


@dataclass(frozen=True)
class KeyPair:
    public_key: bytes  # PEM
    private_key: bytes  # PEM, encrypted


def _pem(kind: str, der: bytes) -> bytes:
    text = base64.b64encode(der).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return (
        "-----BEGIN {k}-----\n{body}\n-----END {k}-----\n".format(k=kind, body="\n".join(lines))
    ).encode()


def generate(passphrase: bytes) -> KeyPair:
    """A new P-256 key pair; the private key encrypted with ``passphrase`` (may be empty,
    as cosign allows; it is still encrypted)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private = _pem(COSIGN_PEM_TYPE, secretbox.encrypt(pkcs8, passphrase))
    return KeyPair(public_key_pem(key.public_key()), private)


def load_private(pem: bytes, passphrase: bytes) -> PrivateKeyTypes:
    """containers/image's ``loadPrivateKey``: decrypt, then PKCS#8 (ECDSA, RSA, Ed25519)."""
    from cryptography.hazmat.primitives import serialization

    block = pem_block(pem)
    if block is None:
        raise SigstoreError(_("invalid pem block"))
    kind, body = block
    if kind not in (SIGSTORE_PEM_TYPE, COSIGN_PEM_TYPE):
        raise SigstoreError(_("unsupported pem type: {kind}").format(kind=kind))
    try:
        der = secretbox.decrypt(body, passphrase)
    except secretbox.DecryptionError as exc:
        raise SigstoreError(_("decrypt: {err}").format(err=exc.message), hint=exc.hint) from exc
    try:
        return serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError) as exc:
        raise SigstoreError(_("parsing private key: {err}").format(err=exc)) from exc


def fingerprint(public_pem: bytes) -> str:
    """``SHA256:<hex>`` of the key's DER SubjectPublicKeyInfo: how podsec names a
    sigstore key in reports (cosign has no fingerprint of its own)."""
    from cryptography.hazmat.primitives import serialization

    key: PublicKeyTypes = load_public_key(public_pem)
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + hashlib.sha256(der).hexdigest()
