"""Bindings that expire: ``bind ... --for 8h`` (break-glass access) and ``expire``.

A subject bound ``--for`` a time is recorded in ``/var/lib/podsec/rbac/expiring.json`` (a JSON
list: subject, binding, role, granted and expiry times); :func:`expire_due` removes every
subject whose time has come from its binding (the binding goes with its last subject, as
``unbind`` does) and drops the record. Who calls it: the ``podsec-rbac-expire.timer`` that
``bind --for`` installs (every minute), and the u7s node's supervisor (every minute, as root) —
so an expiry is late by at most about a minute. A plain ``bind`` of the same subject into the
same binding, or an ``unbind``, ends the deadline (the grant is permanent, or gone).

Both steps leave a trail in syslog (tag ``podsec-rbac``, facility user, priority notice):
``granted User alice RoleBinding devs-edit -n devs (ClusterRole edit) until … (for 8h)`` and
``expired: User alice removed from RoleBinding devs-edit -n devs (granted …, until …)``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from podsec import readers
from podsec.errors import CommandError, NotFoundError, UsageError, ValidationError
from podsec.host import files, systemd
from podsec.host.paths import Host
from podsec.host.run import which
from podsec.i18n import _
from podsec.kube.client import Client
from podsec.names import EXPIRING_FILE
from podsec.rbac import bindings
from podsec.rbac.bindings import Subject, Target

TAG = "podsec-rbac"
NOTICE = 5
UNIT = "podsec-rbac-expire"
MAX_FOR = 366 * 86400
_FOR_RE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

Log = Callable[[int, str], None]


def parse_for(text: str) -> int:
    """``8h``, ``30m``, ``1d12h``, ``90s`` or plain seconds → seconds (1 s … 366 d)."""
    value = text.strip().lower()
    if value.isdigit():
        seconds = int(value)
    else:
        parts = _FOR_RE.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise UsageError(
                _("invalid duration {value!r}").format(value=text),
                hint=_("use a number with a unit: 90s, 30m, 8h, 2d"),
            )
        seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if not 1 <= seconds <= MAX_FOR:
        raise UsageError(_("--for {value}: between 1 second and 366 days").format(value=text))
    return seconds


@dataclass(frozen=True)
class Grant:
    subject: Subject
    target: Target
    granted_at: str
    expires_at: str

    def expires(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.expires_at)

    def key(self) -> tuple[str, ...]:
        t = self.target
        return (self.subject.kind, self.subject.name, t.binding_kind, t.binding, t.namespace or "")

    def as_dict(self) -> dict[str, Any]:
        t = self.target
        return {
            "subject": {"kind": self.subject.kind, "name": self.subject.name},
            "target": {
                "roleType": t.role_type,
                "role": t.role,
                "binding": t.binding,
                "namespace": t.namespace,
            },
            "grantedAt": self.granted_at,
            "expiresAt": self.expires_at,
        }

    def describe(self) -> str:
        return f"{self.subject.kind} {self.subject.name} {self.target.describe()}"


def _grant(item: object, where: str) -> Grant:
    try:
        if not isinstance(item, dict):
            raise TypeError("not an object")
        subject, target = item["subject"], item["target"]
        kind = subject["kind"]
        if kind not in ("User", "Group"):
            raise ValueError(f"subject kind {kind!r}")
        grant = Grant(
            Subject(kind, str(subject["name"])),
            Target(
                str(target["roleType"]),
                str(target["role"]),
                str(target["binding"]),
                None if target.get("namespace") is None else str(target["namespace"]),
            ),
            str(item["grantedAt"]),
            str(item["expiresAt"]),
        )
        grant.expires()
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationError(
            _("{where}: not an expiring binding ({err})").format(where=where, err=exc)
        ) from exc
    return grant


def read(host: Host) -> list[Grant]:
    data = readers.read_bytes(host.path(EXPIRING_FILE), shown=EXPIRING_FILE)
    if data is None or not data.strip():
        return []
    doc = readers.parse_json(data, EXPIRING_FILE)
    if not isinstance(doc, list):
        raise ValidationError(_("{path} must hold a JSON list").format(path=EXPIRING_FILE))
    return [_grant(item, f"{EXPIRING_FILE}[{i}]") for i, item in enumerate(doc)]


def _write(host: Host, grants: list[Grant]) -> None:
    path = host.path(EXPIRING_FILE)
    files.ensure_dir(path.parent, mode=0o755)
    text = json.dumps([g.as_dict() for g in grants], indent=2) + "\n"
    files.atomic_write(path, text, mode=0o600, backup=False)


def record(
    host: Host, change: bindings.Change, seconds: int, log: Log, now: dt.datetime | None = None
) -> Grant:
    """Remember that ``change``'s subject leaves its binding in ``seconds``; syslog it."""
    moment = now or dt.datetime.now(dt.UTC)
    grant = Grant(
        change.subject,
        change.target,
        moment.isoformat(timespec="seconds"),
        (moment + dt.timedelta(seconds=seconds)).isoformat(timespec="seconds"),
    )
    kept = [g for g in read(host) if g.key() != grant.key()]
    _write(host, [*kept, grant])
    log(
        NOTICE,
        _("granted {what} ({role}) until {until} (for {seconds} s)").format(
            what=grant.describe(),
            role=f"{change.target.role_kind} {change.target.role}",
            until=grant.expires_at,
            seconds=seconds,
        ),
    )
    return grant


def forget(host: Host, change: bindings.Change) -> bool:
    """A permanent bind or an unbind of the subject: its deadline, if any, is over."""
    grants = read(host)
    key = Grant(change.subject, change.target, "", "").key()
    kept = [g for g in grants if g.key() != key]
    if len(kept) == len(grants):
        return False
    _write(host, kept)
    return True


@dataclass(frozen=True)
class Expired:
    grant: Grant
    action: str  # removed, deleted (the binding had no other subject), gone (already unbound)

    def as_dict(self) -> dict[str, Any]:
        return {**self.grant.as_dict(), "action": self.action}


def due(host: Host, now: dt.datetime | None = None) -> list[Grant]:
    moment = now or dt.datetime.now(dt.UTC)
    return [g for g in read(host) if g.expires() <= moment]


def expire_due(host: Host, api: Client, log: Log, now: dt.datetime | None = None) -> list[Expired]:
    """Remove every subject whose time has come; the records of the others stay."""
    moment = now or dt.datetime.now(dt.UTC)
    done: list[Expired] = []
    for grant in due(host, moment):
        action: str
        try:
            action = bindings.unbind(api, grant.subject, grant.target).action
        except NotFoundError:
            action = "gone"  # unbound already (by hand, or the binding went)
        done.append(Expired(grant, action))
        remaining = [g for g in read(host) if g.key() != grant.key()]
        _write(host, remaining)  # one by one: an error later keeps the rest recorded
        log(
            NOTICE,
            _("expired: {what} removed (granted {granted}, until {until}){gone}").format(
                what=grant.describe(),
                granted=grant.granted_at,
                until=grant.expires_at,
                gone=_(" — it was already unbound") if action == "gone" else "",
            ),
        )
    return done


def expire(
    host: Host,
    log: Log,
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    api_timeout: float = 15.0,
) -> list[Expired]:
    """``podsec rbac expire`` (the timer, the supervisor): nothing due, no connection."""
    if not due(host):
        return []
    from podsec.kube.kubeconfig import admin_connection

    with Client(admin_connection(kubeconfig, host, context), timeout=api_timeout) as api:
        return expire_due(host, api, log)


def timer_units(argv: list[str]) -> dict[str, systemd.Unit]:
    return {
        f"{UNIT}.service": systemd.unit(
            f"{UNIT}.service",
            Unit=[("Description", "remove the RBAC bindings whose time is over (podsec rbac)")],
            Service=[("Type", "oneshot"), ("ExecStart", " ".join(argv))],
        ),
        f"{UNIT}.timer": systemd.unit(
            f"{UNIT}.timer",
            Unit=[("Description", "remove expired RBAC bindings every minute")],
            Timer=[("OnCalendar", "minutely"), ("AccuracySec", "5s"), ("Persistent", "true")],
            Install=[("WantedBy", "timers.target")],
        ),
    }


def ensure_timer(host: Host, argv: list[str]) -> bool:
    """Install (and enable, and start where systemd runs) the timer; True when it runs."""
    for u in timer_units(argv).values():
        systemd.install(host, u)
    if which("systemctl") is None:
        return False
    try:
        if not systemd.is_enabled(host, f"{UNIT}.timer"):
            systemd.enable(host, f"{UNIT}.timer")
        return systemd.start(host, f"{UNIT}.timer")
    except CommandError:
        return False  # the grant is recorded: the supervisor or `podsec rbac expire` acts
