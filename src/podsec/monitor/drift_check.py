"""``check-drift``: does this node trust what the registry node publishes — and nothing more?

Fetches the published policy and keys (``http://sigstore.local:81/keys/``, ``--keys-url``)
and compares (:func:`podsec.trust.sync.drift`). Findings, weighted like the other checks:

* 101 — a key this node's policy trusts that the published policy no longer names (a retired
  or removed maker key: this node still accepts what it signs);
* 1 — the installed policy.json, the registries.d file podsec writes for it or a key file
  differs from the published version, or a published key is not installed.

Without ``-w`` any finding is a WARNING; the default ``-c 100`` makes a stale key CRITICAL. The
registry node unreachable or its policy unreadable is UNKNOWN. ``podsec policy sync
--trust …`` brings the node back in line.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from podsec.config import Settings
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.monitor import plugin
from podsec.monitor.plugin import Perf, Range, Report, State, Thresholds
from podsec.names import KEYS_URL

NAME = "DRIFT"
TAG = "podsec-inotify-check-drift"
DIFFERS, STALE = 1, 101


@dataclass(frozen=True)
class Result:
    stale: tuple[str, ...] = ()
    differs: tuple[str, ...] = ()
    errors: tuple[str, ...] = field(default_factory=tuple)

    @property
    def metric(self) -> int:
        return STALE * len(self.stale) + DIFFERS * len(self.differs)


def evaluate(host: Host, keys_url: str = KEYS_URL) -> Result:
    from podsec.trust import setup, sync

    d = sync.drift(host, setup.fetch_published(keys_url))
    lines = sync.describe(d)
    stale = tuple(lines[: len(d.stale_keys)])
    return Result(stale, tuple(lines[len(d.stale_keys) :]))


def report(
    result: Result, thresholds: Thresholds, verbosity: int, log: plugin.Log | None = None
) -> Report:
    if thresholds.warning is None:
        thresholds = replace(thresholds, warning=Range(0, 0, text="0"))
    events = [(STALE, lambda level, t=t: f"{level}: {t}") for t in result.stale] + [
        (DIFFERS, lambda level, t=t: f"{level}: {t}") for t in result.differs
    ]
    state = plugin.summarise(result.metric, thresholds, events, result.errors, log)
    found = [*result.stale, *result.differs]
    if found:
        summary = _("{n} difference(s) from the registry node, first: {what} (metric {m})").format(
            n=len(found), what=found[0], m=result.metric
        )
    else:
        summary = _("policy, registries.d and keys are the registry node's")
    perf = (
        plugin.metric_perf(result.metric, thresholds),
        Perf("stale_keys", len(result.stale), min=0),
        Perf("differences", len(result.differs), min=0),
    )
    return Report(NAME, State(state), summary, tuple(found) if verbosity >= 1 else (), perf)


@dataclass(frozen=True)
class DriftCheck:
    """``check-drift`` for :func:`podsec.monitor.plugin.run`."""

    keys_url: str = KEYS_URL
    name: str = NAME
    tag: str = TAG
    needs_root: bool = False

    def probe(self, host: Host, settings: Settings, log: plugin.Log) -> Result:
        return evaluate(host, self.keys_url)

    def summarise(
        self, result: Result, thresholds: Thresholds, verbosity: int, log: plugin.Log
    ) -> Report:
        return report(result, thresholds, verbosity, log)
