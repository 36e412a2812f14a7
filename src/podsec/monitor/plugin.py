"""The Nagios plugin runtime shared by every podsec check.

Probe → evaluate → summarise, as monitoring-plugins and nagiosplugin define it:

* :func:`parse_range` reads Nagios ranges ``[@]start:end`` (``~`` is −∞, an omitted start
  is 0, an omitted end +∞); the original's documented ``A-B`` form is accepted as ``A:B``
  with a warning.
* :class:`Thresholds` holds the original's two channels: syslog levels ``-a -f -c -h -m -l
  -d`` (priorities 0–6) and the Nagios state ``-w``/``-c``. Levels are resolved **highest
  first** (the original used bash hash order, so ``-w 0 -c 100`` with 500 said Warning).
* :class:`Report` renders one status line, optional long output and perfdata
  ``'label'=value[UOM];warn;crit;min;max``; human text never contains ``|``.
* :func:`guarded` turns any internal failure or a timeout into UNKNOWN (exit 3).
* :func:`run` is the whole plugin: thresholds, the root check, the :class:`Check`'s probe and
  summary under :func:`guarded`, the report shown, mailed when not OK, syslog flushed; it
  returns the exit code. :func:`summarise` is the part every weighted check shares.
"""

from __future__ import annotations

import math
import re
import signal
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum
from types import FrameType
from typing import TYPE_CHECKING, Protocol, TypeVar

from podsec.errors import PodsecError, UsageError
from podsec.i18n import _

if TYPE_CHECKING:
    from podsec.config import Settings
    from podsec.host.paths import Host

Log = Callable[[int, str], None]  # (syslog priority, message)


class State(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def label(self) -> str:
        return self.name


# Syslog levels of the original, highest first: key → (name, syslog priority).
SYSLOG_LEVELS: dict[str, tuple[str, int]] = {
    "a": ("Crash", 0),
    "f": ("Fatal", 1),
    "c": ("Critical", 2),
    "h": ("High", 3),
    "m": ("Middle", 4),
    "l": ("Low", 5),
    "d": ("Debug", 6),
}


class PluginTimeout(PodsecError):
    """The check ran out of time (reported as UNKNOWN)."""


# ------------------------------------------------------------------------------------ ranges
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE_RE = re.compile(rf"^(?P<at>@)?(?:(?P<start>~|{_NUM})?:)?(?P<end>{_NUM})?$")
_DASH_RE = re.compile(rf"^(?P<at>@)?(?P<start>{_NUM})-(?P<end>{_NUM})$")


@dataclass(frozen=True)
class Range:
    """A Nagios threshold range; :meth:`alert` is True when ``value`` breaches it."""

    start: float = 0.0
    end: float = math.inf
    inside: bool = False  # "@": alert when inside
    text: str = ""

    def contains(self, value: float) -> bool:
        return self.start <= value <= self.end

    def alert(self, value: float) -> bool:
        return self.contains(value) if self.inside else not self.contains(value)

    def __str__(self) -> str:
        return self.text


def parse_range(text: str) -> tuple[Range, str | None]:
    """Parse ``text``; return the range and a warning when the legacy ``A-B`` form was used.

    Raises :class:`~podsec.errors.UsageError` naming the bad value.
    """
    raw = text.strip()
    warning = None
    m = _DASH_RE.match(raw)
    if m and not _RANGE_RE.match(raw):
        converted = f"{m['at'] or ''}{m['start']}:{m['end']}"
        warning = _(
            "range {old!r} uses the old A-B form; read as {new!r} (write A:B, as Nagios does)"
        ).format(old=raw, new=converted)
        raw = converted
    m = _RANGE_RE.match(raw)
    if not raw or m is None or (m["start"] is None and m["end"] is None and ":" not in raw):
        raise UsageError(
            _("invalid threshold range {value!r}").format(value=text),
            hint=_("use [@]START:END, e.g. 100, 10:, ~:10, 10:20, @10:20"),
        )
    start_text, end_text = m["start"], m["end"]
    if start_text is None and ":" not in raw.lstrip("@"):
        start = 0.0  # "N" means 0..N
    elif start_text == "~":
        start = -math.inf
    else:
        start = float(start_text) if start_text else 0.0
    end = float(end_text) if end_text else math.inf
    if start > end:
        raise UsageError(
            _("invalid threshold range {value!r}: start is greater than end").format(value=text)
        )
    return Range(start, end, bool(m["at"]), raw), warning


# ------------------------------------------------------------------------------ thresholds
@dataclass(frozen=True)
class Thresholds:
    """The syslog channel (keys a f c h m l d) and the Nagios channel (w, c)."""

    syslog: Mapping[str, Range] = field(default_factory=dict)
    warning: Range | None = None
    critical: Range | None = None

    def syslog_level(self, metric: float) -> tuple[str, int] | None:
        """(level name, priority) of the highest syslog level breached, None if none is."""
        for key, (name, priority) in SYSLOG_LEVELS.items():
            rng = self.syslog.get(key)
            if rng is not None and rng.alert(metric):
                return name, priority
        return None

    def state(self, metric: float) -> State:
        if self.critical is not None and self.critical.alert(metric):
            return State.CRITICAL
        if self.warning is not None and self.warning.alert(metric):
            return State.WARNING
        return State.OK


def build_thresholds(
    values: Mapping[str, str | None], *, default_critical: str | None = "100"
) -> tuple[Thresholds, list[str]]:
    """Thresholds from the flag values (keys a f c h m l d w); warnings for legacy ranges.

    With no threshold flag at all, the original's defaults apply: syslog and Nagios
    Critical at ``default_critical``.
    """
    warnings: list[str] = []
    parsed: dict[str, Range] = {}
    for key, text in values.items():
        if text is None:
            continue
        rng, warning = parse_range(text)
        parsed[key] = rng
        if warning:
            warnings.append(warning)
    if not parsed and default_critical is not None:
        parsed["c"] = parse_range(default_critical)[0]
    syslog = {k: r for k, r in parsed.items() if k in SYSLOG_LEVELS}
    return Thresholds(syslog, parsed.get("w"), parsed.get("c")), warnings


# --------------------------------------------------------------------------------- output
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def clean(text: str) -> str:
    """Human text safe for a status line: no ``|`` (perfdata separator), no control chars,
    no undecodable bytes (file names are data and may contain anything)."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = _CONTROL_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text.replace("|", "/")


def _num(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Perf:
    """One perfdata item. ``value`` None renders Nagios' ``U`` (unknown)."""

    label: str
    value: float | int | None
    uom: str = ""
    warn: str = ""
    crit: str = ""
    min: float | int | None = None
    max: float | int | None = None

    def render(self) -> str:
        label = self.label.replace("'", "''").replace("=", "_").replace("|", "_")
        value = "U" if self.value is None else _num(self.value) + self.uom
        fields = [value, self.warn, self.crit, _num(self.min), _num(self.max)]
        while len(fields) > 1 and fields[-1] == "":
            fields.pop()
        return f"'{label}'=" + ";".join(fields)


@dataclass(frozen=True)
class Report:
    """What a plugin prints: ``NAME STATE: summary | perf`` then long-output lines."""

    name: str
    state: State
    summary: str
    long: tuple[str, ...] = ()
    perf: tuple[Perf, ...] = ()

    @property
    def status_line(self) -> str:
        line = f"{self.name} {self.state.label}: {clean(self.summary)}"
        return line

    def render(self) -> str:
        line = self.status_line
        if self.perf:
            line += " | " + " ".join(p.render() for p in self.perf)
        lines = [line, *(clean(text) for text in self.long)]
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "state": self.state.label,
            "exit_code": int(self.state),
            "summary": self.summary,
            "long": list(self.long),
            "perfdata": {p.label: p.value for p in self.perf},
        }


def worst(states: Sequence[State]) -> State:
    """Nagios' ordering: CRITICAL > WARNING > UNKNOWN > OK."""
    order = {State.OK: 0, State.UNKNOWN: 1, State.WARNING: 2, State.CRITICAL: 3}
    return max(states, key=order.__getitem__, default=State.OK)


# -------------------------------------------------------------------------------- guarded
@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`PluginTimeout` in the main thread after ``seconds`` (SIGALRM)."""
    if not seconds or seconds <= 0:
        yield
        return

    def _expired(_signum: int, _frame: FrameType | None) -> None:
        raise PluginTimeout(_("timed out after {seconds:g} s").format(seconds=seconds))

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def guarded(name: str, probe: Callable[[], Report], timeout: float | None = None) -> Report:
    """Run ``probe``; any exception or a timeout becomes an UNKNOWN report (exit 3)."""
    try:
        with deadline(timeout):
            return probe()
    except PodsecError as exc:
        message, *hints = exc.diagnostics()
        return Report(name, State.UNKNOWN, message, tuple(hints))
    except Exception as exc:  # the plugin contract: never a traceback, always exit 3
        return Report(
            name,
            State.UNKNOWN,
            _("internal error: {err}").format(err=f"{type(exc).__name__}: {exc}"),
        )


# -------------------------------------------------------------------------------- summarise
def summarise(
    metric: float,
    thresholds: Thresholds,
    events: Iterable[tuple[int, Callable[[str], str]]],
    errors: Sequence[str],
    log: Log | None,
) -> State:
    """What every weighted check does with its findings, in the original's order: each
    ``(weight, line)`` event is logged at the syslog level its weight reaches (``line`` gets
    the level's name), each error as Fatal; then the Nagios state of ``metric`` — UNKNOWN
    rather than OK when something could not be checked."""
    for weight, line in events:
        level = thresholds.syslog_level(weight)
        if level is not None and log is not None:
            name, priority = level
            log(priority, line(name))
    if log is not None:
        for error in errors:
            log(1, f"Fatal: {error}")
    state = thresholds.state(metric)
    return State.UNKNOWN if state == State.OK and errors else state


def metric_perf(metric: float, thresholds: Thresholds) -> Perf:
    """The ``metric`` perfdata item with the Nagios thresholds it is judged by."""
    warn = thresholds.warning.text if thresholds.warning else ""
    crit = thresholds.critical.text if thresholds.critical else ""
    return Perf("metric", metric, warn=warn, crit=crit, min=0)


# -------------------------------------------------------------------------------------- run
R = TypeVar("R")


class Check(Protocol[R]):
    """One plugin: ``probe`` looks at the node, ``summarise`` turns what it found into the
    report (and its syslog lines)."""

    @property
    def name(self) -> str:
        """The status line's first word: POLICY, IMAGES, VULN."""

    @property
    def tag(self) -> str:
        """The syslog tag: the original program name."""

    @property
    def needs_root(self) -> bool: ...

    def probe(self, host: Host, settings: Settings, log: Log) -> R: ...

    def summarise(self, result: R, thresholds: Thresholds, verbosity: int, log: Log) -> Report: ...


@dataclass(frozen=True)
class PluginOptions:
    """The plugin's command line, parsed."""

    levels: Mapping[str, str | None] = field(default_factory=dict)  # a f c h m l d w → RANGE
    verbosity: int = 0
    timeout: float | None = 300.0
    mailto: str | None = None
    syslog_socket: str = "/dev/log"
    smtp: str = "localhost:25"


def check_options(options: PluginOptions) -> None:
    """The arguments that are not ranges: ``-t`` positive, ``-M`` one mail address."""
    from podsec.monitor import sinks

    if options.timeout is not None and not (options.timeout > 0 and math.isfinite(options.timeout)):
        raise UsageError(
            _("-t {value}: the timeout must be a positive number of seconds").format(
                value=options.timeout
            )
        )
    if options.mailto is not None:
        sinks.check_recipient(options.mailto, "-M")


def run(
    check: Check[R],
    options: PluginOptions,
    *,
    settings: Callable[[], Settings],
    show: Callable[[Report], None],
    warn: Callable[[str], None],
) -> int:
    """The whole plugin; returns its exit code. ``settings`` are read inside the guard (a
    broken configuration is UNKNOWN too); ``show`` prints the report; ``warn`` gets
    one-line problems (legacy ranges, mail and syslog failures), already tagged."""
    import os

    from podsec.host.paths import Host
    from podsec.monitor import sinks

    syslog = sinks.Syslog(check.tag, options.syslog_socket)

    def probe() -> Report:
        thresholds, warnings = build_thresholds(options.levels)
        for warning in warnings:
            warn(f"{check.tag}: {warning}")
        if check.needs_root and os.geteuid() != 0:
            return Report(check.name, State.UNKNOWN, _("plugin must be run as root user"))
        current = settings()
        result = check.probe(Host(current.root), current, syslog.log)
        return check.summarise(result, thresholds, options.verbosity, syslog.log)

    mailto = options.mailto
    try:
        check_options(options)
    except UsageError as exc:  # bad arguments are UNKNOWN too, before anything runs
        report = Report(check.name, State.UNKNOWN, exc.message)
        mailto = None
    else:
        report = guarded(check.name, probe, options.timeout)
    show(report)
    if mailto and report.state != State.OK:
        try:
            sinks.send_mail(mailto, report.status_line, report.render(), smtp=options.smtp)
        except sinks.MailError as exc:
            warn(f"{check.tag}: {exc.message}")
    for error in syslog.errors:
        warn(f"{check.tag}: {error}")
    syslog.close()
    return int(report.state)
