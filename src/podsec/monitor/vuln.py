"""Vulnerability scans with trivy in client/server mode (``U7S_TRIVY_SERVER``, port 4954).

trivy's **JSON** report is parsed (the original summed numbers out of its table and mailed
an empty stdout). Root scans its own images and every user's, each as that user (their
images live in their rootless storage); a user scans their own. The trivy program is
``trivy`` on PATH, or ``PODSEC_TRIVY`` (``Settings.trivy``).

Syslog as the original meant it: Critical (2) for images with CRITICAL vulnerabilities,
High (3) for HIGH, Fatal (1) when trivy fails (the original logged that at 6). The DB
freshness check reads ``trivy version --format json`` (UpdatedAt / NextUpdate).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from podsec.config import Settings
from podsec.errors import CommandError, PodsecError, UsageError
from podsec.host import run as host_run
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.monitor.accounts import Account, container_accounts
from podsec.monitor.plugin import Log, Perf, Report, State, Thresholds, worst
from podsec.monitor.storage import load_images

NAME = "VULN"
TAG = "podsec-inotify-check-vuln"
BUILD_TAG = "podsec-inotify-build-invulnerable-image"
TRIVY_PORT = 4954
SCAN_TIMEOUT = 600.0


def server_url(server: str) -> str:
    if server.startswith(("http://", "https://")):
        return server
    _host, sep, port = server.rpartition(":")
    if sep and port.isdigit():
        return f"http://{server}"
    return f"http://{server}:{TRIVY_PORT}"


def check_server(server: str) -> str:
    """``HOST``, ``HOST:PORT`` or an http(s) URL with a valid host and port, else UsageError
    naming it (``'bad server!'`` must not become a scan that "finds nothing")."""
    from urllib.parse import urlsplit

    from podsec.host import ssh

    try:
        parts = urlsplit(server_url(server))
        port = parts.port
        ssh.host(parts.hostname or "")
    except (ValueError, UsageError):
        port = 0
    if port is None or not 0 < port < 65536 or any(c.isspace() for c in server):
        raise UsageError(
            _("invalid trivy server {value!r}").format(value=server),
            hint=_("give HOST, HOST:PORT or http://HOST:PORT"),
        )
    return server


@dataclass(frozen=True)
class Vulnerability:
    id: str
    package: str
    installed: str
    fixed: str
    severity: str
    title: str


@dataclass(frozen=True)
class Scan:
    user: str
    image: str
    critical: int = 0
    high: int = 0
    vulnerabilities: tuple[Vulnerability, ...] = ()
    error: str | None = None

    @property
    def code(self) -> int:
        """The original's trivyCheckImage codes: 0 clean, 3 trivy failed, 4 HIGH, 5 CRITICAL."""
        if self.error:
            return 3
        if self.critical:
            return 5
        if self.high:
            return 4
        return 0

    def summary(self) -> str:
        ids = ", ".join(v.id for v in self.vulnerabilities[:5])
        more = len(self.vulnerabilities) - 5
        if more > 0:
            ids += " " + _("and {n} more").format(n=more)
        return _(
            "image {image} of user {user}: {critical} critical and {high} high vulnerabilities ({ids})"
        ).format(image=self.image, user=self.user, critical=self.critical, high=self.high, ids=ids)


def parse_report(text: str, user: str, image: str) -> Scan:
    """A trivy ``--format json`` report (SchemaVersion 2) → counts and the HIGH/CRITICAL list."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        return Scan(user, image, error=_("trivy printed invalid JSON: {err}").format(err=exc))
    if not isinstance(data, dict):
        return Scan(user, image, error=_("trivy printed an unexpected report"))
    vulns: list[Vulnerability] = []
    seen: set[tuple[str, str]] = set()
    for result in data.get("Results") or []:
        if not isinstance(result, dict):
            continue
        for v in result.get("Vulnerabilities") or []:
            if not isinstance(v, dict):
                continue
            sev = str(v.get("Severity", "")).upper()
            if sev not in ("HIGH", "CRITICAL"):
                continue
            key = (str(v.get("VulnerabilityID", "")), str(v.get("PkgName", "")))
            if key in seen:
                continue
            seen.add(key)
            vulns.append(
                Vulnerability(
                    key[0],
                    key[1],
                    str(v.get("InstalledVersion", "")),
                    str(v.get("FixedVersion", "")),
                    sev,
                    str(v.get("Title", "")),
                )
            )
    vulns.sort(key=lambda v: (v.severity != "CRITICAL", v.id))
    return Scan(
        user,
        image,
        sum(1 for v in vulns if v.severity == "CRITICAL"),
        sum(1 for v in vulns if v.severity == "HIGH"),
        tuple(vulns),
    )


def scan_image(
    image: str,
    server: str,
    *,
    user: str = "root",
    as_user: str | None = None,
    trivy: str = "trivy",
) -> Scan:
    argv = [
        trivy,
        "image",
        "--server",
        server_url(server),
        "--format",
        "json",
        "--quiet",
        "--exit-code",
        "0",
        "--severity",
        "HIGH,CRITICAL",
        "--image-src",
        "podman",
        image,
    ]
    try:
        res = host_run.run(argv, as_user=as_user, timeout=SCAN_TIMEOUT)
    except CommandError as exc:
        return Scan(user, image, error=exc.message)
    return parse_report(res.stdout, user, image)


@dataclass(frozen=True)
class DbAge:
    updated: dt.datetime | None
    next_update: dt.datetime | None
    error: str | None = None

    def hours(self, now: dt.datetime) -> float | None:
        return None if self.updated is None else (now - self.updated).total_seconds() / 3600


def _time(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:  # trivy prints nanoseconds; Python parses at most microseconds
        head, _dot, tail = text.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def db_age(trivy: str = "trivy") -> DbAge:
    try:
        res = host_run.run([trivy, "version", "--format", "json"], timeout=60)
        data = json.loads(res.stdout)
    except (CommandError, ValueError) as exc:
        return DbAge(None, None, str(exc))
    db = data.get("VulnerabilityDB") if isinstance(data, dict) else None
    if not isinstance(db, dict):
        return DbAge(None, None)
    return DbAge(_time(db.get("UpdatedAt")), _time(db.get("NextUpdate")))


def targets(host: Host) -> list[tuple[Account, list[str]]]:
    """(account, image names) to scan: everyone's as root, one's own otherwise."""
    out = []
    me = os.geteuid()
    for account in container_accounts(host):
        if me not in (0, account.uid):
            continue
        names: list[str] = []
        for graphroot in account.storages:
            for image in load_images(graphroot):
                names.append(image.names[0] if image.names else image.id)
        if names or account.error:
            out.append((account, sorted(set(names))))
    return out


@dataclass
class VulnResult:
    scans: list[Scan] = field(default_factory=list)
    db: DbAge | None = None
    errors: list[str] = field(default_factory=list)
    trivy_missing: str = ""  # the program looked for, when it is not there


def probe(host: Host, server: str, log: Log | None = None, *, trivy: str = "trivy") -> VulnResult:
    """Scan every account's images with trivy (each user's as that user); each failed,
    CRITICAL or HIGH image is logged as it is found."""
    result = VulnResult()
    program = trivy
    if host_run.which(program) is None:
        # nothing can be scanned: say so before looking at anyone's storage (as a user,
        # other homes and root's storage are not even readable)
        result.trivy_missing = program
        return result
    me = os.geteuid()
    for account, images in targets(host):
        if account.error:
            result.errors.append(
                _("user {user}: {err}").format(user=account.name, err=account.error)
            )
            continue
        # each user scans their own storage; in a --root tree there are no such accounts
        as_user = account.name if me == 0 and account.uid != 0 and host.is_live else None
        for image in images:
            scan = scan_image(image, server, user=account.name, as_user=as_user, trivy=trivy)
            result.scans.append(scan)
            if log is None:
                continue
            if scan.error:
                log(
                    1,
                    "Fatal: "
                    + _("trivy failed on image {image} of user {user}: {err}").format(
                        image=image, user=account.name, err=scan.error
                    ),
                )
            elif scan.critical:
                log(2, "Critical: " + scan.summary())
            elif scan.high:
                log(3, "High: " + scan.summary())
    result.db = db_age(trivy)
    return result


def check(
    host: Host,
    server: str,
    *,
    verbosity: int = 0,
    db_max_age_hours: float = 48.0,
    log: Log | None = None,
    now: dt.datetime | None = None,
) -> Report:
    result = probe(host, server, log)
    return report(result, db_max_age_hours, verbosity, now or dt.datetime.now(dt.UTC))


@dataclass(frozen=True)
class VulnCheck:
    """``check-vuln`` for :func:`podsec.monitor.plugin.run` (no thresholds: the states are
    the original's — CRITICAL found, HIGH found or the DB stale, trivy failed)."""

    server: str | None = None  # default: U7S_TRIVY_SERVER
    db_max_age_hours: float = 48.0
    name: str = NAME
    tag: str = TAG
    needs_root: bool = False

    def probe(self, host: Host, settings: Settings, log: Log) -> VulnResult:
        return probe(
            host, check_server(self.server or settings.trivy_server), log, trivy=settings.trivy
        )

    def summarise(
        self, result: VulnResult, thresholds: Thresholds, verbosity: int, log: Log
    ) -> Report:
        return report(result, self.db_max_age_hours, verbosity, dt.datetime.now(dt.UTC))


def _summary(
    result: VulnResult,
    state: State,
    *,
    critical: list[Scan],
    high: list[Scan],
    failed: list[Scan],
    long: list[str],
) -> str:
    scans = result.scans
    if result.trivy_missing:
        summary = _("trivy not found ({program}): install trivy or set PODSEC_TRIVY").format(
            program=result.trivy_missing
        )
    elif critical or high:
        summary = _(
            "{c} image(s) with CRITICAL and {h} with HIGH vulnerabilities of {n} scanned"
        ).format(c=len(critical), h=len(high), n=len(scans))
    elif failed and len(failed) == len(scans):
        summary = _("trivy failed on all {n} image(s): {err}").format(
            n=len(scans), err=failed[0].error
        )
    elif failed:
        summary = _("trivy failed on {f} of {n} image(s)").format(f=len(failed), n=len(scans))
    elif state == State.WARNING:
        summary = long[0]
    else:
        summary = _("no HIGH or CRITICAL vulnerabilities in {n} image(s)").format(n=len(scans))
    return summary


def report(result: VulnResult, db_max_age_hours: float, verbosity: int, now: dt.datetime) -> Report:
    scans = result.scans
    critical = [s for s in scans if s.critical]
    high = [s for s in scans if s.high and not s.critical]
    failed = [s for s in scans if s.error]
    states = [State.OK]
    if critical:
        states.append(State.CRITICAL)
    if high:
        states.append(State.WARNING)
    if failed or result.errors:
        states.append(State.UNKNOWN)
    long: list[str] = []
    age = result.db.hours(now) if result.db else None
    if age is not None and age > db_max_age_hours:
        states.append(State.WARNING)
        long.append(
            _("trivy vulnerability DB is {hours:.0f} hours old (limit {limit:g})").format(
                hours=age, limit=db_max_age_hours
            )
        )
    next_update = result.db.next_update if result.db else None
    if next_update is not None and (now - next_update).total_seconds() / 3600 > db_max_age_hours:
        states.append(State.WARNING)
        long.append(
            _("trivy vulnerability DB should have been updated {hours:.0f} hours ago").format(
                hours=(now - next_update).total_seconds() / 3600
            )
        )
    if result.trivy_missing:
        states.append(State.UNKNOWN)
    state = worst(states)
    summary = _summary(result, state, critical=critical, high=high, failed=failed, long=long)
    for scan in critical + high:
        long.append(scan.summary())
        if verbosity >= 1:
            long += [
                f"  {v.severity} {v.id} {v.package} {v.installed} -> {v.fixed or '-'} {v.title}"
                for v in scan.vulnerabilities
            ]
    long += [f"{s.user}: {s.image}: {s.error}" for s in failed]
    long += result.errors
    perf = (
        Perf("images", len(scans), min=0),
        Perf("critical_images", len(critical), min=0),
        Perf("high_images", len(high), min=0),
        Perf("failed", len(failed), min=0),
        Perf(
            "db_age",
            None if age is None else round(age, 1),
            uom="h" if age is not None else "",
            warn=f"{db_max_age_hours:g}",
        ),
    )
    return Report(NAME, state, summary, tuple(long), perf)


@dataclass(frozen=True)
class BuildResult:
    code: int
    text: str


def build_and_scan(
    image: str,
    dockerfile: str | None,
    context_dir: str | None,
    build_opts: Sequence[str],
    server: str,
    *,
    log: Log | None = None,
    trivy: str = "trivy",
) -> BuildResult:
    """Build (when a Dockerfile is given), scan, remove a vulnerable image built here."""
    logger = log or (lambda _p, _t: None)
    if dockerfile:
        argv = ["podman", "build", *build_opts, "-f", dockerfile, "-t", image, context_dir or "."]
        try:
            host_run.run(argv, timeout=3600)
        except PodsecError as exc:
            text = _("Building image {image} failed. Image analysis is skipped.").format(
                image=image
            )
            logger(1, f"Fatal: {text} {exc.message}")
            return BuildResult(2, f"{text} {exc.message}")
    user = os.environ.get("USER") or str(os.geteuid())
    scan = scan_image(image, server, user=user, trivy=trivy)
    if scan.error:
        text = _("trivy failed on image {image}: {err}").format(image=image, err=scan.error)
        logger(1, f"Fatal: {text}")
    elif scan.critical or scan.high:
        text = scan.summary()
        logger(2 if scan.critical else 3, ("Critical: " if scan.critical else "High: ") + text)
        text += "\n" + "\n".join(
            f"  {v.severity} {v.id} {v.package} {v.installed} -> {v.fixed or '-'}"
            for v in scan.vulnerabilities
        )
    else:
        text = _("image {image}: no HIGH or CRITICAL vulnerabilities found").format(image=image)
    if dockerfile and scan.code in (3, 4, 5):
        host_run.run(["podman", "rmi", "--force", "--", image], check=False, timeout=300)
        text += "\n" + _("image {image} removed").format(image=image)
    return BuildResult(scan.code, text)
