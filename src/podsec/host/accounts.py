"""Users, groups and subordinate id ranges of the configured system.

Reading parses ``<root>/etc/{passwd,group,subuid,subgid,login.defs}`` directly, so it works
for any root prefix. Changes use shadow's own tools (``groupadd``/``useradd``/``usermod``
with ``--prefix`` for a non-``/`` root), except subordinate ranges, which podsec allocates
itself so that a new range never overlaps an existing one in either file.
"""

from __future__ import annotations

import contextlib
import grp
import pwd
import re
from dataclasses import dataclass
from pathlib import Path

from podsec.errors import UsageError
from podsec.host import files
from podsec.host.paths import Host
from podsec.i18n import _

SUBID_COUNT = 65536
NAME_RE = re.compile(r"[a-z_][a-z0-9_-]{0,30}[$]?")


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: str
    shell: str
    gecos: str = ""


@dataclass(frozen=True)
class Group:
    name: str
    gid: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class SubRange:
    owner: str
    start: int
    count: int

    @property
    def end(self) -> int:
        """One past the last id of the range."""
        return self.start + self.count


def valid_name(name: str) -> bool:
    # fullmatch: "$" in a pattern also matches before a trailing newline ("alice\n").
    return bool(NAME_RE.fullmatch(name))


def check_name(name: str) -> str:
    if not valid_name(name):
        raise UsageError(
            _("invalid user or group name {name!r}").format(name=name),
            hint=_("use lower-case letters, digits, '_' and '-', starting with a letter"),
        )
    return name


def _lines(path: Path) -> list[list[str]]:
    text = files.read_text(path) or ""
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def users(host: Host) -> list[User]:
    out = []
    for f in _lines(host.path("/etc/passwd")):
        if len(f) >= 7 and f[2].isdigit() and f[3].isdigit():
            out.append(User(f[0], int(f[2]), int(f[3]), f[5], f[6], f[4]))
    return out


def groups(host: Host) -> list[Group]:
    out = []
    for f in _lines(host.path("/etc/group")):
        if len(f) >= 4 and f[2].isdigit():
            members = tuple(m for m in f[3].split(",") if m)
            out.append(Group(f[0], int(f[2]), members))
    return out


def get_user(host: Host, name: str) -> User | None:
    return next((u for u in users(host) if u.name == name), None)


def get_group(host: Host, name: str) -> Group | None:
    return next((g for g in groups(host) if g.name == name), None)


def user_groups(host: Host, name: str) -> set[str]:
    """Names of the user's primary and supplementary groups."""
    user = get_user(host, name)
    result = {g.name for g in groups(host) if name in g.members}
    if user is not None:
        result |= {g.name for g in groups(host) if g.gid == user.gid}
    return result


def uid(host: Host, name: str) -> int:
    """The numeric id of user ``name`` of ``host`` (for :func:`podsec.host.files.atomic_write`).

    Looked up in the host tree's /etc/passwd (with ``--root``, never the live machine's); on
    the live host through the system's name service.
    """
    return _id(host, name, "user")


def gid(host: Host, name: str) -> int:
    """The numeric id of group ``name`` of ``host`` (looked up as :func:`uid`)."""
    return _id(host, name, "group")


def _id(host: Host, name: str, kind: str) -> int:
    found: int | None = None
    if host.is_live:
        with contextlib.suppress(KeyError):
            found = pwd.getpwnam(name).pw_uid if kind == "user" else grp.getgrnam(name).gr_gid
    elif kind == "user":
        found = user.uid if (user := get_user(host, name)) is not None else None
    else:
        found = group.gid if (group := get_group(host, name)) is not None else None
    if found is None:
        message = (
            _("user {name} does not exist") if kind == "user" else _("group {name} does not exist")
        )
        raise UsageError(message.format(name=name))
    return found


def _prefix(host: Host) -> list[str]:
    return [] if host.is_live else ["--prefix", str(host.root)]


def ensure_group(host: Host, name: str, *, system: bool = True) -> bool:
    """Create the group if missing; return True if it was created."""
    check_name(name)
    if get_group(host, name) is not None:
        return False
    from podsec.host.run import run  # a change: the checks only read /etc

    run(["groupadd", *_prefix(host), *(["--system"] if system else []), "--", name])
    return True


def ensure_user(
    host: Host,
    name: str,
    *,
    system: bool = False,
    home: str | None = None,
    create_home: bool = True,
    primary_group: str | None = None,
    supplementary: tuple[str, ...] = (),
    comment: str = "",
    shell: str = "/bin/bash",
) -> bool:
    """Create the user if missing, then add any missing supplementary groups.

    Returns True if anything changed. An existing user keeps its settings; only group
    membership is added (never removed).
    """
    from podsec.host.run import run  # a change: the checks only read /etc

    check_name(name)
    changed = False
    if get_user(host, name) is None:
        argv = ["useradd", *_prefix(host)]
        if system:
            argv.append("--system")
        if home:
            argv += ["--home-dir", home]
        argv.append("--create-home" if create_home else "--no-create-home")
        if primary_group:
            argv += ["--gid", primary_group]
        elif get_group(host, name) is not None:
            argv += ["--gid", name]
        else:
            argv.append("--user-group")
        if supplementary:
            argv += ["--groups", ",".join(supplementary)]
        if comment:
            argv += ["--comment", comment]
        argv += ["--shell", shell, "--", name]
        run(argv)
        return True
    missing = [g for g in supplementary if g not in user_groups(host, name)]
    if missing:
        run(["usermod", *_prefix(host), "--append", "--groups", ",".join(missing), "--", name])
        changed = True
    return changed


def login_defs(host: Host) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (files.read_text(host.path("/etc/login.defs")) or "").splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#"):
            values[parts[0]] = parts[1]
    return values


def subid_ranges(host: Host, kind: str) -> list[SubRange]:
    """Ranges of ``/etc/subuid`` (kind "uid") or ``/etc/subgid`` (kind "gid")."""
    out = []
    for f in _lines(host.path(f"/etc/sub{kind}")):
        if len(f) == 3 and f[1].isdigit() and f[2].isdigit():
            out.append(SubRange(f[0], int(f[1]), int(f[2])))
    return out


def _first_gap(taken: list[SubRange], minimum: int, count: int, maximum: int) -> int:
    start = minimum
    for r in sorted(taken, key=lambda r: r.start):
        if r.end <= start:
            continue
        if r.start >= start + count:
            break
        start = r.end
    if start + count - 1 > maximum:
        raise UsageError(_("no free subordinate id range of {count} ids left").format(count=count))
    return start


def ensure_subids(host: Host, user: str, count: int = SUBID_COUNT) -> tuple[SubRange, SubRange]:
    """Give ``user`` a subuid and a subgid range of at least ``count`` ids.

    An existing range of sufficient size is kept. A new range starts at the first id (from
    ``SUB_UID_MIN``/``SUB_GID_MIN``, default 100000) free in *both* files, so the user gets
    the same numbers for uids and gids and overlaps nobody.
    """
    defs = login_defs(host)
    result: dict[str, SubRange] = {}
    uid_ranges, gid_ranges = subid_ranges(host, "uid"), subid_ranges(host, "gid")
    mine = {
        "uid": next((r for r in uid_ranges if r.owner == user and r.count >= count), None),
        "gid": next((r for r in gid_ranges if r.owner == user and r.count >= count), None),
    }
    others = [r for r in uid_ranges + gid_ranges if r.owner != user]
    minimum = max(int(defs.get("SUB_UID_MIN", "100000")), int(defs.get("SUB_GID_MIN", "100000")))
    maximum = min(
        int(defs.get("SUB_UID_MAX", "600100000")), int(defs.get("SUB_GID_MAX", "600100000"))
    )
    shared_start: int | None = None
    for kind in ("uid", "gid"):
        existing = mine[kind]
        if existing is not None:
            result[kind] = existing
            continue
        if shared_start is None:
            shared_start = _first_gap(others, minimum, count, maximum)
        new = SubRange(user, shared_start, count)
        path = host.path(f"/etc/sub{kind}")
        text = files.read_text(path) or ""
        kept = [line for line in text.splitlines() if line.split(":")[0] != user]
        kept.append(f"{user}:{new.start}:{new.count}")
        files.atomic_write(path, "\n".join(kept) + "\n", mode=0o644)
        result[kind] = new
    return result["uid"], result["gid"]
