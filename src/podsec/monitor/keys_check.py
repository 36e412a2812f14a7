"""``check-keys``: the signer keys the system policy trusts, as they age.

Every key file a ``signedBy`` or ``sigstoreSigned`` requirement of ``/etc/containers/policy.json``
names (and every ``keyData``) is read (:mod:`podsec.trust.key_audit`). Findings, weighted like
the other checks (the metric is their sum):

* 1 — a key that expires within ``--days`` days (30);
* 101 — a key that has expired, is revoked, is weaker than the site's minimum (RSA below
  ``--min-rsa`` 3072 bits, DSA, an EC curve below 256 bits, a SHA-1 self-signature), cannot be
  read, or has no owner: its file is not ``/var/sigstore/keys/USER[.N].pgp|pub`` of an
  existing account (a key nobody answers for; ``keyData`` has no owner either).

Without ``-w`` any finding is a WARNING; the default ``-c`` 100 makes the 101 kinds CRITICAL.
A policy that cannot be read is UNKNOWN. Perfdata: keys, expiring, critical, and days to the
nearest expiry (``soonest``; sigstore keys never expire).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field, replace

from podsec.config import Settings
from podsec.errors import PodsecError
from podsec.host import accounts
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.monitor import plugin
from podsec.monitor.plugin import Perf, Range, Report, State, Thresholds

NAME = "KEYS"
TAG = "podsec-inotify-check-keys"
EXPIRING, BAD = 1, 101
DEFAULT_DAYS = 30
DEFAULT_MIN_RSA = 3072


@dataclass(frozen=True)
class Finding:
    key: str  # the key path (or keyData)
    weight: int
    problem: str


@dataclass(frozen=True)
class Result:
    keys: int = 0
    findings: tuple[Finding, ...] = ()
    soonest: float | None = None  # days until the nearest expiry
    errors: tuple[str, ...] = field(default_factory=tuple)

    @property
    def metric(self) -> int:
        return sum(f.weight for f in self.findings)


def _policy_keys(host: Host) -> list[tuple[str, bytes | None]]:
    """(name, bytes or None when unreadable) of every key the system policy names."""
    from podsec.trust import policy as pol
    from podsec.trust import setup

    current = setup.load_system_policy(host)
    if current is None:
        raise PodsecError(_("{path} does not exist").format(path=pol.SYSTEM_POLICY))
    out: dict[str, bytes | None] = {}
    reqs = [r for scopes in current.transports.values() for rs in scopes.values() for r in rs]
    for r in [*current.default, *reqs]:
        if r.type not in (pol.SIGNED_BY, pol.SIGSTORE_SIGNED):
            continue
        for path in r.keys:
            try:
                out[path] = host.path(path).read_bytes()
            except OSError:
                out[path] = None
        if r.key_data is not None:
            out[f"keyData ({r.type})"] = base64.b64decode(r.key_data)
    return sorted(out.items())


def _owner_problem(host: Host, path: str) -> str | None:
    from podsec.trust import rotate

    found = rotate.key_file(path)
    if found is None:
        return _("no owner: not a maker key file (/var/sigstore/keys/USER.pgp|pub)")
    if accounts.get_user(host, found.user) is None:
        return _("no owner: user {user} does not exist").format(user=found.user)
    return None


def evaluate(
    host: Host,
    *,
    days: float = DEFAULT_DAYS,
    min_rsa: int = DEFAULT_MIN_RSA,
    now: float | None = None,
) -> Result:
    from podsec.trust import key_audit

    moment = time.time() if now is None else now
    findings: list[Finding] = []
    soonest: float | None = None
    keys = _policy_keys(host)
    for name, data in keys:
        if data is None:
            findings.append(Finding(name, BAD, _("cannot be read")))
            continue
        if not name.startswith("keyData"):
            owner = _owner_problem(host, name)
            if owner is not None:
                findings.append(Finding(name, BAD, owner))
        else:
            findings.append(Finding(name, BAD, _("no owner: inline keyData")))
        for key in key_audit.facts(data):
            label = f"{name} {key.fingerprint[-16:]}".strip()
            if key.problem is not None:
                findings.append(Finding(label, BAD, key.problem))
                continue
            if key.revoked:
                findings.append(Finding(label, BAD, _("revoked")))
            weak = key_audit.weakness(key, min_rsa=min_rsa)
            if weak is not None:
                findings.append(Finding(label, BAD, _("weak: {why}").format(why=weak)))
            if key.expires is not None:
                left = (key.expires - moment) / 86400
                soonest = left if soonest is None else min(soonest, left)
                if left <= 0:
                    findings.append(Finding(label, BAD, _("expired")))
                elif left <= days:
                    findings.append(
                        Finding(label, EXPIRING, _("expires in {n} days").format(n=round(left, 1)))
                    )
    return Result(len(keys), tuple(findings), soonest)


def report(
    result: Result, thresholds: Thresholds, verbosity: int, log: plugin.Log | None = None
) -> Report:
    if thresholds.warning is None:
        thresholds = replace(thresholds, warning=Range(0, 0, text="0"))  # any finding warns
    ordered = sorted(result.findings, key=lambda f: -f.weight)
    events = [
        (
            f.weight,
            lambda level, f=f: _("{level}: key {key}: {problem}").format(
                level=level, key=f.key, problem=f.problem
            ),
        )
        for f in ordered
    ]
    state = plugin.summarise(result.metric, thresholds, events, result.errors, log)
    if ordered:
        first = ordered[0]
        summary = _("{n} key finding(s), first: {key}: {problem} (metric {metric})").format(
            n=len(ordered), key=first.key, problem=first.problem, metric=result.metric
        )
    else:
        summary = _("{n} signer keys, none expiring within the warning period").format(
            n=result.keys
        )
    long = [f"{f.key}: {f.problem}" for f in ordered] if verbosity >= 1 else []
    perf = (
        plugin.metric_perf(result.metric, thresholds),
        Perf("keys", result.keys, min=0),
        Perf("expiring", sum(1 for f in result.findings if f.weight == EXPIRING), min=0),
        Perf("critical", sum(1 for f in result.findings if f.weight == BAD), min=0),
        Perf("soonest", None if result.soonest is None else round(result.soonest, 1), "d"),
    )
    return Report(NAME, State(state), summary, tuple(long), perf)


@dataclass(frozen=True)
class KeysCheck:
    """``check-keys`` for :func:`podsec.monitor.plugin.run`."""

    days: float = DEFAULT_DAYS
    min_rsa: int = DEFAULT_MIN_RSA
    name: str = NAME
    tag: str = TAG
    needs_root: bool = False  # policy.json and the public keys are world-readable

    def probe(self, host: Host, settings: Settings, log: plugin.Log) -> Result:
        return evaluate(host, days=self.days, min_rsa=self.min_rsa)

    def summarise(
        self, result: Result, thresholds: Thresholds, verbosity: int, log: plugin.Log
    ) -> Report:
        return report(result, thresholds, verbosity, log)
