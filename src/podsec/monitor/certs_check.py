"""``check-certs``: client certificates about to expire while in use, revoked ones still used.

Reads podsec's record of the certificates it issued (``issued.json``, :mod:`podsec.issued`),
the revocations (``revoked.json``) and the API server's audit log with its rotated copies
(:mod:`podsec.kube.audit_users`: when each user was last seen). Findings, weighted like the
other checks (the metric is their sum):

* 1 — a certificate in use (its user seen in the audit log while it is valid) that expires
  within ``--days`` days (30) and is not revoked;
* 101 — a revoked certificate whose user the audit log saw after the revocation, while the
  certificate is still valid (the audit log names users, not certificates: a new certificate
  of the revoked name counts too — the webhook refuses both).

Without ``-w`` any finding is a WARNING; the default ``-c`` 100 makes a revoked certificate in
use CRITICAL. Perfdata: certificates, in_use, expiring, revoked_seen, soonest (days until the
first in-use certificate expires).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from podsec import issued, revocations
from podsec.config import Settings
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.kube import audit_users
from podsec.monitor import plugin
from podsec.monitor.plugin import Perf, Range, Report, State, Thresholds
from podsec.names import AUDIT_LOG, ISSUED_FILE, REVOKED_FILE

NAME = "CERTS"
TAG = "podsec-inotify-check-certs"
EXPIRING, REVOKED_SEEN = 1, 101
DEFAULT_DAYS = 30


@dataclass(frozen=True)
class Result:
    certificates: int = 0
    in_use: int = 0
    expiring: tuple[tuple[str, str, float], ...] = ()  # (user, serial, days left)
    revoked_seen: tuple[tuple[str, str, str], ...] = ()  # (user, serial, seen at)
    soonest: float | None = None  # days until the first in-use certificate expires
    errors: tuple[str, ...] = field(default_factory=tuple)

    @property
    def metric(self) -> int:
        return EXPIRING * len(self.expiring) + REVOKED_SEEN * len(self.revoked_seen)


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _parse(text: str) -> dt.datetime | None:
    try:
        return _aware(dt.datetime.fromisoformat(text))
    except ValueError:
        return None


def evaluate(host: Host, *, days: float = DEFAULT_DAYS, now: dt.datetime | None = None) -> Result:
    moment = now or dt.datetime.now(dt.UTC)
    records = issued.read(host.path(ISSUED_FILE), ISSUED_FILE)
    revoked = revocations.read(host.path(REVOKED_FILE), REVOKED_FILE)
    seen = audit_users.last_seen(
        host.path(AUDIT_LOG), {r.cn for r in records} | {r.cn for r in revoked}
    )
    revoked_serials = {r.serial for r in revoked}
    in_use = 0
    expiring: list[tuple[str, str, float]] = []
    soonest: float | None = None
    for rec in records:
        end, start, last = rec.expires(), _parse(rec.not_before), seen.get(rec.cn)
        if rec.serial in revoked_serials or end is None or end <= moment or last is None:
            continue
        if start is not None and last < start:
            continue  # seen, but with an older certificate
        in_use += 1
        left = (end - moment).total_seconds() / 86400
        soonest = left if soonest is None else min(soonest, left)
        if left <= days:
            expiring.append((rec.cn, rec.serial, round(left, 1)))
    used: list[tuple[str, str, str]] = []
    for rev in revoked:
        end, at, last = _aware(rev.expires()), _parse(rev.revoked_at), seen.get(rev.cn)
        if last is None or (end is not None and end <= moment):
            continue
        if (at is None or last > at) and (end is None or last <= end):
            used.append((rev.cn, rev.serial, last.isoformat(timespec="seconds")))
    return Result(len(records), in_use, tuple(expiring), tuple(used), soonest)


def report(
    result: Result, thresholds: Thresholds, verbosity: int, log: plugin.Log | None = None
) -> Report:
    if thresholds.warning is None:
        thresholds = replace(thresholds, warning=Range(0, 0, text="0"))  # any finding warns
    events = [
        (
            REVOKED_SEEN,
            lambda level, u=u, s=s, t=t: _(
                "{level}: revoked certificate of {user} (serial {serial}) used at {time}"
            ).format(level=level, user=u, serial=s, time=t),
        )
        for u, s, t in result.revoked_seen
    ] + [
        (
            EXPIRING,
            lambda level, u=u, s=s, d=d: _(
                "{level}: certificate of {user} (serial {serial}) in use expires in {days} days"
            ).format(level=level, user=u, serial=s, days=d),
        )
        for u, s, d in result.expiring
    ]
    state = plugin.summarise(result.metric, thresholds, events, result.errors, log)
    if result.revoked_seen:
        users = ", ".join(sorted({u for u, _s, _t in result.revoked_seen}))
        summary = _("revoked certificates in use by {users} (metric {metric})").format(
            users=users, metric=result.metric
        )
    elif result.expiring:
        users = ", ".join(sorted({u for u, _s, _d in result.expiring}))
        summary = _("certificates in use expire soon: {users} (metric {metric})").format(
            users=users, metric=result.metric
        )
    else:
        summary = _("{n} certificates, {used} in use, none expiring soon").format(
            n=result.certificates, used=result.in_use
        )
    long: list[str] = []
    if verbosity >= 1:
        long += [f"revoked {u} {s} seen {t}" for u, s, t in result.revoked_seen]
        long += [f"expiring {u} {s} in {d} days" for u, s, d in result.expiring]
    perf = (
        plugin.metric_perf(result.metric, thresholds),
        Perf("certificates", result.certificates, min=0),
        Perf("in_use", result.in_use, min=0),
        Perf("expiring", len(result.expiring), min=0),
        Perf("revoked_seen", len(result.revoked_seen), min=0),
        Perf("soonest", None if result.soonest is None else round(result.soonest, 1), "d"),
    )
    return Report(NAME, State(state), summary, tuple(long), perf)


@dataclass(frozen=True)
class CertsCheck:
    """``check-certs`` for :func:`podsec.monitor.plugin.run`."""

    days: float = DEFAULT_DAYS
    name: str = NAME
    tag: str = TAG
    needs_root: bool = False  # the records are 0644; the audit log must be readable

    def probe(self, host: Host, settings: Settings, log: plugin.Log) -> Result:
        return evaluate(host, days=self.days)

    def summarise(
        self, result: Result, thresholds: Thresholds, verbosity: int, log: plugin.Log
    ) -> Report:
        return report(result, thresholds, verbosity, log)
