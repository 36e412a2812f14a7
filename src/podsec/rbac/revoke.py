"""``revoke USER``: take away everything a user's certificate can do, and record it.

Kubernetes cannot revoke a client certificate (no CRL/OCSP for client certs), and the
certificate keeps authenticating until it expires. What gives it power are the bindings of
its CN (the user) and its O entries (groups), so revoke removes the user *and its
certificate's groups* from every binding — can-i says no at once — and records the
certificate (CN, serial as a decimal string, groups, fingerprint, expiry, time) in
``/var/lib/podsec/rbac/revoked.json`` (a JSON list), which the audit watcher (podsec monitor)
reads to report any later use of that certificate.

Limits, reported to the caller: groups the API server grants on its own (``system:masters``
bypasses RBAC entirely, ``system:authenticated``) cannot be taken away by removing bindings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from podsec import revocations
from podsec.errors import ValidationError
from podsec.host import files
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.kube.client import Client
from podsec.names import REVOKED_FILE
from podsec.rbac import bindings, certs
from podsec.rbac.bindings import Subject

UNREVOKABLE_GROUPS = ("system:masters",)
IMPLICIT_GROUPS = ("system:authenticated", "system:unauthenticated")


@dataclass(frozen=True)
class Revocation:
    cn: str
    serial: str
    groups: tuple[str, ...]
    changes: tuple[bindings.Change, ...]
    record_file: str
    kept_groups: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)


def load_records(host: Host) -> tuple[revocations.Revoked, ...]:
    return revocations.read(host.path(REVOKED_FILE), REVOKED_FILE)


def still_valid(
    host: Host, kind: str, name: str, now: dt.datetime | None = None
) -> list[revocations.Revoked]:
    """Revoked certificates, not yet expired, that a binding of ``kind`` ``name`` would
    empower again (bindings name CNs and groups, not certificates)."""
    moment = now or dt.datetime.now(dt.UTC)
    hits = []
    for rec in load_records(host):
        expires = rec.expires() or moment + dt.timedelta(days=1)  # unknown: still valid
        if expires <= moment:
            continue
        if (kind == "User" and rec.cn == name) or (kind == "Group" and name in rec.groups):
            hits.append(rec)
    return hits


def refuse_rebinding(host: Host, kind: str, name: str, now: dt.datetime | None = None) -> None:
    """Refuse to bind a user or group that a revoked, still valid certificate carries."""
    hits = still_valid(host, kind, name, now)
    if hits:
        last = max(h.not_after for h in hits)
        raise ValidationError(
            _(
                "{kind} {name} is named by a revoked certificate valid until {date}: binding it "
                "would give that certificate these rights again"
            ).format(kind=kind.lower(), name=name, date=last[:10]),
            hint=_("use another name, wait until the certificate expires, or pass --force"),
        )


def record(host: Host, cert: certs.CertInfo, user: str, now: dt.datetime) -> Path:
    path = host.path(REVOKED_FILE)
    entry = revocations.Revoked(
        cn=cert.cn,
        serial=str(cert.serial),
        groups=tuple(cert.groups),
        user=user,
        fingerprint_sha256=cert.fingerprint,
        not_after=cert.not_after.isoformat(),
        revoked_at=now.isoformat(),
    )
    records = revocations.added(load_records(host), entry)
    files.ensure_dir(path.parent, mode=0o700)
    files.atomic_write(path, revocations.dumps(records), mode=0o600, backup=False)
    return path


def revoke(
    host: Host,
    api: Client,
    user: str,
    cert: certs.CertInfo | None,
    *,
    keep_groups: Sequence[str] = (),
    now: dt.datetime | None = None,
) -> Revocation:
    """Remove ``user`` and its certificate's groups (except ``keep_groups``) from every
    binding; record ``cert`` when given."""
    moment = now or dt.datetime.now(dt.UTC)
    groups = tuple(cert.groups) if cert is not None else ()
    warnings: list[str] = []
    if cert is not None and cert.cn != user:
        raise ValidationError(
            _("the certificate names CN={cn}, not {user}").format(cn=cert.cn, user=user)
        )
    for g in groups:
        if g in UNREVOKABLE_GROUPS:
            warnings.append(
                _(
                    "group {group} bypasses RBAC: this certificate keeps full access until it expires ({date})"
                ).format(group=g, date=cert.not_after.date() if cert else "?")
            )
    removable = [g for g in groups if g not in keep_groups and g not in IMPLICIT_GROUPS]
    kept = tuple(g for g in groups if g in keep_groups)
    for g in kept:
        warnings.append(
            _("group {group} was kept: the certificate keeps what that group is granted").format(
                group=g
            )
        )
    subjects = [Subject("User", user), *(Subject("Group", g) for g in removable)]
    # recorded first: the audit watcher flags the certificate even if a removal fails midway
    path = record(host, cert, user, moment) if cert is not None else None
    changes = bindings.remove_subjects(api, subjects)
    return Revocation(
        cn=user,
        serial=str(cert.serial) if cert is not None else "",
        groups=groups,
        changes=tuple(changes),
        record_file=host.unroot(path) if path else "",
        kept_groups=kept,
        warnings=tuple(warnings),
    )
