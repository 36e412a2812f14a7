"""Where findings go besides stdout: syslog (for nagwad and the journal) and mail.

Syslog lines are written straight to the local syslog socket (``/dev/log`` by default, a
path of the caller's choice in tests) in the BSD format ``logger`` uses, facility ``user``:
``<PRI>Mmm dd hh:mm:ss TAG[PID]: MESSAGE``. The message keeps the original's shape
``<Level>: ...`` so nagwad's sed rules (data/monitor/nagwad/podsec.sed) still match. Long
messages are split into numbered parts instead of being cut at 1 KiB as the original's were.
Mail goes through SMTP (``localhost:25`` by default) with the standard library.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from podsec.errors import PodsecError, UsageError
from podsec.i18n import _

DEFAULT_SOCKET = "/dev/log"
DEFAULT_SMTP = "localhost:25"
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


class MailError(PodsecError):
    """The mail could not be handed to the SMTP server."""


def parse_smtp(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep:
        return address, 25
    if not port.isdigit():
        raise MailError(_("invalid SMTP address {addr!r}: expected HOST:PORT").format(addr=address))
    return host.strip("[]") or "localhost", int(port)


_RECIPIENT = re.compile(
    r"^[A-Za-z0-9._%+-]{1,64}(@[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)?\Z"
)


def check_recipient(value: str, option: str = "-M") -> str:
    """A mail recipient: ``local`` or ``local@domain``, no spaces, lists or headers
    (``a;b`` and ``x\nBcc: y`` are refused with UsageError naming the option)."""
    if not _RECIPIENT.fullmatch(value) or ".." in value:
        raise UsageError(
            _("{option} {value!r}: not a mail address").format(option=option, value=value),
            hint=_("give one address: user or user@example.org"),
        )
    return value


def send_mail(
    to: str,
    subject: str,
    body: str,
    *,
    smtp: str = DEFAULT_SMTP,
    sender: str | None = None,
    timeout: float = 30.0,
) -> None:
    """Hand one plain-text mail to the SMTP server; raise :class:`MailError` on failure."""
    import smtplib
    from email.message import EmailMessage

    host, port = parse_smtp(smtp)
    msg = EmailMessage()
    msg["From"] = sender or f"podsec@{socket.gethostname()}"
    msg["To"] = to
    msg["Subject"] = subject.replace("\n", " ")
    msg.set_content(body)
    try:
        with smtplib.SMTP(host, port, timeout=timeout) as client:
            client.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(
            _("mail to {to} via {host}:{port} failed: {err}").format(
                to=to, host=host, port=port, err=exc
            )
        ) from exc
