"""``revoke USER``: refuse everything a user's certificate can do, and record it.

Kubernetes cannot revoke a client certificate (no CRL/OCSP for client certs): it keeps
authenticating until it expires, with its CN (the user) and its O entries (groups). revoke
records the certificate (CN, serial as a decimal string, groups, fingerprint, expiry, time)
in ``/var/lib/podsec/rbac/revoked.json`` (:mod:`podsec.revocations`), which the API server's
authorization webhook (:mod:`podsec.webhook.authz`, ``enforce-revocation``) reads: every
request of that user is denied at once, through every group, while the other members of
those groups keep their access — revoke no longer touches group bindings. It also removes the
user's own subject from every binding (nothing of its grants is left should the webhook be
down: an unreachable webhook is "no opinion" in Kubernetes, and RBAC decides). The audit
watcher (podsec monitor) reads the same file to report any later use of the certificate.

Limits, reported to the caller: ``system:masters`` is allowed before any authorizer is asked,
so such a certificate cannot be refused; where the webhook is not set up, the certificate
keeps what its groups are granted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podsec import issued as issued_file
from podsec import revocations
from podsec.errors import NotFoundError, UsageError, ValidationError
from podsec.host import files
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.kube.client import Client
from podsec.kube.kubeconfig import admin_connection
from podsec.names import AUTHZ_KUBECONFIG, ISSUED_FILE, REVOKED_FILE
from podsec.rbac import bindings, certs, issue, names
from podsec.rbac.bindings import Subject

UNREVOKABLE_GROUPS = ("system:masters",)


@dataclass(frozen=True)
class Revocation:
    cn: str
    serial: str
    groups: tuple[str, ...]
    changes: tuple[bindings.Change, ...]
    record_file: str
    enforced: bool = False  # the authorization webhook is set up on this host
    warnings: tuple[str, ...] = field(default_factory=tuple)
    serials: tuple[str, ...] = ()  # every certificate recorded (--no-cert: podsec's issued)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cn": self.cn,
            "serial": self.serial,
            "serials": list(self.serials),
            "groups": list(self.groups),
            "enforced": self.enforced,
            "recordFile": self.record_file,
            "changes": [
                {
                    "subject": c.subject.to_api(),
                    "binding": c.target.binding_dict(),
                    "action": c.action,
                }
                for c in self.changes
            ],
            "warnings": list(self.warnings),
        }


def load_records(host: Host) -> tuple[revocations.Revoked, ...]:
    return revocations.read(host.path(REVOKED_FILE), REVOKED_FILE)


def still_valid(
    host: Host, kind: str, name: str, now: dt.datetime | None = None
) -> list[revocations.Revoked]:
    """Revoked certificates, not yet expired, that a binding of ``kind`` ``name`` would
    empower again where the webhook is down (bindings name CNs and groups, not
    certificates; a group is shared with other users, so only a User is checked)."""
    moment = now or dt.datetime.now(dt.UTC)
    hits = []
    for rec in load_records(host):
        expires = rec.expires() or moment + dt.timedelta(days=1)  # unknown: still valid
        if expires <= moment:
            continue
        if kind == "User" and rec.cn == name:
            hits.append(rec)
    return hits


def refuse_rebinding(host: Host, kind: str, name: str, now: dt.datetime | None = None) -> None:
    """Refuse to bind a user that a revoked, still valid certificate names."""
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


def entry_for(cert: certs.CertInfo, user: str, now: dt.datetime) -> revocations.Revoked:
    return revocations.Revoked(
        cn=cert.cn,
        serial=str(cert.serial),
        groups=tuple(cert.groups),
        user=user,
        fingerprint_sha256=cert.fingerprint,
        not_after=cert.not_after.isoformat(),
        revoked_at=now.isoformat(),
    )


def issued_entries(host: Host, user: str, now: dt.datetime) -> list[revocations.Revoked]:
    """The certificates podsec issued to ``user`` (issued.json) that are still valid, as
    revocation records: what ``revoke --no-cert`` refuses."""
    out = []
    for rec in issued_file.read(host.path(ISSUED_FILE), ISSUED_FILE):
        expires = rec.expires()
        if rec.cn != user or (expires is not None and expires <= now):
            continue
        out.append(
            revocations.Revoked(
                cn=rec.cn,
                serial=rec.serial,
                groups=rec.groups,
                user=user,
                fingerprint_sha256=rec.fingerprint_sha256,
                not_after=rec.not_after,
                revoked_at=now.isoformat(),
            )
        )
    return out


def record(host: Host, cert: certs.CertInfo, user: str, now: dt.datetime) -> Path:
    return record_entries(host, [entry_for(cert, user, now)])


def record_entries(host: Host, entries: list[revocations.Revoked]) -> Path:
    path = host.path(REVOKED_FILE)
    records = load_records(host)
    for entry in entries:
        records = revocations.added(records, entry)
    # readable by the webhook, which runs unprivileged (u7s-admin on a u7s node): the file
    # names certificates, it holds no secret
    files.ensure_dir(path.parent, mode=0o755)
    files.atomic_write(path, revocations.dumps(records), mode=0o644, backup=False)
    return path


def enforced(host: Host) -> bool:
    """Whether this host's API server is set up to ask the revocation webhook."""
    return host.path(AUTHZ_KUBECONFIG).is_file()


def revoke(
    host: Host,
    api: Client,
    user: str,
    cert: certs.CertInfo | None,
    *,
    now: dt.datetime | None = None,
) -> Revocation:
    """Record ``cert`` for the webhook — without one, every still valid certificate podsec
    issued to ``user`` (issued.json) — and remove ``user`` from every binding; group
    bindings stay as they are."""
    moment = now or dt.datetime.now(dt.UTC)
    if cert is not None and cert.cn != user:
        raise ValidationError(
            _("the certificate names CN={cn}, not {user}").format(cn=cert.cn, user=user)
        )
    entries = (
        [entry_for(cert, user, moment)] if cert is not None else issued_entries(host, user, moment)
    )
    groups = tuple(dict.fromkeys(g for e in entries for g in e.groups))
    warnings: list[str] = []
    for g in groups:
        if g in UNREVOKABLE_GROUPS:
            warnings.append(
                _(
                    "group {group} is allowed before any authorizer: this certificate keeps full "
                    "access until it expires ({date})"
                ).format(group=g, date=_latest(entries)[:10] or "?")
            )
    is_enforced = enforced(host)
    if not entries:
        warnings.append(
            _(
                "no certificate recorded (none given, none issued by podsec is still valid): "
                "the webhook does not refuse {user}"
            ).format(user=user)
        )
    elif not is_enforced and groups:
        warnings.append(
            _(
                "the authorization webhook is not set up here (podsec rbac enforce-revocation): "
                "until it is, the certificate keeps what groups {groups} are granted"
            ).format(groups=", ".join(groups))
        )
    # recorded first: the webhook refuses the user at once, even if a removal fails midway
    path = record_entries(host, entries) if entries else None
    changes = bindings.remove_subjects(api, [Subject("User", user)])
    return Revocation(
        cn=user,
        serial=entries[-1].serial if entries else "",
        groups=groups,
        changes=tuple(changes),
        record_file=host.unroot(path) if path else "",
        enforced=is_enforced,
        warnings=tuple(warnings),
        serials=tuple(e.serial for e in entries),
    )


def _latest(entries: list[revocations.Revoked]) -> str:
    return max((e.not_after for e in entries), default="")


def resolve_cert(
    host: Host, user: str, cert_file: str | None = None, *, no_cert: bool = False
) -> certs.CertInfo | None:
    """The certificate to revoke: ``cert_file``, else the one in ``~USER/.kube/config``;
    none with ``no_cert`` (then :func:`revoke` takes podsec's own record of what it issued)."""
    if no_cert and cert_file:
        raise UsageError(_("--cert and --no-cert exclude each other"))
    if no_cert:
        return None
    if cert_file:
        try:
            return certs.info(Path(cert_file).read_bytes())
        except OSError as exc:
            raise NotFoundError(
                _("cannot read {path}: {err}").format(path=cert_file, err=exc.strerror)
            ) from exc
    return issue.current_cert(host, user)[0]


def revoke_user(
    host: Host,
    user: str,
    *,
    cert_file: str | None = None,
    no_cert: bool = False,
    kubeconfig: str | None = None,
    context: str | None = None,
    api_timeout: float = 15.0,
) -> Revocation:
    """``podsec rbac revoke``: choose the certificate (:func:`resolve_cert`), then
    :func:`revoke` through the administrator's connection."""
    names.subject(user)
    cert = resolve_cert(host, user, cert_file, no_cert=no_cert)
    admin = admin_connection(kubeconfig, host, context)
    with Client(admin, timeout=api_timeout) as api:
        return revoke(host, api, user, cert)
