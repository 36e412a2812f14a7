"""Find the lines that matter in a large log without splitting it into lines.

A large range of the log is mapped (a window at a time) and a small one — a follower's
increment — read into a buffer; either is searched in place for literals (:class:`Needle`)
that mark candidate lines, and only candidates are parsed. A 1,000,000-event log never
becomes Python objects and is never copied into the process, so anonymous memory stays small
whatever the file size; a large catch-up scans its second half in a forked child (2 cores:
the catch-up is bound by the byte scan, not by parsing).

The search is the C library's ``strstr``/``memmem`` (through ctypes, on the buffer in place):
glibc reads JSON at ~8 and ~4.5 GB/s where ``bytes.find`` and ``re`` manage 1.3–1.7 (a
page-cached log is read at ~8 GB/s: the scan is the catch-up's cost). ``bytes.find`` is the
fallback where neither can be had (:func:`_finder`).
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import mmap
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_SEEN_MAX = 20000
_PARALLEL_MIN = 64 << 20
_CHUNK = 16 << 20
_MAP_MIN = 4 << 20  # smaller ranges (a follower's increments) are read, not mapped
_WINDOW = 256 << 20  # mapped at a time (a multiple of the allocation granularity)


@dataclass(frozen=True)
class Needle:
    """A literal that marks a candidate line; with ``then``, one of those bytes must follow it
    (``Needle(b'"code":40', b"13")``: 401 or 403, not 404)."""

    literal: bytes
    then: bytes = b""


Buffer = bytes | bytearray | mmap.mmap


def _c_function(name: str, restype: Any, argtypes: list[Any]) -> Any:
    """A function of the C library (through ctypes), None where it cannot be had."""
    try:
        fn = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


_MEMMEM = _c_function(
    "memmem", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
)
_STRSTR = _c_function("strstr", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p])
_STRLEN = _c_function("strlen", ctypes.c_size_t, [ctypes.c_void_p])
_NOT_NUL = re.compile(rb"[^\x00]")


def _address(buf: Buffer) -> int:
    """Where ``buf``'s bytes are (no copy); ``buf`` must stay alive and unresized meanwhile."""
    if not isinstance(buf, bytes):
        return ctypes.addressof(ctypes.c_char.from_buffer(buf))
    address = ctypes.cast(ctypes.c_char_p(buf), ctypes.c_void_p).value
    assert address is not None
    return address


Find = Callable[[bytes, int], int]


@contextlib.contextmanager
def _finder(buf: Buffer, end: int) -> Iterator[Find]:
    """``find(literal, start)`` over ``buf[:end]``: an offset or -1.

    The fastest is the C library's ``strstr`` (SSE2/AVX2 in glibc: ~8 GB/s over JSON, twice
    ``memmem``), which needs a terminating NUL: in a writable buffer whose region ends with a
    newline, that newline is replaced by NUL for the search (no needle spans a newline) and
    put back after it; a NUL in the log itself only makes ``strstr`` stop early, and the
    search goes on after it. Otherwise ``memmem``, then ``bytes.find``.
    """
    if (
        isinstance(buf, bytearray | mmap.mmap)
        and _STRSTR
        and _STRLEN
        and end > 0
        and buf[end - 1] == 0x0A
    ):
        writable = buf
        strstr, strlen, base = _STRSTR, _STRLEN, _address(buf)
        last = end - 1

        def find_str(literal: bytes, start: int) -> int:
            pos = start
            while pos < last:
                hit = strstr(base + pos, literal)
                if hit:
                    return int(hit) - base
                pos += strlen(base + pos)  # the NUL strstr stopped at
                if pos >= last:
                    return -1
                more = _NOT_NUL.search(buf, pos, last)  # a run of NULs in the log
                if more is None:
                    return -1
                pos = more.start()
            return -1

        writable[last] = 0
        try:
            yield find_str
        finally:
            writable[last] = 0x0A
        return
    if _MEMMEM is not None and buf:
        memmem, base = _MEMMEM, _address(buf)

        def find_mem(literal: bytes, start: int) -> int:
            if end - start < len(literal):
                return -1
            hit = memmem(base + start, end - start, literal, len(literal))
            return -1 if not hit else int(hit) - base

        yield find_mem
        return
    yield lambda literal, start: buf.find(literal, start, end)


@dataclass
class Stats:
    bytes: int = 0
    candidates: int = 0
    records: int = 0
    garbage: int = 0


class Scanner(Generic[T]):
    """Finds records in a log of lines: ``needles`` pick the candidate lines, ``parse(line)``
    turns one into a record or None (raising ValueError for a line it cannot read: counted as
    garbage), and ``key(record)``, when given, names a record so that one seen again (the same
    line in a rotated copy) is reported once."""

    def __init__(
        self,
        needles: Sequence[Needle],
        parse: Callable[[bytes], T | None],
        *,
        key: Callable[[T], str] | None = None,
        parallel: bool = True,
    ):
        self.needles = list(needles)
        self.parse = parse
        self.key = key
        self.parallel = parallel
        self.stats = Stats()
        self._seen: OrderedDict[str, None] = OrderedDict()

    def candidates(self, buf: Buffer, start: int, end: int) -> dict[int, int]:
        """{line start: line end} of the lines in ``buf[start:end]`` a needle marks."""
        lines: dict[int, int] = {}
        hits: list[tuple[int, int]] = []
        with _finder(buf, end) as find:
            for needle in self.needles:
                literal, then = needle.literal, needle.then
                pos = start
                while True:
                    hit = find(literal, pos)
                    if hit < 0:
                        break
                    after = hit + len(literal)
                    if then and (after >= end or buf[after] not in then):
                        pos = hit + 1
                        continue
                    hits.append((hit, after))
                    line_end = buf.find(b"\n", after, end)
                    pos = end if line_end < 0 else line_end + 1
        # line bounds once the buffer is whole again (the search may hold its last newline)
        for hit, after in hits:
            newline = buf.rfind(b"\n", start, hit)
            line_start = newline + 1 if newline >= 0 else start
            line_end = buf.find(b"\n", after, end)
            lines[line_start] = end if line_end < 0 else line_end
        return lines

    def range_candidates(self, fd: int, start: int, end: int) -> dict[int, int]:
        """Candidate lines (absolute offsets) of ``fd[start:end]``: a large range through
        mapped windows, a small one (a follower's increment) read into a buffer."""
        if end - start >= _MAP_MIN:
            lines = self._mapped_candidates(fd, start, end)
            if lines is not None:
                return lines
        return self._read_candidates(fd, start, end)

    def _mapped_candidates(self, fd: int, start: int, end: int) -> dict[int, int] | None:
        """The file mapped a window at a time and searched in place: no copy into our memory
        (its pages are the page cache's, not anonymous ones), and the window bounds how much
        of it is mapped at once. None when the file cannot be mapped."""
        lines: dict[int, int] = {}
        pos = start
        while pos < end:
            base = pos - pos % mmap.ALLOCATIONGRANULARITY
            length = min(end - base, _WINDOW)
            try:
                # private and writable only so ctypes may take its address; never written
                window = mmap.mmap(
                    fd,
                    length,
                    flags=mmap.MAP_PRIVATE,
                    prot=mmap.PROT_READ | mmap.PROT_WRITE,
                    offset=base,
                )
            except (OSError, ValueError, OverflowError):
                return None if pos == start else lines | self._read_candidates(fd, pos, end)
            try:
                lo = pos - base
                cut = length if base + length >= end else window.rfind(b"\n", lo, length) + 1
                if cut <= lo:  # one line longer than the window: skip it as unreadable
                    self.stats.garbage += 1
                    nxt = _next_newline(fd, base + length, end)
                    pos = end if nxt < 0 else nxt + 1
                    continue
                for s, e in self.candidates(window, lo, cut).items():
                    lines[base + s] = base + e
                pos = base + cut
            finally:
                window.close()
        return lines

    def _read_candidates(self, fd: int, start: int, end: int) -> dict[int, int]:
        """Candidate lines of ``fd[start:end]``, read in chunks into one reused buffer."""
        lines: dict[int, int] = {}
        buf = bytearray(min(_CHUNK, max(end - start, 1)))
        view = memoryview(buf)
        pos = start
        while pos < end:
            want = min(len(buf), end - pos)
            got = os.preadv(fd, [view[:want]], pos)
            if got <= 0:
                break
            cut = got if pos + got >= end else buf.rfind(b"\n", 0, got) + 1
            if cut == 0:  # one line longer than the buffer: skip it as unreadable
                self.stats.garbage += 1
                nxt = _next_newline(fd, pos + got, end)
                pos = end if nxt < 0 else nxt + 1
                continue
            for s, e in self.candidates(buf, 0, cut).items():
                lines[pos + s] = pos + e
            pos += cut
        return lines

    def parallel_candidates(self, fd: int, start: int, end: int) -> dict[int, int]:
        """:meth:`range_candidates` with the second half scanned by a forked child (2 cores:
        the catch-up of a large log is bound by the byte scan, not by JSON)."""
        nxt = _next_newline(fd, start + (end - start) // 2, end)
        middle = nxt + 1 if nxt >= 0 else end
        if middle >= end:
            return self.range_candidates(fd, start, end)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: scan [middle, end), send the offsets, leave without cleanup
            code = 1
            try:
                os.close(read_fd)
                found = self.range_candidates(fd, middle, end)
                data = array.array("q", [v for item in found.items() for v in item]).tobytes()
                out = memoryview(data)
                while out:
                    out = out[os.write(write_fd, out) :]
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        try:
            lines = self.range_candidates(fd, start, middle)
            chunks = []
            while chunk := os.read(read_fd, 1 << 20):
                chunks.append(chunk)
        finally:
            os.close(read_fd)
            _pid, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            return lines | self.range_candidates(fd, middle, end)  # the child failed
        values = array.array("q")
        values.frombytes(b"".join(chunks))
        lines.update(zip(values[::2], values[1::2], strict=True))
        return lines

    def records(self, read: Callable[[int, int], bytes], lines: dict[int, int]) -> list[T]:
        """Parse the candidate lines (``read(start, end)`` returns one) into new records."""
        out: list[T] = []
        parse, key_of = self.parse, self.key
        for line_start in sorted(lines):
            self.stats.candidates += 1
            try:
                record = parse(read(line_start, lines[line_start]))
            except (ValueError, UnicodeDecodeError, RecursionError):
                self.stats.garbage += 1
                continue
            if record is None:
                continue
            key = key_of(record) if key_of is not None else ""
            if key:
                if key in self._seen:
                    continue
                self._seen[key] = None
                if len(self._seen) > _SEEN_MAX:
                    self._seen.popitem(last=False)
            out.append(record)
        self.stats.records += len(out)
        return out

    def scan(self, buf: bytes, start: int, end: int) -> list[T]:
        """Records in the complete lines of ``buf[start:end]``."""
        self.stats.bytes += end - start
        return self.records(lambda s, e: buf[s:e], self.candidates(buf, start, end))

    def scan_fd(self, fd: int, start: int, end: int) -> list[T]:
        """Records in the complete lines of ``fd[start:end]``."""
        self.stats.bytes += end - start
        if self.parallel and end - start >= _PARALLEL_MIN and (os.cpu_count() or 1) > 1:
            lines = self.parallel_candidates(fd, start, end)
        else:
            lines = self.range_candidates(fd, start, end)
        return self.records(lambda s, e: os.pread(fd, e - s, s), lines)


def _next_newline(fd: int, pos: int, end: int) -> int:
    """Offset of the first newline in ``fd[pos:end]``, -1 if none."""
    while pos < end:
        data = os.pread(fd, min(1 << 20, end - pos), pos)
        if not data:
            return -1
        i = data.find(b"\n")
        if i >= 0:
            return pos + i
        pos += len(data)
    return -1


def _last_line_end(fd: int, start: int, end: int) -> int:
    """Offset just past the last newline in ``fd[start:end]``, ``start`` if none."""
    pos = end
    while pos > start:
        lo = max(start, pos - (1 << 20))
        data = os.pread(fd, pos - lo, lo)
        i = data.rfind(b"\n")
        if i >= 0:
            return lo + i + 1
        pos = lo
    return start


def scan_file(
    fd: int, offset: int, scanner: Scanner[T], *, final: bool = False
) -> tuple[list[T], int]:
    """Scan ``fd`` from ``offset`` to its last complete line; return records and new offset.

    With ``final`` a trailing line without newline counts as complete (the file was rotated
    away and will not grow any more).
    """
    size = os.fstat(fd).st_size
    if size <= offset:
        return [], offset
    end = size if final else _last_line_end(fd, offset, size)
    if end <= offset:
        return [], offset  # a partial last line: wait for the rest
    return scanner.scan_fd(fd, offset, end), end
