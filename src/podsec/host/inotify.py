"""Linux inotify through ctypes (no third-party module, no ``inotifywait`` child).

File names arrive as raw bytes and stay bytes: they are data, never parsed by a shell.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

IN_ACCESS = 0x00000001
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_CLOSE_NOWRITE = 0x00000010
IN_OPEN = 0x00000020
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
IN_CLOEXEC = 0o2000000

NAMES = {
    IN_ACCESS: "ACCESS",
    IN_MODIFY: "MODIFY",
    IN_ATTRIB: "ATTRIB",
    IN_CLOSE_WRITE: "CLOSE_WRITE",
    IN_CLOSE_NOWRITE: "CLOSE_NOWRITE",
    IN_OPEN: "OPEN",
    IN_MOVED_FROM: "MOVED_FROM",
    IN_MOVED_TO: "MOVED_TO",
    IN_CREATE: "CREATE",
    IN_DELETE: "DELETE",
    IN_DELETE_SELF: "DELETE_SELF",
    IN_MOVE_SELF: "MOVE_SELF",
    IN_UNMOUNT: "UNMOUNT",
    IN_Q_OVERFLOW: "Q_OVERFLOW",
    IN_IGNORED: "IGNORED",
    IN_ISDIR: "ISDIR",
}

_HEADER = struct.Struct("iIII")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]


def mask_names(mask: int) -> str:
    """``CREATE,ISDIR`` style names of a mask (the inotifywait spelling)."""
    return ",".join(name for bit, name in NAMES.items() if mask & bit) or hex(mask)


@dataclass(frozen=True, slots=True)
class Event:
    wd: int
    mask: int
    cookie: int
    name: bytes


def parse(data: bytes) -> Iterator[Event]:
    offset = 0
    size = _HEADER.size
    while offset + size <= len(data):
        wd, mask, cookie, length = _HEADER.unpack_from(data, offset)
        offset += size
        name = data[offset : offset + length].split(b"\0", 1)[0]
        offset += length
        yield Event(wd, mask, cookie, name)


class Inotify:
    """An inotify instance; :meth:`read` blocks (no busy polling) until events arrive."""

    def __init__(self) -> None:
        fd = _libc.inotify_init1(IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd: int = fd
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def add(self, path: bytes | str | os.PathLike[str], mask: int) -> int:
        """Watch ``path``; raise OSError (ENOSPC: watch budget exhausted, ENOENT ...)."""
        raw = os.fsencode(path)
        wd = _libc.inotify_add_watch(self.fd, raw, mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), os.fsdecode(raw))
        return int(wd)

    def remove(self, wd: int) -> None:
        if _libc.inotify_rm_watch(self.fd, wd) < 0:
            err = ctypes.get_errno()
            if err != errno.EINVAL:  # already gone (the kernel sent IN_IGNORED)
                raise OSError(err, os.strerror(err))

    def read(self, timeout: float | None = None) -> list[Event]:
        """Events available now, waiting up to ``timeout`` seconds (None: forever)."""
        ms = None if timeout is None else max(0, int(timeout * 1000))
        if not self._poll.poll(ms):
            return []
        try:
            data = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            return []
        return list(parse(data))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Inotify:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def max_user_watches(proc: str = "/proc") -> int | None:
    try:
        return int(Path(proc, "sys/fs/inotify/max_user_watches").read_text().strip())
    except (OSError, ValueError):
        return None
