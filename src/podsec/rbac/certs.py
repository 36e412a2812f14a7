"""Keys, certificate signing requests and checks of issued certificates (``cryptography``)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from podsec.errors import UsageError, ValidationError
from podsec.i18n import _

KEY_TYPES = ("rsa", "ecdsa")
MIN_EXPIRATION = 600  # the API server's lower bound for expirationSeconds
MAX_EXPIRATION = 2**31 - 1  # expirationSeconds is an int32
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DURATION_RE = re.compile(r"(\d+)([smhdwy])")


def parse_duration(text: str) -> int:
    """``90d``, ``12h``, ``1y``, ``1d12h`` or plain seconds → seconds (≥ 600)."""
    value = text.strip().lower()
    if value.isdigit():
        seconds = int(value)
    else:
        parts = _DURATION_RE.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise UsageError(
                _("invalid duration {value!r}").format(value=text),
                hint=_("use a number with a unit: 600s, 30m, 12h, 90d, 1y"),
            )
        seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds > MAX_EXPIRATION:
        raise UsageError(
            _("{value}: a certificate lifetime is at most {n} seconds (about 68 years)").format(
                value=text, n=MAX_EXPIRATION
            )
        )
    if seconds < MIN_EXPIRATION:
        raise UsageError(
            _("a certificate must be valid for at least {n} seconds").format(n=MIN_EXPIRATION)
        )
    return seconds


def human_duration(seconds: int) -> str:
    """Seconds → the largest unit that states them exactly or counts at least ten of them
    (rounded): ``90d``, ``12h``, ``24h`` for a day and a second — for messages, the
    reverse of :func:`parse_duration`."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if (seconds >= size and seconds % size == 0) or seconds >= 10 * size:
            return f"{round(seconds / size)}{unit}"
    return f"{seconds}s"


def new_key(kind: str = "rsa") -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    raise UsageError(_("unknown key type {kind!r} (rsa or ecdsa)").format(kind=kind))


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def subject(user: str, groups: Sequence[str]) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, user))
    return x509.Name(attrs)


def csr_pem(key: PrivateKey, user: str, groups: Sequence[str]) -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject(user, groups))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class CertInfo:
    cn: str
    groups: tuple[str, ...]
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint: str
    key_type: str

    @property
    def lifetime(self) -> int:
        return int((self.not_after - self.not_before).total_seconds())


def load_cert(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise ValidationError(_("not a PEM certificate: {err}").format(err=exc)) from exc


def load_certs(pem: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle (``load_pem_x509_certificates`` where cryptography
    has it, >= 39; Debian 12 ships 38)."""
    loader = getattr(x509, "load_pem_x509_certificates", None)
    if loader is not None:
        return list(loader(pem))
    marker = b"-----BEGIN CERTIFICATE-----"
    blocks = [marker + part for part in pem.split(marker)[1:]]
    if not blocks:
        raise ValueError("no certificate in the PEM data")
    return [x509.load_pem_x509_certificate(block) for block in blocks]


def verify_issued_by(cert: x509.Certificate, ca: x509.Certificate) -> None:
    """``cert.verify_directly_issued_by(ca)`` (cryptography >= 40), else the same check by
    hand: issuer name, then the CA key's signature over the TBS bytes (RSA PKCS#1 v1.5 or
    ECDSA, what the Kubernetes CA signs with). Raises InvalidSignature/ValueError/TypeError."""
    native = getattr(cert, "verify_directly_issued_by", None)
    if native is not None:
        native(ca)
        return
    verify_issued_by_manually(cert, ca)


def verify_issued_by_manually(cert: x509.Certificate, ca: x509.Certificate) -> None:
    from cryptography.hazmat.primitives.asymmetric import padding

    if cert.issuer != ca.subject:
        raise ValueError("the issuer is not the CA's subject")
    algorithm = cert.signature_hash_algorithm
    if algorithm is None:
        raise TypeError("unsupported signature algorithm")
    pub = ca.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        pub.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        pub.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
    else:
        raise TypeError("unsupported CA key type")


def _utc(cert: x509.Certificate, name: str) -> dt.datetime:
    """``not_valid_*_utc`` (cryptography >= 42), else the naive UTC value of older releases
    (Debian 12 ships 38)."""
    aware = getattr(cert, f"{name}_utc", None)
    if isinstance(aware, dt.datetime):
        return aware
    naive: dt.datetime = getattr(cert, name)
    return naive.replace(tzinfo=dt.UTC)


def info(pem: bytes) -> CertInfo:
    cert = load_cert(pem)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    pub = cert.public_key()
    return CertInfo(
        cn=str(cns[0].value) if cns else "",
        groups=tuple(str(o.value) for o in orgs),
        serial=cert.serial_number,
        not_before=_utc(cert, "not_valid_before"),
        not_after=_utc(cert, "not_valid_after"),
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
        key_type="ecdsa" if isinstance(pub, ec.EllipticCurvePublicKey) else "rsa",
    )


def _public_der(key: object) -> bytes:
    public = key.public_key() if hasattr(key, "public_key") else key
    assert hasattr(public, "public_bytes")
    der: bytes = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def check_issued(
    cert_pem: bytes,
    ca_pem: bytes,
    key: PrivateKey,
    user: str,
    groups: Sequence[str],
) -> CertInfo:
    """The certificate the cluster returned must chain to its CA, name exactly ``user`` and
    ``groups``, hold our public key and allow client authentication."""
    cert = load_cert(cert_pem)
    cas = load_certs(ca_pem)
    bad = _("the issued certificate {problem}")
    for ca in cas:
        try:
            verify_issued_by(cert, ca)
            break
        except (InvalidSignature, ValueError, TypeError):  # not this CA: try the next one
            continue
    else:
        raise ValidationError(bad.format(problem=_("does not chain to the cluster CA")))
    got = info(cert_pem)
    if got.cn != user or sorted(got.groups) != sorted(groups):
        raise ValidationError(
            bad.format(
                problem=_("names CN={cn} O={groups}, expected CN={user} O={want}").format(
                    cn=got.cn, groups=",".join(got.groups), user=user, want=",".join(groups)
                )
            )
        )
    if _public_der(cert) != _public_der(key):
        raise ValidationError(bad.format(problem=_("does not match the private key")))
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in list(usages):
        raise ValidationError(bad.format(problem=_("does not allow client authentication")))
    return got
