"""What a signer key file is: kind, algorithm and size, expiry, revocation, self-signature
hashes — for ``check-keys`` (keys that age) and the key reports.

GPG key files are read with ``gpg --show-keys --with-colons`` (validity, algorithm, size,
expiry) and ``gpg --list-packets`` (the digest algorithm of each self-signature: SHA-1 ones
are weak), in a throw-away home; nothing is imported anywhere. Sigstore public keys (PEM)
never expire; their algorithm and size come from the key itself.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from podsec.host.run import run
from podsec.i18n import _

# RFC 4880 public-key algorithm ids
_GPG_ALGOS = {
    1: "RSA",
    2: "RSA",
    3: "RSA",
    16: "ELG",
    17: "DSA",
    18: "ECDH",
    19: "ECDSA",
    22: "EdDSA",
}
SHA1 = 2  # RFC 4880 hash algorithm id
_SELF_SIG_CLASSES = {0x10, 0x11, 0x12, 0x13, 0x18, 0x1F}


@dataclass(frozen=True)
class KeyFacts:
    kind: str  # "gpg" | "sigstore"
    fingerprint: str
    algorithm: str  # RSA, DSA, ECDSA, EdDSA, …
    bits: int  # key size (RSA/DSA) or curve size (EC); 0 unknown
    expires: int | None = None  # epoch seconds; None: never
    revoked: bool = False
    sha1_self_signatures: bool = False
    problem: str | None = None  # the file could not be read as a key


def _gpg(args: list[str], data: bytes) -> str:
    with tempfile.TemporaryDirectory(prefix="podsec-keys.") as tmp:
        home = Path(tmp) / "gnupg"
        home.mkdir(mode=0o700)
        f = Path(tmp) / "key"
        f.write_bytes(data)
        result = run(
            ["gpg", "--batch", "--no-tty", "--no-autostart", *args, str(f)],
            extra_env={"GNUPGHOME": str(home)},
            timeout=30,
            check=False,
        )
    return result.stdout


def _sha1_primaries(packets: str) -> set[str]:
    """Key ids (16 hex) of primary keys with a SHA-1 self-signature."""
    out: set[str] = set()
    primary = None
    in_primary = False
    sig_keyid = sig_class = None
    for line in packets.splitlines():
        text = line.strip()
        if text.startswith(":public key packet:"):
            in_primary, primary = True, None
        elif text.startswith(":"):
            in_primary = False
        if in_primary and text.startswith("keyid:"):
            primary = text.split(":", 1)[1].strip().upper()
        m = re.match(r":signature packet: algo \d+, keyid ([0-9A-Fa-f]+)", text)
        if m:
            sig_keyid, sig_class = m.group(1).upper(), None
        m = re.search(r"sigclass 0x([0-9a-f]+)", text)
        if m:
            sig_class = int(m.group(1), 16)
        m = re.match(r"digest algo (\d+)", text)
        if m and sig_keyid is not None and primary is not None:
            if sig_keyid == primary and sig_class in _SELF_SIG_CLASSES and int(m.group(1)) == SHA1:
                out.add(primary)
            sig_keyid = None
    return out


def gpg_facts(data: bytes) -> list[KeyFacts]:
    """One entry per primary key of a GPG key file ([] when gpg finds none)."""
    colons = _gpg(["--with-colons", "--import-options", "show-only", "--import"], data)
    weak = _sha1_primaries(_gpg(["--list-packets"], data))
    out: list[KeyFacts] = []
    pub: list[str] | None = None
    for line in colons.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            pub = fields
        elif fields[0] == "fpr" and pub is not None:
            algo_id = int(pub[3]) if pub[3].isdigit() else 0
            algorithm = _GPG_ALGOS.get(algo_id, str(algo_id))
            bits = int(pub[2]) if pub[2].isdigit() else 0
            expires = int(pub[6]) if pub[6].isdigit() else None
            fpr = fields[9]
            out.append(
                KeyFacts(
                    "gpg",
                    fpr,
                    algorithm,
                    bits,
                    expires,
                    revoked=pub[1] == "r",
                    sha1_self_signatures=fpr[-16:].upper() in weak,
                )
            )
            pub = None
    return out


def sigstore_facts(data: bytes) -> KeyFacts:
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

    from podsec.trust import sigstore, sigstore_keys

    try:
        key = sigstore.load_public_key(data)
        fpr = sigstore_keys.fingerprint(data)
    except sigstore.SigstoreError as exc:
        return KeyFacts("sigstore", "", "", 0, problem=exc.message)
    if isinstance(key, rsa.RSAPublicKey):
        return KeyFacts("sigstore", fpr, "RSA", key.key_size)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return KeyFacts("sigstore", fpr, "ECDSA", key.curve.key_size)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return KeyFacts("sigstore", fpr, "EdDSA", 256)
    if isinstance(key, dsa.DSAPublicKey):
        return KeyFacts("sigstore", fpr, "DSA", key.key_size)
    return KeyFacts("sigstore", fpr, type(key).__name__, 0)


def facts(data: bytes) -> list[KeyFacts]:
    """The keys of a key file: a PEM public key (sigstore) or an OpenPGP key file."""
    if b"-----BEGIN PUBLIC KEY-----" in data or b"-----BEGIN RSA PUBLIC KEY-----" in data:
        return [sigstore_facts(data)]
    found = gpg_facts(data)
    if not found:
        return [KeyFacts("gpg", "", "", 0, problem=_("not an OpenPGP public key"))]
    return found


def weakness(key: KeyFacts, *, min_rsa: int = 3072, min_ec: int = 256) -> str | None:
    """Why ``key`` is weaker than the site's minimum (None: it is not)."""
    if key.algorithm == "DSA":
        return _("DSA key")
    if key.algorithm == "RSA" and key.bits < min_rsa:
        return _("RSA {bits} < {min}").format(bits=key.bits, min=min_rsa)
    if key.algorithm in ("ECDSA", "ECDH") and 0 < key.bits < min_ec:
        return _("EC {bits} < {min}").format(bits=key.bits, min=min_ec)
    if key.sha1_self_signatures:
        return _("SHA-1 self-signature")
    return None
