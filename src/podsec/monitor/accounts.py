"""Who has containers on this node: root, every user with a rootless storage, u7s-admin.

Read from the configured tree's ``/etc/passwd`` and ``/etc/group`` once (group membership is
indexed, so 1,000 users cost one pass), with group names matched exactly (the original used
substring ``index()``, so ``podman`` matched ``podman_dev``). A home that cannot be read is
recorded as the account's ``error``, never raised: the other users are still checked.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from podsec.host import accounts as host_accounts
from podsec.host.paths import Host
from podsec.names import GROUP_PODMAN, PODMAN_DEV_ALIASES

ROOT_STORAGE = "/var/lib/containers/storage"
USER_STORAGE = ".local/share/containers/storage"
U7S_STORAGE = ".local/share/usernetes/containers/storage"


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: Path  # real path under the host root
    home_text: str  # as the configured system sees it
    groups: frozenset[str]
    storages: tuple[Path, ...] = ()
    error: str | None = None

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    @property
    def podman_dev(self) -> bool:
        return any(g in self.groups for g in PODMAN_DEV_ALIASES)

    @property
    def podman_only(self) -> bool:
        return GROUP_PODMAN in self.groups and not self.podman_dev

    @property
    def config_dir(self) -> Path:
        """``~/.config/containers`` (for root the system's /etc/containers is used)."""
        return self.home / ".config" / "containers"


def _group_index(host: Host) -> tuple[dict[str, set[str]], dict[int, str]]:
    members: dict[str, set[str]] = {}
    by_gid: dict[int, str] = {}
    for group in host_accounts.groups(host):
        by_gid.setdefault(group.gid, group.name)
        for member in group.members:
            members.setdefault(member, set()).add(group.name)
    return members, by_gid


def _graphroot(conf: Path, home: Path | None) -> Path | None:
    """``graphroot`` from a storage.conf (``$HOME`` expanded), None when absent/unreadable."""
    try:
        with conf.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return None
    value = data.get("storage", {}).get("graphroot") if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        return None
    if home is not None:
        value = value.replace("$HOME", str(home)).replace("${HOME}", str(home))
    return Path(value)


def _existing(paths: list[Path]) -> tuple[Path, ...]:
    out: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key not in seen:
            seen.add(key)
            out.append(path)
    return tuple(out)


def storages_for(host: Host, name: str, uid: int, home: Path) -> tuple[Path, ...]:
    if uid == 0:
        candidates = [host.path(ROOT_STORAGE)]
        conf_root = _graphroot(host.path("/etc/containers/storage.conf"), None)
        if conf_root is not None:
            candidates.insert(0, host.path(str(conf_root)))
        return _existing(candidates)
    candidates = [home / USER_STORAGE, home / U7S_STORAGE]
    conf_root = _graphroot(home / ".config/containers/storage.conf", home)
    if conf_root is not None and conf_root.is_absolute():
        candidates.insert(
            0, conf_root if conf_root.is_relative_to(home) else host.path(str(conf_root))
        )
    return _existing(candidates)


def container_accounts(host: Host, *, include_root: bool = True) -> list[Account]:
    """Root first, then every account whose home holds a container storage.

    Accounts whose home cannot be examined are returned with ``error`` set.
    """
    members, by_gid = _group_index(host)
    out: list[Account] = []
    seen: set[str] = set()
    for user in host_accounts.users(host):
        if user.name in seen:
            continue
        seen.add(user.name)
        groups = set(members.get(user.name, ()))
        if user.gid in by_gid:
            groups.add(by_gid[user.gid])
        if user.uid == 0:
            if include_root and user.name == "root":
                home = host.path(user.home or "/root")
                out.insert(
                    0,
                    Account(
                        user.name,
                        0,
                        user.gid,
                        home,
                        user.home,
                        frozenset(groups),
                        storages_for(host, user.name, 0, home),
                    ),
                )
            continue
        if not user.home.startswith("/") or user.home in ("/", "/nonexistent"):
            continue
        home = host.path(user.home)
        error = None
        try:
            home.stat()
            storages = storages_for(host, user.name, user.uid, home)
            # probe that the home can really be listed (a broken mount, a loop, a file)
            if storages or (home / ".local").exists():
                next(iter(home.iterdir()), None)
        except FileNotFoundError:
            continue
        except OSError as exc:
            error = f"{user.home}: {exc.strerror or exc}"
            storages = ()
        if not storages and error is None:
            continue
        out.append(
            Account(
                user.name,
                user.uid,
                user.gid,
                home,
                user.home,
                frozenset(groups),
                storages,
                error,
            )
        )
    return out
