"""``check-images``: do the images in the node's storages satisfy the trust policy?

For root and every user with a container storage (u7s-admin included, image makers in
``podman_dev`` excluded as in the original), with each user's effective policy and
registries.d:

* 101 — the policy has docker scopes without a signature requirement;
* 102 — an image from a scope of the policy whose signature is missing or does not verify,
  checked like podman would on pull: the lookaside the registries.d really resolves to, the
  requirement's keys, the digest and identity (the original only tried to download
  ``signature-1`` from a URL it built wrongly, so every image was "unsigned");
* 103 — an image from a registry the policy does not name (only the default applies).

Image lists are read from each storage's ``overlay-images/images.json`` (no podman child,
works for every user as root).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from podsec.config import Settings
from podsec.errors import PodsecError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.monitor import plugin
from podsec.monitor.accounts import Account, container_accounts
from podsec.monitor.plugin import Perf, Report, State, Thresholds
from podsec.monitor.policy_check import _Cache
from podsec.monitor.storage import load_images

NAME = "IMAGES"
TAG = "podsec-inotify-check-images"

Log = plugin.Log


def texts() -> dict[int, str]:
    return {
        101: _("users have registry that do not support electronic signatures"),
        102: _("users have unsigned images"),
        103: _("users have images outside of supported policies"),
    }


LABELS = {101: "unsigned_registries", 102: "bad_signatures", 103: "outside_policy"}


@dataclass
class Result:
    hits: dict[int, list[tuple[str, str]]] = field(
        default_factory=lambda: {101: [], 102: [], 103: []}
    )
    images: int = 0
    users: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def metric(self) -> int:
        return sum(w for w, items in self.hits.items() if items)


def evaluate(host: Host, accounts: list[Account]) -> Result:  # noqa: PLR0912 - one branch per rule
    from podsec.trust import policy as tpolicy
    from podsec.trust import reference

    cache = _Cache(host)
    verdicts: dict[tuple[Path, Path, str, str, str], tuple[bool, str]] = {}
    result = Result()
    for account in accounts:
        if account.podman_dev:
            continue
        result.users += 1
        if account.error:
            result.errors.append(
                _("user {user}: {err}").format(user=account.name, err=account.error)
            )
            continue
        try:
            trust = cache.view(account)
        except PodsecError as exc:
            result.errors.append(_("user {user}: {err}").format(user=account.name, err=exc.message))
            continue
        pol, regs = trust.policy, trust.regd
        pol_path, regs_path = trust.policy_path, trust.regd_path
        for reg in tpolicy.unsigned_registries(pol):
            result.hits[101].append((account.name, reg))
        for graphroot in account.storages:
            errors: list[str] = []
            images = load_images(graphroot, errors)
            result.errors += [
                _("user {user}: {err}").format(user=account.name, err=e) for e in errors
            ]
            for image in images:
                result.images += 1
                for name in image.names:
                    try:
                        ref = str(reference.parse(name))
                    except PodsecError:
                        result.hits[103].append((account.name, name))
                        continue
                    scope, _reqs = tpolicy.scope_for(pol, "docker", ref)
                    if scope in (tpolicy.DEFAULT_SCOPE, ""):
                        result.hits[103].append((account.name, name))
                        continue
                    key = (pol_path, regs_path, regs.builtin, ref, image.digest)
                    if key not in verdicts:
                        # signatures (urllib, gpg) only once there is an image to check
                        from podsec.trust import verify

                        try:
                            v = verify.check_image(host, ref, image.digest, pol, regs)
                            verdicts[key] = (v.accepted, v.reason)
                        except PodsecError as exc:
                            verdicts[key] = (False, exc.message)
                    accepted, reason = verdicts[key]
                    if not accepted:
                        result.hits[102].append((account.name, f"{name} ({reason})"))
    return result


def report(
    result: Result, thresholds: Thresholds, verbosity: int, log: Log | None = None
) -> Report:
    table = texts()

    def line(weight: int, items: list[tuple[str, str]]) -> Callable[[str], str]:
        users = ", ".join(sorted({u for u, _i in items}))
        details = ", ".join(f"{u}: {i}" for u, i in items)
        return lambda name: f"{name}: {weight}:: {users} {table[weight]}: {details}"

    metric = result.metric
    events = [(w, line(w, items)) for w, items in result.hits.items() if items]
    state = plugin.summarise(metric, thresholds, events, result.errors, log)
    offenders = sorted({u for items in result.hits.values() for u, _i in items})
    if state == State.OK:
        summary = _("{images} image(s) of {users} user(s) comply with the policies").format(
            images=result.images, users=result.users
        )
    elif state == State.UNKNOWN:
        summary = _("{n} storage(s) or configuration(s) could not be checked: {first}").format(
            n=len(result.errors), first=result.errors[0]
        )
    else:
        shown = ", ".join(offenders[:5]) + (
            " " + _("and {n} more").format(n=len(offenders) - 5) if len(offenders) > 5 else ""
        )
        summary = _(
            "Users {users} have images that violate established policies (metric {metric})"
        ).format(users=shown, metric=metric)
    long: list[str] = []
    if verbosity >= 1:
        for weight, items in result.hits.items():
            if items:
                long.append(f"[{weight}] {table[weight]}:")
                limit = None if verbosity >= 2 else 10
                long += [f"  {u}: {i}" for u, i in items[:limit]]
                if limit is not None and len(items) > limit:
                    long.append("  " + _("and {n} more").format(n=len(items) - limit))
    long += result.errors
    perf = [
        plugin.metric_perf(metric, thresholds),
        Perf("images", result.images, min=0),
        Perf("users", result.users, min=0),
    ]
    perf += [Perf(LABELS[w], len(items), min=0) for w, items in result.hits.items()]
    return Report(NAME, state, summary, tuple(long), tuple(perf))


def check(host: Host, thresholds: Thresholds, verbosity: int, log: Log | None = None) -> Report:
    return report(evaluate(host, container_accounts(host)), thresholds, verbosity, log)


class ImagesCheck:
    """``check-images`` for :func:`podsec.monitor.plugin.run`."""

    name = NAME
    tag = TAG
    needs_root = True

    def probe(self, host: Host, settings: Settings, log: Log) -> Result:
        return evaluate(host, container_accounts(host))

    def summarise(self, result: Result, thresholds: Thresholds, verbosity: int, log: Log) -> Report:
        return report(result, thresholds, verbosity, log)
