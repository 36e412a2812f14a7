"""Syslog lines straight to the local syslog socket (``/dev/log`` by default, a path of the
caller's choice in tests), in the BSD format ``logger`` uses, facility ``user``:
``<PRI>Mmm dd hh:mm:ss TAG[PID]: MESSAGE``. Long messages are split into numbered parts
instead of being cut at 1 KiB. The monitor's checks and watchers (:mod:`podsec.monitor.sinks`)
and rbac's audit trail of expiring bindings write through it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import socket

from podsec.i18n import _

DEFAULT_SOCKET = "/dev/log"
FACILITY_USER = 1
MAX_MESSAGE = 1900  # bytes of message per datagram; rsyslog's default maximum is 8 KiB


def _parts(message: str, limit: int = MAX_MESSAGE) -> Iterator[str]:
    data = message.encode("utf-8", "backslashreplace")
    if len(data) <= limit:
        yield message
        return
    chunks = []
    while data:
        cut = min(len(data), limit)
        while cut < len(data) and (data[cut] & 0xC0) == 0x80:  # do not split a UTF-8 char
            cut -= 1
        chunks.append(data[:cut].decode("utf-8", "replace"))
        data = data[cut:]
    for i, chunk in enumerate(chunks, 1):
        yield f"{chunk} ({i}/{len(chunks)})"


@dataclass
class Syslog:
    """A connection to the local syslog socket; failures are remembered, never raised."""

    tag: str
    path: str = DEFAULT_SOCKET
    errors: list[str] = field(default_factory=list)
    sent: int = 0
    _sock: socket.socket | None = field(default=None, repr=False)
    _stream: bool = False
    _retry_at: float = 0.0
    _stamp_at: int = -1
    _stamp: str = ""

    def _connect(self) -> socket.socket | None:
        if self._sock is not None:
            return self._sock
        import socket  # at the first line sent: a plugin with nothing to say never needs it

        if time.monotonic() < self._retry_at:
            return None  # the socket was just unreachable: do not retry for every line
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            sock = socket.socket(socket.AF_UNIX, kind)
            try:
                sock.connect(self.path)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EPROTOTYPE:
                    continue
                self._note(exc)
                self._retry_at = time.monotonic() + 5.0
                return None
            self._sock, self._stream = sock, kind == socket.SOCK_STREAM
            return sock
        return None

    def _note(self, exc: OSError) -> None:
        text = _("syslog {path}: {err}").format(path=self.path, err=exc.strerror or exc)
        if text not in self.errors:
            self.errors.append(text)

    def log(self, priority: int, message: str) -> None:
        """Send ``message`` at ``priority`` (0 emerg … 7 debug), facility user."""
        pri = FACILITY_USER * 8 + (priority & 7)
        now = int(time.time())
        if now != self._stamp_at:  # one strftime per second, not per line
            self._stamp_at, self._stamp = now, time.strftime("%b %d %H:%M:%S", time.localtime(now))
        stamp = self._stamp
        clean = message.replace("\n", "\\n").replace("\r", "\\r")
        for part in _parts(clean):
            record = f"<{pri}>{stamp} {self.tag}[{os.getpid()}]: {part}".encode(
                "utf-8", "backslashreplace"
            )
            self._send(record)

    def _send(self, record: bytes) -> None:
        for _attempt in range(2):
            sock = self._connect()
            if sock is None:
                return
            try:
                if self._stream:
                    sock.sendall(record + b"\n")
                else:
                    sock.send(record)
                self.sent += 1
                return
            except OSError as exc:
                # a restarted syslog daemon leaves us a dead socket: reconnect once
                self.close()
                if exc.errno not in (errno.ECONNREFUSED, errno.ENOTCONN, errno.EPIPE):
                    if exc.errno in (errno.ENOBUFS, errno.EAGAIN):
                        time.sleep(0.001)
                        continue
                    self._note(exc)
                    return
        self._note(OSError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED)))

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
