"""``check-policy``: are the users' container trust settings what podsec requires?

The original's rules and weights (reference §7.2), over root and every account with a
container storage, each judged by its *effective* policy (``~/.config/containers/policy.json``
if present, else ``/etc/containers/policy.json``) and registries.d:

====  ======================================================================
101   non-root user with images, not in group ``podman``
102   default policy is not ``reject`` (users not in ``podman_dev``)
103   no signed scope for ``registry.local``
104   docker scopes that accept images without a signature
105   transports other than docker (``containers-storage`` excepted: podman
      needs it to push, and what is in local storage already passed the policy)
106   ``default-docker`` lookaside is not ``http://sigstore.local:81/sigstore/``
107   podman-only users who are also in ``wheel``
90×   share of podman-only users without ``~/.config/containers/storage.conf``
90×   share of podman-only users able to change ``~/.config/containers``
====  ======================================================================

The metric is the sum of the weights. Fixed defects: no division by zero without podman
users; 107 has its message; "writable" is decided from ownership, mode bits and the
immutable attribute, so nothing is written into the user's directory.
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from podsec.config import Settings
from podsec.errors import PodsecError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.monitor import plugin
from podsec.monitor.accounts import Account, container_accounts
from podsec.monitor.plugin import Perf, Report, State, Thresholds
from podsec.names import GROUP_WHEEL, LOOKASIDE_URL, REGISTRY_HOST

if TYPE_CHECKING:
    from podsec.trust.view import TrustView

NAME = "POLICY"
TAG = "podsec-inotify-check-policy"
ALLOWED_TRANSPORTS = ("docker", "containers-storage")
FS_IOC_GETFLAGS = 0x80086601
FS_IMMUTABLE_FL = 0x00000010

Log = plugin.Log


@dataclass(frozen=True)
class Rule:
    weight: int  # 0 for the 90×share rules
    label: str  # perfdata label (unique in its first 19 characters)
    head: str  # the original's "head" text


def rules() -> dict[str, Rule]:
    return {
        "r101": Rule(101, "not_in_podman_grp", _("outside the podman group")),
        "r102": Rule(102, "default_not_reject", _("capable of receiving any image")),
        "r103": Rule(
            103, "no_signed_local", _("capable of getting a local image without a signature")
        ),
        "r104": Rule(
            104, "unsigned_registries", _("capable of receiving any image without a signature")
        ),
        "r105": Rule(
            105, "other_transports", _("capable of receiving any image via prohibited transport")
        ),
        "r106": Rule(106, "no_local_sigstore", _("not using a local signature store")),
        "r107": Rule(107, "podman_in_wheel", _("included in the wheel group")),
        "storage": Rule(0, "no_storage_conf", _("without a config file")),
        "writable": Rule(0, "writable_config", _("able to change configuration")),
    }


@dataclass(frozen=True)
class UserConfig:
    """What was learnt about one account (``error`` when its configuration is unusable)."""

    account: Account
    policy_path: str = ""
    default_type: str = ""
    signed: tuple[str, ...] = ()
    unsigned: tuple[str, ...] = ()
    transports: tuple[str, ...] = ()
    lookaside: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Finding:
    key: str
    weight: int
    users: tuple[str, ...]
    details: tuple[str, ...] = ()


@dataclass
class Result:
    users: list[UserConfig] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def metric(self) -> int:
        return sum(f.weight for f in self.findings)


class _Cache:
    """The trust views of many users: parsed files shared through trust.view's cache."""

    def __init__(self, host: Host):
        from podsec.trust import view

        self.host = host
        self.files = view.Cache()

    def view(self, account: Account) -> TrustView:
        """``trust.view.TrustView`` of ``account``; PodsecError for a broken file."""
        from podsec.trust import view

        home = None if account.is_root else Path(account.home_text)
        return view.effective(self.host, home, cache=self.files)


def user_config(host: Host, account: Account, cache: _Cache) -> UserConfig:
    from podsec.trust import policy as tpolicy
    from podsec.trust import view

    if account.error:
        return UserConfig(account, error=account.error)
    home = None if account.is_root else Path(account.home_text)
    path, _regd = view.paths(host, home)
    try:
        trust = cache.view(account)
    except PodsecError as exc:
        return UserConfig(account, host.unroot(path), error=exc.message)
    pol, regs = trust.policy, trust.regd
    lookaside = regs.default_docker.url() if regs.default_docker is not None else None
    return UserConfig(
        account,
        host.unroot(path),
        tpolicy.default_type(pol),
        tuple(tpolicy.signed_registries(pol)),
        tuple(tpolicy.unsigned_registries(pol)),
        tuple(t for t in tpolicy.non_docker_transports(pol) if t not in ALLOWED_TRANSPORTS),
        lookaside,
    )


def _immutable(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        buf = fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("l", 0))
        return bool(struct.unpack("l", buf)[0] & FS_IMMUTABLE_FL)
    except OSError:
        return False
    finally:
        os.close(fd)


def _user_may_write(st: os.stat_result, account: Account, gids: set[int]) -> bool:
    if st.st_uid == account.uid:
        return True  # the owner can always chmod it back to writable
    if st.st_gid in gids and st.st_mode & stat.S_IWGRP:
        return True
    return bool(st.st_mode & stat.S_IWOTH)


def config_writable(account: Account, gids: set[int]) -> bool:
    """Could the user change ``~/.config/containers``? Decided without writing anything.

    An existing directory is protected when it is immutable (``chattr +i``: even its owner
    cannot change it) or when the user neither owns it nor has write permission. A missing
    one is a risk when the user may create it (the user's policy.json would then win).
    """
    path = account.config_dir
    try:
        st = path.lstat()
    except FileNotFoundError:
        parent = path.parent
        while True:
            try:
                pst = parent.lstat()
                break
            except FileNotFoundError:
                parent = parent.parent
            except OSError:
                return False
        return not _immutable(parent) and _user_may_write(pst, account, gids)
    except OSError:
        return False
    if stat.S_ISLNK(st.st_mode):
        return True  # a symlink the user may re-point
    if _immutable(path):
        return False
    return _user_may_write(st, account, gids)


def evaluate(host: Host, accounts: list[Account]) -> Result:  # noqa: PLR0912 - one branch per rule
    """Apply the rules to ``accounts`` (root first)."""
    from podsec.host import accounts as host_accounts

    cache = _Cache(host)
    result = Result()
    gid_by_name = {g.name: g.gid for g in host_accounts.groups(host)}
    hits: dict[str, list[str]] = {k: [] for k in rules()}
    details: dict[str, list[str]] = {k: [] for k in rules()}
    podman_only: list[Account] = []
    for account in accounts:
        cfg = user_config(host, account, cache)
        result.users.append(cfg)
        if cfg.error:
            result.errors.append(_("user {user}: {err}").format(user=account.name, err=cfg.error))
            continue
        name = account.name
        if not account.is_root and "podman" not in account.groups:
            hits["r101"].append(name)
        if cfg.default_type != "reject" and not account.podman_dev:
            hits["r102"].append(name)
            details["r102"].append(f"{name}: {cfg.default_type}")
        if not any(s == REGISTRY_HOST or s.startswith(REGISTRY_HOST + "/") for s in cfg.signed):
            hits["r103"].append(name)
        if cfg.unsigned:
            hits["r104"].append(name)
            details["r104"].append(f"{name}: {', '.join(cfg.unsigned)}")
        if cfg.transports:
            hits["r105"].append(name)
            details["r105"].append(f"{name}: {', '.join(cfg.transports)}")
        if (cfg.lookaside or "").rstrip("/") != LOOKASIDE_URL.rstrip("/"):
            hits["r106"].append(name)
            details["r106"].append(f"{name}: {cfg.lookaside or '-'}")
        if account.podman_only:
            podman_only.append(account)
            if not account.is_root and GROUP_WHEEL in account.groups:
                hits["r107"].append(name)
    for account in podman_only:
        if not (account.config_dir / "storage.conf").is_file():
            hits["storage"].append(account.name)
        gids = {gid_by_name[g] for g in account.groups if g in gid_by_name} | {account.gid}
        if config_writable(account, gids):
            hits["writable"].append(account.name)
    for key, rule in rules().items():
        users = hits[key]
        if not users:
            continue
        # 90 × share of podman-only users (no division by zero: users ⊆ podman_only)
        weight = rule.weight or 90 * len(users) // len(podman_only)
        result.findings.append(Finding(key, weight, tuple(users), tuple(details[key])))
    return result


def _names(users: tuple[str, ...] | list[str], limit: int = 0) -> str:
    if limit and len(users) > limit:
        return ", ".join(users[:limit]) + " " + _("and {n} more").format(n=len(users) - limit)
    return ", ".join(users)


def report(
    result: Result, thresholds: Thresholds, verbosity: int, log: Log | None = None
) -> Report:
    """Syslog per rule (the original's format), then the Nagios report of the sum."""
    table = rules()

    def line(finding: Finding) -> Callable[[str], str]:
        return lambda name: (
            f"{name}: {name}({finding.weight}): "
            + _("Users {users} {text}").format(
                users=_names(finding.users), text=table[finding.key].head
            )
        )

    metric = result.metric
    events = [(f.weight, line(f)) for f in result.findings]
    state = plugin.summarise(metric, thresholds, events, result.errors, log)
    offenders = sorted({u for f in result.findings for u in f.users})
    if state == State.OK:
        summary = _("Containerization policies are not violated")
    elif state == State.UNKNOWN:
        # the first failure (it names the file) on the status line, the rest below
        summary = _("{n} user configuration(s) could not be checked: {first}").format(
            n=len(result.errors), first=result.errors[0]
        )
    else:
        summary = _(
            "Violation of user containerization policies (metric {metric}) by users {users}"
        ).format(metric=metric, users=_names(offenders, 5))
    long: list[str] = []
    if verbosity >= 1 and result.findings:
        long.append(_("There are users:"))
        long += [
            f"  [{f.weight}] "
            + _names(f.users, 0 if verbosity >= 2 else 10)
            + " "
            + table[f.key].head
            for f in result.findings
        ]
    if verbosity >= 2:
        for f in result.findings:
            long += [f"    {d}" for d in f.details]
    long += result.errors
    if verbosity >= 3:
        long.append(_("Checked:"))
        long += [f"  {u.account.name}: {u.policy_path or '-'}" for u in result.users]
    perf = [plugin.metric_perf(metric, thresholds), Perf("users", len(result.users), min=0)]
    found = {f.key: f.weight for f in result.findings}
    for key, rule in table.items():
        perf.append(Perf(rule.label, found.get(key, 0), min=0, max=rule.weight or 90))
    if result.errors:
        perf.append(Perf("errors", len(result.errors), min=0))
    return Report(NAME, state, summary, tuple(long), tuple(perf))


def check(host: Host, thresholds: Thresholds, verbosity: int, log: Log | None = None) -> Report:
    """The whole plugin: enumerate accounts, evaluate, report."""
    return report(evaluate(host, container_accounts(host)), thresholds, verbosity, log)


class PolicyCheck:
    """``check-policy`` for :func:`podsec.monitor.plugin.run`."""

    name = NAME
    tag = TAG
    needs_root = True

    def probe(self, host: Host, settings: Settings, log: Log) -> Result:
        return evaluate(host, container_accounts(host))

    def summarise(self, result: Result, thresholds: Thresholds, verbosity: int, log: Log) -> Report:
        return report(result, thresholds, verbosity, log)
