"""Find the lines that matter in a large log without splitting it into lines.

The log is read a chunk at a time into one reused buffer and each chunk is searched in place
for literals (:class:`Needle`) that mark candidate lines; only candidates are parsed, and a
chunk's records are handed on (:meth:`Scanner.batches`) before the next chunk is read. So a
1,000,000-event log never becomes Python objects all at once: anonymous memory stays at the
buffer's size plus one chunk's records, whatever the file size (issue 17: < 64 MB).

The search is the C library's ``strstr``/``memmem`` (through ctypes, on the buffer in place,
loaded at the first search: a plugin with nothing to read never imports ctypes): glibc reads
JSON at ~5 GB/s where ``bytes.find`` and ``re`` manage 1.2–1.7 (a page-cached log is copied
into the buffer at ~7 GB/s: the search is the catch-up's cost, one pass per needle).
``bytes.find`` is the fallback where neither can be had (:func:`_finder`).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_SEEN_MAX = 20000
# Read 1 MiB at a time: each needle is one pass over the chunk, which stays in the CPU's cache
# (16 MiB chunks made every pass a trip to memory: the catch-up 2.5x slower). The buffer grows
# for a longer line, up to _LINE_MAX; a line longer than that is skipped as garbage.
_CHUNK = 1 << 20
_LINE_MAX = 16 << 20
# Chunks are grouped into batches of at most this many records (or this many bytes read):
# one sink call per chunk cost more than the chunk's search (the sink locks, stats, flushes).
_BATCH_RECORDS = 1000
_BATCH_BYTES = 64 << 20


@dataclass(frozen=True)
class Needle:
    """A literal that marks a candidate line; with ``then``, one of those bytes must follow it
    (``Needle(b'"code":40', b"13")``: 401 or 403, not 404)."""

    literal: bytes
    then: bytes = b""


Buffer = bytes | bytearray | mmap.mmap

_UNSET: Any = object()
# the C library's functions, loaded at the first search (None where they cannot be had)
_MEMMEM: Any = _UNSET
_STRSTR: Any = _UNSET
_STRLEN: Any = _UNSET
_NOT_NUL = re.compile(rb"[^\x00]")


def _c_function(name: str, restype: Any, argtypes: list[Any]) -> Any:
    """A function of the C library (through ctypes), None where it cannot be had."""
    import ctypes

    try:
        fn = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


def _load_c() -> None:
    global _MEMMEM, _STRSTR, _STRLEN  # noqa: PLW0603 - loaded once, on first use
    import ctypes

    if _MEMMEM is _UNSET:
        _MEMMEM = _c_function(
            "memmem",
            ctypes.c_void_p,
            [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t],
        )
    if _STRSTR is _UNSET:
        _STRSTR = _c_function("strstr", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p])
    if _STRLEN is _UNSET:
        _STRLEN = _c_function("strlen", ctypes.c_size_t, [ctypes.c_void_p])


def _address(buf: Buffer) -> int:
    """Where ``buf``'s bytes are (no copy); ``buf`` must stay alive and unresized meanwhile."""
    import ctypes

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
    _load_c()
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
    ):
        self.needles = list(needles)
        self.parse = parse
        self.key = key
        self.stats = Stats()
        self._seen: OrderedDict[str, None] = OrderedDict()

    def candidates(self, buf: Buffer, start: int, end: int) -> dict[int, int]:
        """{line start: line end} of the lines in ``buf[start:end]`` a needle marks."""
        lines: dict[int, int] = {}
        hits: list[tuple[int, int]] = []
        with _finder(buf, end) as find:
            for needle in self.needles:
                literal, then = needle.literal, needle.then
                # one byte: memchr (bytes.find) is several times faster than strstr
                one_byte = len(literal) == 1
                pos = start
                while True:
                    hit = buf.find(literal, pos, end) if one_byte else find(literal, pos)
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

    def batches(self, fd: int, start: int, end: int) -> Iterator[tuple[list[T], int]]:
        """The records of the complete lines of ``fd[start:end]`` in batches (up to
        _BATCH_RECORDS records or _BATCH_BYTES read), each with the offset just past the
        last line it covers; the next chunk is read only after the caller took the batch."""
        batch: list[T] = []
        since = last = start
        for records, last in self._chunks(fd, start, end):
            batch += records
            if len(batch) >= _BATCH_RECORDS or last - since >= _BATCH_BYTES:
                yield batch, last
                batch, since = [], last
        if last > since or batch:
            yield batch, last

    def _chunks(self, fd: int, start: int, end: int) -> Iterator[tuple[list[T], int]]:
        """The records of each chunk of ``fd[start:end]`` and the offset past it."""
        self.stats.bytes += max(end - start, 0)
        if end <= start:
            return
        buf = bytearray(min(_CHUNK, end - start))
        view = memoryview(buf)
        try:
            pos = start
            while pos < end:
                got = os.preadv(fd, [view[: min(len(buf), end - pos)]], pos)
                if got <= 0:
                    return
                cut = got if pos + got >= end else buf.rfind(b"\n", 0, got) + 1
                if cut == 0 and got == len(buf) < _LINE_MAX:  # a long line: a larger buffer
                    view.release()
                    buf = bytearray(min(2 * len(buf), _LINE_MAX))
                    view = memoryview(buf)
                    continue
                if cut == 0:  # one line longer than _LINE_MAX: skip it as unreadable
                    self.stats.garbage += 1
                    nxt = _next_newline(fd, pos + got, end)
                    pos = end if nxt < 0 else nxt + 1
                    yield [], pos
                    continue
                lines = self.candidates(buf, 0, cut)
                yield self.records(_slices(view), lines), pos + cut
                pos += cut
        finally:
            view.release()

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
        """Records in the complete lines of ``fd[start:end]`` (all batches at once)."""
        return [record for batch, _offset in self.batches(fd, start, end) for record in batch]


def _slices(view: memoryview) -> Callable[[int, int], bytes]:
    return lambda start, end: bytes(view[start:end])


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


def scan_batches(
    fd: int, offset: int, scanner: Scanner[T], *, final: bool = False
) -> Iterator[tuple[list[T], int]]:
    """Scan ``fd`` from ``offset`` to its last complete line: (records, offset past them)
    a chunk at a time (:meth:`Scanner.batches`); nothing when there is no complete line.

    With ``final`` a trailing line without newline counts as complete (the file was rotated
    away and will not grow any more).
    """
    size = os.fstat(fd).st_size
    if size <= offset:
        return
    end = size if final else _last_line_end(fd, offset, size)
    if end <= offset:
        return  # a partial last line: wait for the rest
    yield from scanner.batches(fd, offset, end)


def scan_file(
    fd: int, offset: int, scanner: Scanner[T], *, final: bool = False
) -> tuple[list[T], int]:
    """:func:`scan_batches` at once: every record and the new offset."""
    records: list[T] = []
    end = offset
    for batch, end in scan_batches(fd, offset, scanner, final=final):  # noqa: B007
        records.extend(batch)
    return records, end
