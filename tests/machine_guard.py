"""The clean-room guard around the real suites: the machine must look the same after them.

``python -m tests.machine_guard run -- COMMAND...`` lists what exists under the watched trees,
runs COMMAND, lists again and fails (exit 3, after COMMAND's own failure if any) naming every
path that was created, removed or changed, and every mount that appeared or went away in the
machine's mount namespace below them. ``make test`` runs the packaging and real suites inside
it, ``make demo`` the demo.

Watched: /etc, /usr, /var, /root, /home, /opt, and the node's run-time directories in /run
(/run/podsec, /run/containerd, /run/netns, /run/user). A change is a new or vanished path, or a
different type, mode, owner; for anything but a directory also size, mtime, inode and symlink
target. A directory's mtime is not compared: it only says an entry came or went, and the entry
itself is reported (a test may create and remove a file in /var/tmp and leave nothing).

Deliberately not watched (:data:`IGNORED`, each with its reason): the declared development
cache /var/cache/podsec-dev, apt's and dpkg's own state and logs, pip's cache; nor the empty
/run/netns and /run/user a tool made (:data:`EMPTY_OK`). /tmp is the
tests' scratch space (pytest's tmp_path), /dev, /proc and /sys are not trees of files, and /run
outside the node's directories holds other programs' sockets and pid files.

A walk is one ``find`` per tree, into the filesystems mounted below it too (C, one lstat per
entry: ~430 000 entries, about 3-4 s of CPU on the development machine), two walks per run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures import sandbox

ROOTS = (
    "/etc",
    "/usr",
    "/var",
    "/root",
    "/home",
    "/opt",
    "/run/podsec",
    "/run/containerd",
    "/run/netns",
    "/run/user",
)
IGNORED: Mapping[str, str] = {
    "/var/cache/podsec-dev": "the declared development cache (Kubernetes build, images, trees)",
    "/var/cache/apt": "apt's own state",
    "/var/lib/apt": "apt's own state",
    "/var/log/apt": "apt's own log",
    "/var/lib/dpkg": "dpkg's own state",
    "/var/log/dpkg.log": "dpkg's own log",
    "/var/log/alternatives.log": "dpkg's own log (update-alternatives)",
    "/var/cache/debconf": "debconf's cache, written by dpkg",
    "/root/.cache/pip": "pip's cache (make venv)",
}
# directories a tool makes and never removes: left empty, they are not a change
EMPTY_OK: Mapping[str, str] = {
    "/run/netns": "made by `ip netns add`, kept by `ip netns del`; /run is volatile",
    "/run/user": "systemd-logind's; /run is volatile",
}
FAILED = 3
SHOWN = 40  # paths named in a report; the rest are counted

# a directory: type, mode, owner (no mtime); anything else also size, inode, mtime, target
_DIR_FMT = r"d %m %U %G\t%p\0"
_OTHER_FMT = r"%y %m %U %G %s %i %T@ %l\t%p\0"

Snapshot = set[bytes]


@dataclass(frozen=True)
class Change:
    kind: str  # created | removed | changed
    path: str
    detail: str = ""
    below: int = 0  # created/removed entries below a created/removed directory

    def __str__(self) -> str:
        more = f" (and {self.below} below)" if self.below else ""
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.kind:8} {self.path}{detail}{more}"


def _find_argv(root: str, ignored: Iterable[str]) -> list[str]:
    prune: list[str] = []
    for path in ignored:
        if path.startswith(root.rstrip("/") + "/"):
            prune += [*(["-o"] if prune else []), "-path", path]
    # no -xdev: a tree may hold other filesystems (/var/lib on a disk of its own, the
    # overlays of scripts/test-env), and each is part of the machine
    argv = ["find", root]
    if prune:
        argv += ["(", *prune, ")", "-prune", "-o"]
    return [*argv, "(", "-type", "d", "-printf", _DIR_FMT, ")", "-o", "-printf", _OTHER_FMT]


def snapshot(roots: Sequence[str] = ROOTS, ignored: Iterable[str] = IGNORED) -> Snapshot:
    """Every entry under ``roots`` as one record, ``attributes TAB path`` (absent roots are
    skipped). Records stay bytes in a set: two snapshots differ in a handful of them, and
    only those are parsed."""
    ignored = tuple(ignored)

    def walk(root: str) -> list[bytes]:
        r = subprocess.run(_find_argv(root, ignored), capture_output=True, check=False)
        # find exits 1 when an entry vanished during the walk: what it listed stands
        return r.stdout.split(b"\0")

    present = [r for r in roots if os.path.lexists(r)]
    out: set[bytes] = set()
    # the trees walked side by side (find waits on the disk as much as on the CPU)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for records in pool.map(walk, present):
            out.update(records)
    out.discard(b"")
    return out


def _parse(records: Iterable[bytes]) -> dict[str, str]:
    parsed = {}
    for record in records:
        attrs, _sep, path = record.partition(b"\t")
        parsed[os.fsdecode(path)] = os.fsdecode(attrs)
    return parsed


def mounts(roots: Sequence[str] = ROOTS) -> set[str]:
    """Mount points of the machine's mount namespace at or below ``roots``."""
    found = set()
    machine = Path(f"/proc/{sandbox.machine_pid()}/mountinfo")
    for line in machine.read_text().splitlines():
        target = line.split()[4].replace("\\040", " ")
        if any(target == r or target.startswith(r.rstrip("/") + "/") for r in roots):
            found.add(target)
    return found


def _parent_in(path: str, paths: set[str]) -> bool:
    parent = os.path.dirname(path)
    while parent not in ("/", ""):
        if parent in paths:
            return True
        parent = os.path.dirname(parent)
    return False


def _collapse(kind: str, paths: set[str]) -> list[Change]:
    """A created (removed) directory names itself once, with a count of what is below it."""
    tops = sorted(p for p in paths if not _parent_in(p, paths))
    counts = dict.fromkeys(tops, 0)
    for p in paths:
        parent = os.path.dirname(p)
        while parent not in ("/", ""):
            if parent in counts:
                counts[parent] += 1
                break
            parent = os.path.dirname(parent)
    return [Change(kind, p, below=counts[p]) for p in tops]


def _what_differs(before: str, after: str) -> str:
    names = ("type", "mode", "uid", "gid", "size", "inode", "mtime", "target")
    b, a = before.split(" "), after.split(" ")
    if b[0] != a[0]:
        return f"type {b[0]} → {a[0]}"
    return ", ".join(
        f"{n} {x} → {y}" for n, x, y in zip(names, b, a, strict=False) if x != y and n != "type"
    )


def compare(before: Snapshot, after: Snapshot, ignored: Iterable[str] = IGNORED) -> list[Change]:
    gone, new = _parse(before - after), _parse(after - before)
    changed = [
        Change("changed", p, _what_differs(gone[p], new[p])) for p in sorted(set(gone) & set(new))
    ]
    comings = [
        *_collapse("created", set(new) - set(gone)),
        *_collapse("removed", set(gone) - set(new)),
    ]
    # an ignored path's parent that came (or went) with it and holds nothing else: pip making
    # /root/.cache for /root/.cache/pip is pip's own state too
    ignored = tuple(ignored)
    comings = [
        c
        for c in comings
        if c.below or not (c.path in EMPTY_OK or any(i.startswith(c.path + "/") for i in ignored))
    ]
    return [*comings, *changed]


def compare_mounts(before: set[str], after: set[str]) -> list[Change]:
    return [Change("mounted", p) for p in sorted(after - before)] + [
        Change("unmounted", p) for p in sorted(before - after)
    ]


def report(changes: Sequence[Change], what: str) -> str:
    lines = [f"machine guard: {what} changed the machine outside its sandboxes ({len(changes)}):"]
    lines += [f"  {c}" for c in changes[:SHOWN]]
    if len(changes) > SHOWN:
        lines.append(f"  ... and {len(changes) - SHOWN} more")
    lines.append("  (watched: " + ", ".join(ROOTS) + "; not watched: " + ", ".join(IGNORED) + ")")
    return "\n".join(lines)


def run(command: Sequence[str], roots: Sequence[str] = ROOTS) -> int:
    t0 = time.monotonic()
    before, mounted = snapshot(roots), mounts(roots)
    t1 = time.monotonic()
    rc = subprocess.run(list(command), check=False).returncode
    t2 = time.monotonic()
    changes = compare(before, snapshot(roots)) + compare_mounts(mounted, mounts(roots))
    walks = f"walks {t1 - t0:.1f} s + {time.monotonic() - t2:.1f} s"
    what = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(command))[:120]
    if changes:
        print(report(changes, what), file=sys.stderr, flush=True)
        return rc or FAILED
    print(f"machine guard: {what}: the machine is as it was ({len(before)} paths, {walks})")
    return rc


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.machine_guard", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    p_run = sub.add_parser("run", help="run COMMAND between two listings of the machine")
    p_run.add_argument("--root", action="append", help="watch this tree instead (repeatable)")
    p_run.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    raise SystemExit(run(args.command, tuple(args.root) if args.root else ROOTS))


if __name__ == "__main__":
    main()
