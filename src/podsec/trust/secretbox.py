"""Passphrase encryption as cosign and containers/image store a sigstore private key.

The PEM body of an ``ENCRYPTED SIGSTORE PRIVATE KEY`` (or ``… COSIGN …``) is the JSON of
go-securesystemslib's ``encrypted`` package: an scrypt key derivation (N=32768, r=8, p=1,
32-byte salt) and a NaCl ``secretbox`` (XSalsa20-Poly1305, 24-byte nonce)::

    {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": B64},
     "cipher": {"name": "nacl/secretbox", "nonce": B64}, "ciphertext": B64}

Debian's python3-cryptography has Poly1305 and scrypt but no XSalsa20, so the stream
cipher is here (a private key is ~140 bytes: three Salsa20 blocks). The tests check it
against libsodium (PyNaCl) and the NaCl paper's vectors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import struct
from typing import Any

from podsec.errors import ValidationError
from podsec.i18n import _

KDF_NAME = "scrypt"
CIPHER_NAME = "nacl/secretbox"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 32768, 8, 1
# what go-securesystemslib accepts when decrypting (legacy, standard, OWASP): anything
# else is refused before the KDF runs, so a tampered file cannot make us spend gigabytes
ACCEPTED_PARAMS = ((32768, 8, 1), (65536, 8, 1), (131072, 8, 1))
SALT_SIZE, NONCE_SIZE, KEY_SIZE, TAG_SIZE = 32, 24, 32, 16
_MASK = 0xFFFFFFFF
_SIGMA = struct.unpack("<4I", b"expand 32-byte k")


class DecryptionError(ValidationError):
    """Wrong passphrase, or a file that is not an encrypted key."""


def _rotl(v: int, n: int) -> int:
    return ((v << n) | (v >> (32 - n))) & _MASK


def _rounds(x: list[int]) -> list[int]:
    """20 Salsa20 rounds (10 double rounds) over the 16-word state, in place."""

    def quarter(a: int, b: int, c: int, d: int) -> None:
        x[b] ^= _rotl((x[a] + x[d]) & _MASK, 7)
        x[c] ^= _rotl((x[b] + x[a]) & _MASK, 9)
        x[d] ^= _rotl((x[c] + x[b]) & _MASK, 13)
        x[a] ^= _rotl((x[d] + x[c]) & _MASK, 18)

    for _round in range(10):
        quarter(0, 4, 8, 12)  # columns
        quarter(5, 9, 13, 1)
        quarter(10, 14, 2, 6)
        quarter(15, 3, 7, 11)
        quarter(0, 1, 2, 3)  # rows
        quarter(5, 6, 7, 4)
        quarter(10, 11, 8, 9)
        quarter(15, 12, 13, 14)
    return x


def _state(key: bytes, sixteen: bytes) -> list[int]:
    k = struct.unpack("<8I", key)
    n = struct.unpack("<4I", sixteen)
    return [
        _SIGMA[0], k[0], k[1], k[2],
        k[3], _SIGMA[1], n[0], n[1],
        n[2], n[3], _SIGMA[2], k[4],
        k[5], k[6], k[7], _SIGMA[3],
    ]  # fmt: skip


def hsalsa20(key: bytes, nonce16: bytes) -> bytes:
    """The XSalsa20 subkey: the rounds' diagonal and nonce words, no final addition."""
    x = _rounds(_state(key, nonce16))
    return struct.pack("<8I", *(x[i] for i in (0, 5, 10, 15, 6, 7, 8, 9)))


def salsa20_stream(key: bytes, nonce8: bytes, length: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < length:
        start = _state(key, nonce8 + struct.pack("<Q", counter))
        x = _rounds(list(start))
        out += struct.pack("<16I", *((a + b) & _MASK for a, b in zip(x, start, strict=True)))
        counter += 1
    return bytes(out[:length])


def _xsalsa20(key: bytes, nonce: bytes, length: int) -> bytes:
    return salsa20_stream(hsalsa20(key, nonce[:16]), nonce[16:], length)


def _poly1305(key: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.poly1305 import Poly1305

    return Poly1305.generate_tag(key, data)


def seal(plaintext: bytes, nonce: bytes, key: bytes) -> bytes:
    """NaCl ``crypto_secretbox``: tag (16 bytes) followed by the ciphertext."""
    stream = _xsalsa20(key, nonce, 32 + len(plaintext))
    cipher = bytes(a ^ b for a, b in zip(plaintext, stream[32:], strict=True))
    return _poly1305(stream[:32], cipher) + cipher


def open_box(box: bytes, nonce: bytes, key: bytes) -> bytes | None:
    """The plaintext of a sealed box, or None when the tag does not verify."""
    if len(box) < TAG_SIZE:
        return None
    tag, cipher = box[:TAG_SIZE], box[TAG_SIZE:]
    stream = _xsalsa20(key, nonce, 32 + len(cipher))
    if not hmac.compare_digest(_poly1305(stream[:32], cipher), tag):
        return None
    return bytes(a ^ b for a, b in zip(cipher, stream[32:], strict=True))


def _scrypt(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        passphrase, salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + (1 << 20), dklen=KEY_SIZE
    )


def encrypt(plaintext: bytes, passphrase: bytes) -> bytes:
    """go-securesystemslib ``encrypted.Encrypt``: the JSON document (compact, Go's order)."""
    salt, nonce = os.urandom(SALT_SIZE), os.urandom(NONCE_SIZE)
    key = _scrypt(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    doc = {
        "kdf": {
            "name": KDF_NAME,
            "params": {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
            "salt": base64.b64encode(salt).decode(),
        },
        "cipher": {"name": CIPHER_NAME, "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(seal(plaintext, nonce, key)).decode(),
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _field(doc: Any, *path: str) -> Any:
    value = doc
    for name in path:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value


def _bytes(doc: Any, *path: str) -> bytes:
    value = _field(doc, *path)
    if not isinstance(value, str):
        raise DecryptionError(_("encrypted key: {field} missing").format(field=".".join(path)))
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise DecryptionError(
            _("encrypted key: {field} is not base64").format(field=".".join(path))
        ) from exc


def decrypt(document: bytes, passphrase: bytes) -> bytes:
    """go-securesystemslib ``encrypted.Decrypt``."""
    try:
        doc = json.loads(document)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecryptionError(_("encrypted key: not JSON: {err}").format(err=exc)) from exc
    kdf_name, cipher_name = _field(doc, "kdf", "name"), _field(doc, "cipher", "name")
    if kdf_name != KDF_NAME:
        raise DecryptionError(_("encrypted: unknown kdf name {name!r}").format(name=kdf_name))
    if cipher_name != CIPHER_NAME:
        raise DecryptionError(_("encrypted: unknown cipher name {name!r}").format(name=cipher_name))
    params = _field(doc, "kdf", "params")
    triple = tuple(_field(params, k) for k in ("N", "r", "p")) if isinstance(params, dict) else ()
    if triple not in ACCEPTED_PARAMS:
        raise DecryptionError(_("encrypted: unexpected kdf parameters"))
    salt, nonce = _bytes(doc, "kdf", "salt"), _bytes(doc, "cipher", "nonce")
    box = _bytes(doc, "ciphertext")
    if len(nonce) != NONCE_SIZE:
        raise DecryptionError(_("encrypted: incorrect nonce size"))
    n, r, p = (int(v) for v in triple)
    plain = open_box(box, nonce, _scrypt(passphrase, salt, n, r, p))
    if plain is None:
        raise DecryptionError(_("encrypted: decryption failed"), hint=_("is the passphrase right?"))
    return plain
