"""Follow a growing log across rotation with a persisted cursor.

:class:`Follower` reads a log from where the last run stopped — a :class:`Cursor` (device,
inode, offset) saved beside the caller's state — finishes a file rotated away since (found
among its siblings, ``audit-<time>.log`` as lumberjack names them), then follows the current
file with inotify on its directory. What it looks for is the caller's
:class:`~podsec.monitor.logscan.Scanner`; what it does with the records is the caller's sink.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Generic, TypeVar

from podsec import readers
from podsec.host import files
from podsec.host.logscan import Scanner, Stats, scan_batches
from podsec.i18n import _

T = TypeVar("T")


@dataclass(frozen=True)
class Cursor:
    dev: int
    inode: int
    offset: int

    @classmethod
    def load(cls, path: Path) -> Cursor | None:
        """The saved cursor; None when there is none. A cursor that is not a readable
        regular file of JSON (a directory, FIFO, loop, bad bytes) is refused with
        :class:`~podsec.readers.FileFormatError`: following on would re-report or lose
        records, and the next save could not replace it."""
        data = readers.read_json(path)
        if data is None:
            return None
        try:
            return cls(int(data["dev"]), int(data["inode"]), int(data["offset"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise readers.FileFormatError(
                str(path), _("not a cursor (dev, inode, offset): {err}").format(err=exc)
            ) from exc

    def save(self, path: Path) -> None:
        files.atomic_write(path, json.dumps(asdict(self)), mode=0o644, backup=False)


def _same_file(st: os.stat_result, cursor: Cursor) -> bool:
    return st.st_ino == cursor.inode and st.st_dev == cursor.dev


def rotated_siblings(log: Path) -> list[Path]:
    """Backups of the log in its directory (lumberjack: ``audit-<time>.log``), oldest first."""
    stem = log.stem
    out = []
    try:
        entries = list(os.scandir(log.parent))
    except OSError:
        return []
    for entry in entries:
        if entry.name == log.name or not entry.name.startswith(stem):
            continue
        if entry.name.endswith(".gz") or not entry.is_file(follow_symlinks=False):
            continue
        out.append(Path(entry.path))

    def mtime(p: Path) -> tuple[int, str]:
        try:
            return p.stat().st_mtime_ns, p.name
        except OSError:
            return 0, p.name

    return sorted(out, key=mtime)


class Follower(Generic[T]):
    """Reads ``log`` from the cursor persisted in ``cursor_path`` and keeps following it
    (nagiosplugin's LogTail + Cookie: the cursor is device, inode and offset, so a rotation
    — rename, replacement, copytruncate, several in a row — loses and repeats nothing).

    ``scanner`` finds the records; ``sink`` receives them a batch (one read chunk) at a time,
    before the cursor moves past them (at least once). ``notice(priority, text)`` receives operational
    problems (log missing, replaced by a directory, unparseable lines); ``label`` names the
    log in them ("audit log").
    """

    def __init__(
        self,
        log: Path,
        cursor_path: Path,
        sink: Callable[[list[T]], None],
        scanner: Scanner[T],
        notice: Callable[[int, str], None] | None = None,
        *,
        label: str | None = None,
        save_interval: float = 1.0,
    ):
        self.log = log
        self.cursor_path = cursor_path
        self.sink = sink
        self.notice = notice or (lambda _p, _t: None)
        self.scanner = scanner
        self.label = label or _("log")
        self.save_interval = save_interval
        self._fd = -1
        self._stat: os.stat_result | None = None
        self.offset = 0
        self._last_save = 0.0
        self._problem: str | None = None
        self._garbage_reported = 0
        self._done: list[tuple[int, int]] = []  # rotated files read to the end
        self._pending_since: int | None = None

    # -- cursor
    def _save(self, force: bool = False) -> None:
        if self._stat is None:
            return
        now = time.monotonic()
        if not force and now - self._last_save < self.save_interval:
            return
        self.cursor_path.parent.mkdir(parents=True, exist_ok=True)
        Cursor(self._stat.st_dev, self._stat.st_ino, self.offset).save(self.cursor_path)
        self._last_save = now

    def _deliver(self, batches: Iterator[tuple[list[T], int]], *, move: bool) -> int:
        """Hand each batch to the sink (``move``: then move the cursor past it), then report
        the unparseable lines skipped; return the records delivered."""
        count = 0
        for records, offset in batches:
            if records:
                self.sink(records)
                count += len(records)
            if move:
                self.offset = offset
        if self.scanner.stats.garbage > self._garbage_reported:
            garbage = self.scanner.stats.garbage - self._garbage_reported
            self._garbage_reported = self.scanner.stats.garbage
            self.notice(
                4,
                _("Middle: {count} unparseable line(s) skipped in {path}").format(
                    count=garbage, path=self.log
                ),
            )
        return count

    def _problem_once(self, text: str) -> None:
        if text != self._problem:
            self._problem = text
            self.notice(2, "Critical: " + text)

    # -- files
    def _open_current(self) -> bool:
        """Open the log file; False (and a notice) when it is missing or not a file."""
        path = self.log
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            self._problem_once(_("{log} {path} does not exist").format(log=self.label, path=path))
            return False
        except OSError as exc:
            self._problem_once(
                _("cannot open {log} {path}: {err}").format(
                    log=self.label, path=path, err=exc.strerror
                )
            )
            return False
        st = os.fstat(fd)
        if not _is_regular(st):
            os.close(fd)
            self._problem_once(
                _("{log} {path} is not a regular file").format(log=self.label, path=path)
            )
            return False
        self._close()
        self._fd, self._stat, self.offset = fd, st, 0
        self._problem = None
        return True

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _drain(self, final: bool = False) -> int:
        batches = scan_batches(self._fd, self.offset, self.scanner, final=final)
        return self._deliver(batches, move=True)

    def _drain_path(self, path: Path, offset: int) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return
        try:
            self._deliver(scan_batches(fd, offset, self.scanner, final=True), move=False)
        finally:
            os.close(fd)

    def _drain_backups(self, since_ns: int) -> None:
        current = (self._stat.st_dev, self._stat.st_ino) if self._stat is not None else None
        for backup in rotated_siblings(self.log):
            try:
                bst = backup.stat()
            except OSError:
                continue
            key = (bst.st_dev, bst.st_ino)
            if bst.st_mtime_ns < since_ns or key in self._done or key == current:
                continue
            self._drain_path(backup, 0)
            self._done.append(key)

    def start(self) -> None:
        """Resume from the cursor: finish the file it points at (even if rotated away since),
        then any newer backups, then open the current log."""
        cursor = Cursor.load(self.cursor_path)
        try:
            current = self.log.lstat()
        except OSError:
            current = None
        if cursor is not None and current is not None and _same_file(current, cursor):
            if self._open_current():
                assert self._stat is not None
                if _same_file(self._stat, cursor) and cursor.offset <= self._stat.st_size:
                    self.offset = cursor.offset
            return
        if cursor is not None:
            backups = rotated_siblings(self.log)
            for i, backup in enumerate(backups):
                try:
                    st = backup.stat()
                except OSError:
                    continue
                if _same_file(st, cursor):
                    self._drain_path(backup, cursor.offset)
                    for newer in backups[i + 1 :]:
                        self._drain_path(newer, 0)
                    break
        self._open_current()

    def poll_once(self) -> int:
        """Process what is new now (including a rotation); return records emitted."""
        emitted = 0
        if self._fd < 0:
            if not self._open_current():
                return 0
            if self._pending_since is not None:  # the log was missing right after a rotation
                self._drain_backups(self._pending_since)
                self._pending_since = None
        emitted += self._drain()
        try:
            st = self.log.lstat()
        except OSError:
            st = None
        assert self._stat is not None
        if st is None or st.st_ino != self._stat.st_ino or st.st_dev != self._stat.st_dev:
            # rotated (renamed away, replaced): the old file will not grow any more
            emitted += self._drain(final=True)
            old = os.fstat(self._fd)
            self._close()
            self._stat = None
            self._done.append((old.st_dev, old.st_ino))
            # several rotations since the last look: the backups in between, oldest first;
            # again after opening the new log, in case it was rotated meanwhile
            self._drain_backups(old.st_mtime_ns)
            if st is not None and self._open_current():
                self._drain_backups(old.st_mtime_ns)
                emitted += self._drain()
            else:
                self._pending_since = old.st_mtime_ns
            del self._done[:-256]
        elif st.st_size < self.offset:  # truncated in place (copytruncate)
            self.offset = 0
            emitted += self._drain()
        self._save()
        return emitted

    def catch_up(self) -> Stats:
        self.start()
        self.poll_once()
        self._save(force=True)
        return self.scanner.stats

    def follow(self, should_stop: Callable[[], bool] = lambda: False, idle: float = 30.0) -> None:
        """Follow the log until ``should_stop()``: block on inotify (directory events), with
        ``idle`` seconds as a safety net for filesystems that do not report changes."""
        from podsec.host import inotify

        self.start()
        notify = inotify.Inotify()
        directory = self.log.parent
        wd = -1
        try:
            while not should_stop():
                if wd < 0:
                    with contextlib.suppress(OSError):
                        wd = notify.add(
                            directory,
                            inotify.IN_MODIFY
                            | inotify.IN_CREATE
                            | inotify.IN_MOVED_TO
                            | inotify.IN_MOVED_FROM
                            | inotify.IN_DELETE
                            | inotify.IN_CLOSE_WRITE,
                        )
                self.poll_once()
                events = notify.read(timeout=idle if wd >= 0 else 1.0)
                if any(e.mask & (inotify.IN_IGNORED | inotify.IN_Q_OVERFLOW) for e in events):
                    wd = -1 if any(e.mask & inotify.IN_IGNORED for e in events) else wd
        finally:
            notify.close()
            self.poll_once()
            self._save(force=True)
            self._close()


def _is_regular(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode)
