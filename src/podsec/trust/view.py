"""A user's effective trust configuration: the files podman/skopeo read for that user.

containers/image picks ``~/.config/containers/policy.json`` if it exists, else
``/etc/containers/policy.json``; ``~/.config/containers/registries.d`` if it exists, else
``/etc/containers/registries.d``; and, where registries.d names no lookaside, the built-in
one: ``/var/lib/containers/sigstore`` for root, ``~/.local/share/containers/sigstore`` for
everyone else. :func:`effective` answers that once, rooted at ``host`` (``--root``), and
keeps the parsed files in a cache that re-reads a file when it changes — so 1,000 users who
share the system files parse them once, and a long-running webhook sees an edited policy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podsec.errors import PodsecError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.names import SYSTEM_REGISTRIES_D, USER_REGISTRIES_D
from podsec.trust import policy as pol
from podsec.trust import registries_d as rd


@dataclass(frozen=True)
class TrustView:
    policy_path: Path  # host path (under --root)
    policy: pol.Policy
    regd_path: Path
    regd: rd.RegistriesD
    policy_shown: str  # the path as the node sees it (for messages)
    regd_shown: str

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.regd.warnings

    @property
    def default_lookaside(self) -> str | None:
        """The default-docker lookaside registries.d sets (None: the built-in one)."""
        return self.regd.default_docker.url() if self.regd.default_docker else None


@dataclass(frozen=True)
class UserTrust:
    """``podsec policy show``: whose view, and the view."""

    user: str
    view: TrustView

    def as_dict(self) -> dict[str, Any]:
        v = self.view
        return {
            "user": self.user,
            "policy_file": v.policy_shown,
            "registries_d": v.regd_shown,
            "default_lookaside": v.default_lookaside or v.regd.builtin,
            "warnings": list(v.warnings),
            "policy": pol.to_json(v.policy),
            "signed_registries": pol.signed_registries(v.policy),
            "unsigned_registries": pol.unsigned_registries(v.policy),
        }


def paths(host: Host, home: Path | None) -> tuple[Path, Path]:
    """(policy.json, registries.d) containers/image reads for a user with ``home``
    (None: only the system files, as for root under podsec's rules)."""
    policy_path = pol.effective_policy_path(host, home)
    regd = host.path(str(Path(home) / USER_REGISTRIES_D)) if home is not None else None
    if regd is None or not regd.is_dir():
        regd = host.path(SYSTEM_REGISTRIES_D)
    return policy_path, regd


def builtin_lookaside(host: Host, home: Path | None, rootless: bool) -> str:
    """The built-in lookaside of this user (file:// URL as the node sees it)."""
    if rootless and home is not None:
        return rd.user_builtin(home)
    return rd.ROOT_BUILTIN


_Stamp = tuple[object, ...]


def _stamp(path: Path) -> _Stamp:
    try:
        st = path.stat()
    except OSError:
        return ("missing",)
    if path.is_dir():
        entries: list[object] = [st.st_mtime_ns]
        try:
            for f in sorted(path.iterdir()):
                if f.name.endswith(".yaml"):
                    fs = f.stat()
                    entries.append((f.name, fs.st_mtime_ns, fs.st_size, fs.st_ino))
        except OSError:
            entries.append("unreadable")
        return tuple(entries)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class Cache:
    """Parsed policies and registries.d by path, re-read when the files change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._policies: dict[Path, tuple[_Stamp, pol.Policy | PodsecError]] = {}
        self._regds: dict[tuple[Path, str], tuple[_Stamp, rd.RegistriesD | PodsecError]] = {}

    def policy(self, host: Host, path: Path) -> pol.Policy:
        stamp = _stamp(path)
        with self._lock:
            hit = self._policies.get(path)
        if hit is None or hit[0] != stamp:
            value: pol.Policy | PodsecError
            try:
                value = pol.load(path, host.unroot(path))
            except PodsecError as exc:
                value = exc
            except OSError as exc:
                value = PodsecError(
                    _("{file}: {err}").format(file=host.unroot(path), err=exc.strerror or exc)
                )
            hit = (stamp, value)
            with self._lock:
                self._policies[path] = hit
        if isinstance(hit[1], PodsecError):
            raise hit[1]
        return hit[1]

    def registries_d(self, host: Host, path: Path, builtin: str) -> rd.RegistriesD:
        stamp = _stamp(path)
        key = (path, builtin)
        with self._lock:
            hit = self._regds.get(key)
        if hit is None or hit[0] != stamp:
            value: rd.RegistriesD | PodsecError
            try:
                value = rd.load_dir(path, host.unroot(path), builtin=builtin)
            except PodsecError as exc:
                value = exc
            except OSError as exc:
                value = PodsecError(
                    _("{file}: {err}").format(file=host.unroot(path), err=exc.strerror or exc)
                )
            hit = (stamp, value)
            with self._lock:
                self._regds[key] = hit
        if isinstance(hit[1], PodsecError):
            raise hit[1]
        return hit[1]


CACHE = Cache()


def effective(
    host: Host, home: Path | None, *, rootless: bool | None = None, cache: Cache | None = None
) -> TrustView:
    """The trust view of the user whose home is ``home`` (None: root/system view).

    ``rootless`` (default: ``home`` is given) selects the per-user built-in lookaside.
    Raises :class:`~podsec.errors.PodsecError` naming the file for a broken policy or
    registries.d.
    """
    cache = cache or CACHE
    if rootless is None:
        rootless = home is not None
    policy_path, regd_path = paths(host, home)
    policy = cache.policy(host, policy_path)
    regd = cache.registries_d(host, regd_path, builtin_lookaside(host, home, rootless))
    return TrustView(
        policy_path, policy, regd_path, regd, host.unroot(policy_path), host.unroot(regd_path)
    )


def caller_home(host: Host) -> Path | None:
    """The home whose trust files apply to the running user: ``Path.home()`` on the live
    system; under ``--root`` none (the tree's system view — the caller's home is not in it)."""
    return Path.home() if host.is_live else None


def caller_paths(host: Host) -> tuple[Path, Path]:
    """(policy.json, registries.d) of the calling user, rooted at ``--root``."""
    return paths(host, caller_home(host))


def user_home(host: Host, user: str | None) -> tuple[str, Path | None]:
    """(name, home) of ``user`` (default: the running user) for a "whose view" option; an
    unknown running user has no home (the system view), an unknown named user is an error."""
    import getpass

    from podsec.errors import NotFoundError
    from podsec.host import accounts

    name = user or getpass.getuser()
    entry = accounts.get_user(host, name)
    if entry is None:
        if user:
            raise NotFoundError(_("user {name} does not exist").format(name=name))
        return name, None
    return name, Path(entry.home)


def for_user(host: Host, user: str | None) -> UserTrust:
    """The effective trust view of ``user`` (default: the running user; see
    :func:`user_home`)."""
    name, home = user_home(host, user)
    return UserTrust(name, effective(host, home))
