"""``certs``: every client certificate podsec issued, with its state.

Two sources, merged by serial: podsec's own record (``issued.json``, :mod:`podsec.issued`,
written by ``create-kubeconfig`` and ``renew``) and the cluster's CertificateSigningRequest
objects that carry a signed client certificate (``kubernetes.io/kube-apiserver-client``;
podsec deletes its own CSRs once the certificate is written, the controller-manager removes
signed ones after an hour — what remains was issued elsewhere or by a run that was cut short).
Each certificate gets: revoked or not (``revoked.json``), expired or not, and **last seen**: the
latest event of its user in the API server's audit log (:mod:`podsec.kube.audit_users`) that
falls within the certificate's validity. The audit log names users, not certificates: two valid
certificates of one user share what was seen.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podsec import issued, revocations
from podsec.errors import PodsecError
from podsec.host.paths import Host
from podsec.kube import audit_users
from podsec.kube.client import CERTS, Client, path
from podsec.kube.kubeconfig import admin_connection
from podsec.names import AUDIT_LOG, ISSUED_FILE, REVOKED_FILE
from podsec.rbac import certs

CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"


@dataclass(frozen=True)
class Cert:
    user: str
    groups: tuple[str, ...]
    serial: str
    not_before: str
    not_after: str
    sources: tuple[str, ...]  # "record", "csr"
    kubeconfig: str = ""
    revoked_at: str = ""  # "" when not revoked
    last_seen: str = ""  # "" when the audit log never saw it
    expired: bool = False

    @property
    def revoked(self) -> bool:
        return bool(self.revoked_at)

    def as_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "groups": list(self.groups),
            "serial": self.serial,
            "notBefore": self.not_before,
            "notAfter": self.not_after,
            "sources": list(self.sources),
            "kubeconfig": self.kubeconfig,
            "revoked": self.revoked,
            "revokedAt": self.revoked_at,
            "expired": self.expired,
            "lastSeen": self.last_seen,
        }


def from_csrs(api: Client) -> list[issued.Issued]:
    """The signed client certificates the cluster's CSR objects still hold."""
    out = []
    for obj in api.get(path(CERTS, "certificatesigningrequests")).get("items", []):
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if spec.get("signerName") != CLIENT_SIGNER or not status.get("certificate"):
            continue
        try:
            info = certs.info(base64.b64decode(status["certificate"]))
        except (PodsecError, ValueError):
            continue
        out.append(
            issued.Issued(
                cn=info.cn,
                serial=str(info.serial),
                groups=info.groups,
                fingerprint_sha256=info.fingerprint,
                not_before=info.not_before.isoformat(),
                not_after=info.not_after.isoformat(),
            )
        )
    return out


def _moment(text: str) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def inventory(
    host: Host,
    cluster: Iterable[issued.Issued],
    *,
    audit_log: Path | None,
    users: Sequence[str] = (),
    now: dt.datetime | None = None,
) -> list[Cert]:
    """Every known certificate (of ``users``, when named), oldest expiry first."""
    moment = now or dt.datetime.now(dt.UTC)
    merged: dict[str, tuple[issued.Issued, list[str]]] = {}
    for source, records in (
        ("record", issued.read(host.path(ISSUED_FILE), ISSUED_FILE)),
        ("csr", tuple(cluster)),
    ):
        for rec in records:
            if users and rec.cn not in users:
                continue
            if rec.serial in merged:
                merged[rec.serial][1].append(source)
            else:
                merged[rec.serial] = (rec, [source])
    revoked = {r.serial: r for r in revocations.read(host.path(REVOKED_FILE), REVOKED_FILE)}
    seen = (
        audit_users.last_seen(audit_log, {rec.cn for rec, _ in merged.values()})
        if audit_log
        else {}
    )
    out = []
    for rec, sources in merged.values():
        start, end = _moment(rec.not_before), _moment(rec.not_after)
        last = seen.get(rec.cn)
        if last is not None and ((start and last < start) or (end and last > end)):
            last = None  # the user's, but not this certificate's time
        out.append(
            Cert(
                user=rec.cn,
                groups=rec.groups,
                serial=rec.serial,
                not_before=rec.not_before,
                not_after=rec.not_after,
                sources=tuple(sources),
                kubeconfig=rec.kubeconfig,
                revoked_at=(revoked[rec.serial].revoked_at or "?") if rec.serial in revoked else "",
                last_seen=last.isoformat(timespec="seconds") if last else "",
                expired=end is not None and end <= moment,
            )
        )
    return sorted(out, key=lambda c: (c.not_after, c.user))


def list_certs(
    host: Host,
    users: Sequence[str] = (),
    *,
    cluster: bool = True,
    audit_log: str | None = AUDIT_LOG,
    kubeconfig: str | None = None,
    context: str | None = None,
    api_timeout: float = 15.0,
) -> list[Cert]:
    """``podsec rbac certs``: the record, the cluster's CSRs (unless ``cluster`` is False) and
    the audit log (``audit_log`` as the configured system sees it; None: not read)."""
    found: list[issued.Issued] = []
    if cluster:
        with Client(admin_connection(kubeconfig, host, context), timeout=api_timeout) as api:
            found = from_csrs(api)
    log = host.path(audit_log) if audit_log else None
    return inventory(host, found, audit_log=log, users=users)
