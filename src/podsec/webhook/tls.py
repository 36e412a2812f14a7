"""Serving certificates for a webhook: a private CA and one server certificate signed by it.

The CA's certificate is what the API server pins (an admission registration's caBundle, an
authorization webhook kubeconfig's certificate-authority-data): nothing else trusts it, and
its key signs only this one server certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from pathlib import Path

from podsec.host import files

CA_FILE, CERT_FILE, KEY_FILE = "ca.crt", "tls.crt", "tls.key"


def serving_certificates(
    directory: Path,
    *,
    ca_name: str,
    name: str,
    addresses: Sequence[str],
    uid: int,
    gid: int,
    dns: Sequence[str] = ("localhost",),
) -> bytes:
    """A CA and a server certificate (SANs: ``dns`` and ``addresses``) in ``directory``
    (``ca.crt``, ``tls.crt``, ``tls.key`` 0600, owned by ``uid``/``gid``), re-used when
    present; returns the CA certificate (PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_file, crt_file, key_file = (directory / n for n in (CA_FILE, CERT_FILE, KEY_FILE))
    if ca_file.exists() and crt_file.exists() and key_file.exists():
        return ca_file.read_bytes()
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    files.atomic_write(key_file, key_pem, mode=0o600, owner=uid, group=gid)
    files.atomic_write(crt_file, cert.public_bytes(pem), mode=0o644, owner=uid, group=gid)
    files.atomic_write(ca_file, ca.public_bytes(pem), mode=0o644, owner=uid, group=gid)
    return ca.public_bytes(pem)
