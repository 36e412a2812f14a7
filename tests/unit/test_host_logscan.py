"""The log scanner's byte search: literals found in place (strstr, memmem), the byte that must
follow a needle, read chunks of any size finding the same lines, lines across chunk edges and
longer than a chunk, and the bytes.find fallback."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import pytest

from podsec.host import logscan


def scanner(*needles: logscan.Needle) -> logscan.Scanner[bytes]:
    return logscan.Scanner(list(needles), lambda line: line)


def lines_of(path: Path, sc: logscan.Scanner[bytes]) -> list[bytes]:
    fd = os.open(path, os.O_RDONLY)
    try:
        records, offset = logscan.scan_file(fd, 0, sc)
    finally:
        os.close(fd)
    assert offset == path.stat().st_size
    return records


@pytest.fixture
def log(tmp_path: Path) -> Path:
    rows = []
    for i in range(3000):
        code = (200, 404, 403, 401, 409)[i % 5]
        pad = "x" * (i * 7 % 300)  # lines of many lengths: every window edge falls somewhere new
        rows.append(f'{{"auditID":"a{i}","pad":"{pad}","responseStatus":{{"code":{code}}}}}')
    path = tmp_path / "audit.log"
    path.write_text("\n".join(rows) + "\n")
    return path


CODES = logscan.Needle(b'"code":40', b"13")


def test_then_keeps_401_and_403_only(log: Path) -> None:
    got = lines_of(log, scanner(CODES))
    assert len(got) == 2 * 3000 // 5
    assert all(b'"code":403' in line or b'"code":401' in line for line in got)
    assert not any(b'"code":404' in line for line in got)


@pytest.mark.parametrize("chunk", [509, 4096, 65536, 1 << 24])
def test_chunks_of_any_size_find_the_same_lines(
    log: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    want = [line for line in log.read_bytes().splitlines() if b'"code":403' in line]
    monkeypatch.setattr(logscan, "_CHUNK", chunk)
    sc = scanner(logscan.Needle(b'"code":403'))
    assert lines_of(log, sc) == want
    assert sc.stats.garbage == 0


def test_batches_come_a_chunk_at_a_time(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logscan, "_CHUNK", 8192)
    monkeypatch.setattr(logscan, "_BATCH_RECORDS", 1)  # every chunk's records handed on
    size = log.stat().st_size
    fd = os.open(log, os.O_RDONLY)
    try:
        batches = list(scanner(CODES).batches(fd, 0, size))
    finally:
        os.close(fd)
    offsets = [offset for _records, offset in batches]
    assert len(batches) >= size // 8192 and offsets == sorted(offsets) and offsets[-1] == size
    data = log.read_bytes()
    assert all(data[offset - 1 : offset] == b"\n" for offset in offsets)
    assert sum(len(records) for records, _offset in batches) == 2 * 3000 // 5


def test_a_line_longer_than_the_buffer_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The buffer grows for a long line (a RequestResponse event of a large object), up to
    _LINE_MAX; a longer line is skipped and counted as garbage."""
    monkeypatch.setattr(logscan, "_CHUNK", 4096)
    monkeypatch.setattr(logscan, "_LINE_MAX", 65536)
    path = tmp_path / "audit.log"
    long = b'{"x":"' + b"y" * 30000 + b'","code":403}'
    huge = b'{"x":"' + b"y" * (3 * 65536) + b'","code":403}'
    path.write_bytes(b'{"id":1,"code":403}\n' + long + b"\n" + huge + b'\n{"id":2,"code":403}\n')
    sc = scanner(CODES)
    assert lines_of(path, sc) == [b'{"id":1,"code":403}', long, b'{"id":2,"code":403}']
    assert sc.stats.garbage == 1


def test_without_memmem_the_same_lines(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_memmem = lines_of(log, scanner(CODES))
    monkeypatch.setattr(logscan, "_MEMMEM", None)
    assert lines_of(log, scanner(CODES)) == with_memmem


def test_search_in_bytes_bytearray_and_a_map(tmp_path: Path) -> None:
    data = b"aa\nb needle c\nneedle\nd\n"
    sc = scanner(logscan.Needle(b"needle"))
    want = {3: 13, 14: 20}
    assert sc.candidates(data, 0, len(data)) == want
    assert sc.candidates(bytearray(data), 0, len(data)) == want
    path = tmp_path / "f"
    path.write_bytes(data)
    with path.open("r+b") as fh:
        window = mmap.mmap(fh.fileno(), 0)
        try:
            assert sc.candidates(window, 0, len(data)) == want
            # the end bounds the search: a needle crossing it is not seen
            assert sc.candidates(window, 0, 17) == {3: 13}
        finally:
            window.close()


def test_nul_bytes_in_the_log_do_not_hide_lines(tmp_path: Path) -> None:
    """strstr stops at a NUL: the search goes on after it (a crash can leave zeroed blocks)."""
    data = (
        b'{"id":1,"code":403}\n'
        + b"\0" * 10000
        + b'\n{"id":2,"code":401}\n{"id":3,"code":200}\x00{"id":4,"code":403}\n'
    )
    path = tmp_path / "audit.log"
    path.write_bytes(data)
    want = [
        b'{"id":1,"code":403}',
        b'{"id":2,"code":401}',
        b'{"id":3,"code":200}\x00{"id":4,"code":403}',
    ]
    sc = scanner(CODES)
    assert sc.candidates(bytearray(data), 0, len(data)) == sc.candidates(data, 0, len(data))
    assert lines_of(path, sc) == want


@pytest.mark.parametrize("kind", ["bytes", "bytearray"])
@pytest.mark.parametrize("tail", [b"\n", b""])
def test_every_search_path_finds_the_same(kind: str, tail: bytes) -> None:
    """strstr (writable, ends with a newline), memmem (the rest), bytes.find (no C library)."""
    rows = [f'{{"n":{i},"code":{(200, 403, 401, 404)[i % 4]}}}' for i in range(500)]
    data = ("\n".join(rows)).encode() + tail
    buf = bytearray(data) if kind == "bytearray" else data
    sc = scanner(CODES)
    got = sc.candidates(buf, 0, len(buf))
    assert bytes(buf) == data  # the borrowed newline is back
    assert len(got) == 250
    plain = dict(got)
    import podsec.host.logscan as ls

    saved = (ls._STRSTR, ls._MEMMEM)
    ls._STRSTR = ls._MEMMEM = None
    try:
        assert sc.candidates(buf, 0, len(buf)) == plain
    finally:
        ls._STRSTR, ls._MEMMEM = saved
