"""Verdicts of the admission verifier, remembered per image digest while the trust
configuration they were reached under stays the same.

Verifying a signature costs a lookaside fetch and a GPG verification (tens to hundreds of
milliseconds); every pod of a Deployment, every restart of a Job asks again for the same
digest. The verifier therefore keeps *accepted* verdicts keyed by ``(reference, manifest
digest)`` — the reference because the policy scope and the signature's identity depend on
it, the digest because that is what was verified; a tag is resolved to its digest on every
request, so a moved tag is never served from the cache.

A verdict holds only while everything that decided it is unchanged: ``policy.json``, every
file of ``registries.d`` (and the directory itself: a file added or removed) and every key
file the policy names. :func:`stamp` reads their identity (inode, size, modification and
change times, in nanoseconds) with one ``stat`` each — microseconds per request — and any
difference empties the cache. File times are coarse (a kernel tick): a file changed twice
within one tick, the same size, in place, would look unchanged — so, as git does with its
index, nothing is cached while any input changed less than ``racy`` seconds ago. Refusals are not kept (a signature may be uploaded a moment
later), and an accepted verdict expires after ``ttl`` seconds, so a signature deleted from
the lookaside stops being honoured within that time.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

Stamp = tuple[tuple[str, int, int, int, int], ...]

DEFAULT_TTL = 300.0
DEFAULT_SIZE = 4096
DEFAULT_RACY = 2.0


def stamp(paths: Iterable[Path]) -> Stamp:
    """The identity of each path as it is now (a missing path has its own fixed value)."""
    out = []
    for p in paths:
        try:
            st = Path(p).stat()
        except OSError:
            out.append((str(p), -1, -1, -1, -1))
            continue
        out.append((str(p), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


def config_files(policy_path: Path, registries_d: Path) -> list[Path]:
    """policy.json, the registries.d directory and each of its YAML files."""
    files = [policy_path, registries_d]
    with contextlib.suppress(OSError):
        files += sorted(registries_d.glob("*.yaml"))
    return files


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str


class VerdictCache:
    """Accepted verdicts by ``(reference, digest)``, valid for one :data:`Stamp` (thread-safe:
    the verifier serves each connection in its own thread)."""

    def __init__(
        self,
        ttl: float = DEFAULT_TTL,
        size: int = DEFAULT_SIZE,
        racy: float = DEFAULT_RACY,
        clock: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
    ):
        self.ttl = ttl
        self.size = size
        self.racy_ns = int(racy * 1e9)
        self._clock = clock
        self._wall_ns = wall_ns
        self._lock = threading.Lock()
        self._stamp: Stamp | None = None
        self._entries: OrderedDict[tuple[str, str], tuple[float, Verdict]] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.invalidations = 0

    def _sync(self, current: Stamp) -> None:
        if current != self._stamp:
            if self._entries:
                self.invalidations += 1
            self._entries.clear()
            self._stamp = current

    def get(self, current: Stamp, ref: str, digest: str) -> Verdict | None:
        with self._lock:
            self._sync(current)
            entry = self._entries.get((ref, digest))
            if entry is None or self._clock() - entry[0] > self.ttl:
                self._entries.pop((ref, digest), None)
                self.misses += 1
                return None
            self._entries.move_to_end((ref, digest))
            self.hits += 1
            return entry[1]

    def put(self, current: Stamp, ref: str, digest: str, verdict: Verdict) -> None:
        """Remember an accepted verdict reached under ``current`` (refusals are not kept, nor
        a verdict whose configuration changed while it was being reached)."""
        if not verdict.accepted or self._racy(current):
            return
        with self._lock:
            if current != self._stamp:
                return
            self._entries[(ref, digest)] = (self._clock(), verdict)
            self._entries.move_to_end((ref, digest))
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def _racy(self, current: Stamp) -> bool:
        """Whether an input changed too recently for its times to tell a later change."""
        limit = self._wall_ns() - self.racy_ns
        return any(max(e[3], e[4]) > limit for e in current)

    def __len__(self) -> int:
        return len(self._entries)
