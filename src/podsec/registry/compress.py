"""Streaming tar + xz/zstd for archives, with byte progress and no intermediate tar file.

Python writes the tar stream (USTAR headers + file data) straight into the compressors'
stdin and reads the decompressor's stdout back (``xz``/``zstd`` through
:mod:`podsec.host.run`; Python's lzma is single-threaded).

Why these settings (measured on the harness's k8s image set; benchmarks/bench_archive_save):
- Go binaries of one release share most code, but at a distance of a whole binary (~110 MB
  for the apiserver): a dictionary that reaches back that far saved 20 % on
  apiserver+controller-manager. So the tar is cut into two segments at member boundaries,
  the twins together, each segment compressed by its own xz process (own dictionary, both
  cores busy), the streams concatenated (still one .xz / one tar for ``tar -xJf``).
- ``--x86``/``--arm64`` branch filters: -3 % size on executables.
- ``nice=16,depth=4`` instead of preset 9's 64/auto: the match finder's effort is most of
  xz's time. Measured on the two segments (issue 17, same run): nice=32,depth=6 0.50x the
  CPU of ``xz -9`` at 0.88x its size, nice=16,depth=4 0.39x at 0.93x, mf=hc4 0.48x at
  0.89x — the long dictionary pays for the shorter matches.

Kept as one module at ~500 lines: one job, the archive's tar stream through the
compressors and back; the segmenting and the codec settings are measured together.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from podsec.errors import PodsecError, UsageError, ValidationError
from podsec.host import run
from podsec.i18n import _
from podsec.progress import NULL_PROGRESS, Progress

BLOCK = 512
_RECORD = 20 * BLOCK
_CHUNK = 1 << 20
_BCJ = {"amd64": "--x86", "386": "--x86", "arm64": "--arm64", "arm": "--arm"}


@dataclass(frozen=True)
class Codec:
    name: str
    suffix: str
    level: int = 9

    def with_level(self, level: int | None) -> Codec:
        """The codec at another level (xz 0-9, zstd 1-22); None keeps the default."""
        if level is None:
            return self
        low, top = (0, 9) if self.name == "xz" else (1, 22)
        if not low <= level <= top:  # --level is an argument: exit 2
            raise UsageError(
                _("--level {level} is out of range for {name} ({low}-{top})").format(
                    level=level, name=self.name, low=low, top=top
                )
            )
        return replace(self, level=level)

    def compress_argv(self, arch: str, threads: int, dict_mib: int | None = None) -> list[str]:
        if self.name == "xz":
            argv = ["xz", f"-T{threads}", "-q"]
            if arch in _BCJ:
                argv.append(_BCJ[arch])
            lzma2 = f"--lzma2=preset={self.level},nice=16,depth=4"
            if dict_mib is not None and self.level >= 6:
                lzma2 += f",dict={dict_mib}MiB"
            return [*argv, lzma2, "-c"]
        if self.name == "zstd":
            ultra = ["--ultra"] if self.level > 19 else []
            return ["zstd", "-q", *ultra, f"-{self.level}", "--long=28", f"-T{threads}", "-c"]
        return ["cat"]

    def decompress_argv(self, path: Path) -> list[str]:
        if self.name == "xz":
            return ["xz", "-dcq", "-T2", "--", str(path)]
        if self.name == "zstd":
            return ["zstd", "-dcq", "--long=31", "--", str(path)]
        return ["cat", "--", str(path)]


XZ = Codec("xz", ".tar.xz", 9)
ZSTD = Codec("zstd", ".tar.zst", 19)
TAR = Codec("tar", ".tar", 0)


def detect(path: Path) -> Codec:
    """The archive's codec from its magic bytes (not its name)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(262)
    except FileNotFoundError as exc:
        raise PodsecError(_("{path}: no such archive").format(path=path)) from exc
    except IsADirectoryError as exc:
        raise PodsecError(_("{path}: is a directory, not an archive").format(path=path)) from exc
    if head.startswith(b"\xfd7zXZ\x00"):
        return XZ
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return ZSTD
    if len(head) >= 262 and head[257:262] == b"ustar":
        return TAR
    raise ValidationError(
        _("{path}: not an xz, zstd or tar archive").format(path=path),
        hint=_("the file is damaged or is not an image archive"),
    ).as_original(6)  # podsec-load-sign-oci: unpacking failed


@dataclass(frozen=True)
class Member:
    """One entry of the archive: a file (``source``) or a directory (``source`` None)."""

    name: str
    source: Path | None = None
    size: int = 0


def _space_error(path: Path, err: str) -> PodsecError:
    return PodsecError(
        _("{path}: cannot write the archive: {err}").format(path=path, err=err),
        hint=_("free some space or choose another directory; nothing was left behind"),
    )


def segments(members: Sequence[Member], splits: Sequence[int]) -> list[list[Member]]:
    """Cut the member list after the given indexes."""
    out: list[list[Member]] = [[]]
    for index, member in enumerate(members):
        out[-1].append(member)
        if index in splits and index != len(members) - 1:
            out.append([])
    return out


def _header(member: Member, mtime: int) -> bytes:
    info = tarfile.TarInfo(member.name)
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    if member.source is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = member.size
        info.mode = 0o644
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")


def _write_segment(
    members: Sequence[Member], sink: IO[bytes], mtime: int, last: bool, count: Callable[[int], None]
) -> None:
    """Raw USTAR bytes of ``members`` (the end-of-archive blocks only after the last
    segment): consecutive segments concatenate into one valid tar."""
    written = 0
    for member in members:
        header = _header(member, mtime)
        sink.write(header)
        written += len(header)
        if member.source is None:
            continue
        remaining = member.size
        with member.source.open("rb") as fh:
            while remaining:
                chunk = fh.read(min(_CHUNK, remaining))
                if not chunk:
                    raise PodsecError(
                        _("{path} shrank while it was archived").format(path=member.source)
                    )
                sink.write(chunk)
                remaining -= len(chunk)
                count(len(chunk))
        pad = -member.size % BLOCK
        sink.write(b"\0" * pad)
        written += member.size + pad
    if last:
        end = 2 * BLOCK
        end += -(written + end) % _RECORD
        sink.write(b"\0" * end)


def write_archive(  # noqa: PLR0912, PLR0915 - start, feed and check the compressors
    members: Sequence[Member],
    out: Path,
    codec: Codec,
    *,
    arch: str,
    threads: int = 2,
    splits: Sequence[int] = (),
    progress: Progress = NULL_PROGRESS,
    task: str = "",
) -> int:
    """Write ``members`` as a compressed tar to ``out`` (atomically); returns its size.

    xz with ``splits`` and more than one thread: each segment goes to its own xz process
    (its own dictionary size) fed by its own thread, and the compressed streams are
    concatenated — a valid .xz file that ``xz -d``/``tar -xJf`` read as one tar.
    """
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))
    task = task or out.name
    progress.start(task, float(sum(m.size for m in members)), "B")
    parallel = codec.name == "xz" and threads > 1 and splits
    parts = segments(members, splits) if parallel else [list(members)]
    outputs = [out.with_name(f"{out.name}.part{n}") for n in range(len(parts))]
    procs: list[run.Stream] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def count(n: int) -> None:
        with lock:
            progress.advance(task, n)

    def feed(index: int) -> None:
        proc = procs[index]
        try:
            _write_segment(parts[index], proc.stdin, mtime, index == len(parts) - 1, count)
            proc.stdin.close()
        except BaseException as exc:
            errors.append(exc)
            proc.kill()

    try:
        for index, part in enumerate(parts):
            if parallel:
                argv = codec.compress_argv(arch, 1, dict_mib=_dict_for(part))
            else:
                argv = codec.compress_argv(arch, threads)
            with outputs[index].open("wb") as sink:
                procs.append(run.stream(argv, stdin="pipe", stdout=sink))
        feeders = [threading.Thread(target=feed, args=(i,), daemon=True) for i in range(len(parts))]
        for thread in feeders:
            thread.start()
        for thread in feeders:
            thread.join()
        codes = [proc.wait() for proc in procs]
        failed = [i for i, code in enumerate(codes) if code != 0]
        if failed or errors:
            message = ""
            for index in failed:
                message = procs[index].stderr_tail() or message
            if not message and errors:
                message = str(errors[0])
            raise _space_error(out.parent, message.splitlines()[-1] if message else "?")
        if len(outputs) > 1:
            with outputs[0].open("ab") as sink:
                for extra in outputs[1:]:
                    with extra.open("rb") as src:
                        shutil.copyfileobj(src, sink, 1 << 20)
        with outputs[0].open("rb+") as done:
            os.fsync(done.fileno())
        outputs[0].rename(out)
    except OSError as exc:
        raise _space_error(out.parent, exc.strerror or str(exc)) from exc
    finally:
        for proc in procs:
            proc.close()
        for path in outputs:
            path.unlink(missing_ok=True)
    progress.finish(task)
    return out.stat().st_size


def _dict_for(part: Sequence[Member]) -> int:
    """Dictionary (MiB) for one segment: large enough to reach back over the segment's
    biggest file, so the next similar binary finds its twin (Go binaries of one release
    share most code), capped to keep memory and match-finder time sane."""
    biggest = max((m.size for m in part), default=0)
    for mib in (64, 128):
        if mib << 20 >= biggest * 1.1:
            return mib
    return 192


_SPOOL_LIMIT = 512 << 20  # bytes of the later segments held in memory while the first streams


class _MemorySpool:
    """Reads a decoder's output in a thread and hands it over in order (bounded by
    ``_SPOOL_LIMIT``, checked before it is used)."""

    def __init__(self, proc: run.Stream):
        self._proc = proc
        self._chunks: deque[bytes] = deque()
        self._done = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            while chunk := self._proc.stdout.read(_CHUNK):
                with self._cond:
                    self._chunks.append(chunk)
                    self._cond.notify()
        except (OSError, ValueError):
            pass  # the decoder was killed; its exit status tells what happened
        with self._cond:
            self._done = True
            self._cond.notify()

    def read(self, size: int) -> bytes:
        with self._cond:
            while not self._chunks and not self._done:
                self._cond.wait()
            if not self._chunks:
                return b""
            chunk = self._chunks.popleft()
            if len(chunk) > size:
                self._chunks.appendleft(chunk[size:])
                chunk = chunk[:size]
            return chunk


class _Decoded:
    """The decompressed tar stream: one decoder, or — for an xz file of several streams
    (our segments) — two decoders in parallel, the second's output spooled in memory."""

    def __init__(self, path: Path, codec: Codec):
        self.procs: list[run.Stream] = []
        self._inputs: list[IO[bytes]] = []
        self._rest: _MemorySpool | None = None
        split = _xz_split(path) if codec.name == "xz" else None
        if split is None:
            self._first = self._start(codec.decompress_argv(path), None, 0)
            return
        # the first stream straight into the tar parser; the others decoded meanwhile
        self._first = self._start(["xz", "-dcq", "--single-stream"], path, 0)
        self._start(["xz", "-dcq"], path, split)
        self._rest = _MemorySpool(self.procs[-1])

    def _start(self, argv: list[str], path: Path | None, offset: int) -> IO[bytes]:
        source: IO[bytes] | None = None
        if path is not None:
            source = path.open("rb")
            source.seek(offset)
            self._inputs.append(source)
        proc = run.stream(argv, stdin=source)
        self.procs.append(proc)
        return proc.stdout

    def read(self, size: int = -1) -> bytes:
        data = self._first.read(size if size > 0 else _CHUNK)
        if data or self._rest is None:
            return data
        return self._rest.read(size if size > 0 else _CHUNK)

    def stderr_tail(self) -> str:
        for proc in self.procs:
            if tail := proc.stderr_tail():
                return tail
        return ""

    def finish(self) -> bool:
        """Drain everything; True when every decoder saw a complete, valid stream."""
        while self.read(_CHUNK):
            pass
        return all(proc.wait() == 0 for proc in self.procs)

    def close(self) -> None:
        for proc in self.procs:
            proc.close()
        for fh in self._inputs:
            fh.close()


def _xz_split(path: Path) -> int | None:
    """Offset of the second xz stream when the rest fits the in-memory spool, else None."""
    try:
        listing = run.run(["xz", "--robot", "--list", "--verbose", "--", str(path)], timeout=60)
    except PodsecError:
        return None  # damaged: the plain decoder reports it
    streams = [
        line.split("\t") for line in listing.stdout.splitlines() if line.startswith("stream\t")
    ]
    if len(streams) < 2:
        return None
    try:
        offset = int(streams[1][3])
        rest = sum(int(fields[6]) for fields in streams[1:])
    except (IndexError, ValueError):
        return None
    return offset if rest <= _SPOOL_LIMIT else None


class ArchiveReader:
    """A streaming view of an archive: iterate members in order, read each once."""

    def __init__(self, path: Path, tar: tarfile.TarFile, decoded: _Decoded):
        self.path = path
        self.tar = tar
        self._decoded = decoded

    def __iter__(self) -> Iterator[tarfile.TarInfo]:
        """Members in order, each checked by :func:`member_name` before it is yielded: no
        member that would land outside the unpack directory ever reaches the caller."""
        try:
            for info in self.tar:
                member_name(info, self.path)
                yield info
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise self.corrupt(str(exc)) from exc

    def extract(self, info: tarfile.TarInfo) -> IO[bytes]:
        fh = self.tar.extractfile(info)
        if fh is None:
            raise self.corrupt(_("{name} is not a regular file").format(name=info.name))
        return _GuardedReader(fh, self)  # type: ignore[return-value]

    def corrupt(self, detail: str) -> ValidationError:
        detail = self._decoded.stderr_tail() or detail
        return ValidationError(
            _("{path}: the archive is corrupt or truncated ({detail})").format(
                path=self.path, detail=detail
            ),
            hint=_("copy the archive again and compare its checksum"),
        ).as_original(6)  # podsec-load-sign-oci: unpacking failed

    def check_end(self) -> None:
        """Drain the stream and make sure the decompressor saw a complete, valid file."""
        if not self._decoded.finish():
            raise self.corrupt(_("decompression failed"))


class _GuardedReader:
    """A member reader whose read errors (a truncated stream) become one clear error."""

    def __init__(self, fh: IO[bytes], archive: ArchiveReader):
        self._fh = fh
        self._archive = archive

    def read(self, size: int = -1) -> bytes:
        try:
            return self._fh.read(size)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise self._archive.corrupt(str(exc)) from exc


def _unsafe_member(path: Path, name: str, problem: str) -> ValidationError:
    return ValidationError(
        _("{path}: archive member {name!r} {problem}; the archive is refused").format(
            path=path, name=name, problem=problem
        ),
        hint=_("nothing was unpacked from it; get the archive again from a trusted source"),
    )


def _clean(name: str) -> str | None:
    """``name`` as a relative path below the archive root, or None when it would leave it
    (absolute, ``..``, an empty component as in ``amd64//etc``)."""
    while name.startswith("./"):
        name = name[2:]
    name = name.removesuffix("/")
    if not name or name == ".":
        return "."
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", "..") for p in parts) or "\0" in name:
        return None
    return "/".join(p for p in parts if p != ".") or "."


def member_name(info: tarfile.TarInfo, path: Path) -> str:
    """The member's path relative to the unpack directory, refusing (ValidationError naming
    the member) any member that could write outside it: an absolute name, a ``..``
    component, an empty component, a symbolic or hard link whose target leaves the
    directory, or a device/FIFO member (archives podsec reads hold files and directories)."""
    clean = _clean(info.name)
    if clean is None:
        raise _unsafe_member(path, info.name, _("leaves the unpack directory"))
    if info.ischr() or info.isblk() or info.isfifo():
        raise _unsafe_member(path, info.name, _("is a device or FIFO"))
    if info.issym() or info.islnk():
        target = info.linkname
        if info.issym() and not target.startswith("/"):
            target = posixpath.join(posixpath.dirname(clean), target)
        resolved = _clean(posixpath.normpath(target)) if not target.startswith("/") else None
        if resolved is None or resolved.split("/", 1)[0] == "..":
            raise _unsafe_member(
                path,
                info.name,
                _("links to {target}, outside the unpack directory").format(target=info.linkname),
            )
    return clean


@contextmanager
def open_archive(path: Path) -> Iterator[ArchiveReader]:
    codec = detect(path)
    decoded = _Decoded(path, codec)
    try:
        try:
            tar = tarfile.open(fileobj=decoded, mode="r|", bufsize=1 << 20)  # type: ignore[call-overload]  # noqa: SIM115 - closed with the stream
        except (tarfile.TarError, EOFError) as exc:
            reader = ArchiveReader(path, None, decoded)  # type: ignore[arg-type]
            decoded.finish()
            raise reader.corrupt(str(exc)) from exc
        yield ArchiveReader(path, tar, decoded)
    finally:
        decoded.close()
