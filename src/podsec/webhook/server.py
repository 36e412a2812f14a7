"""The one HTTPS server for JSON webhooks (admission, authorization).

The API server keeps its connection to a webhook alive and asks one question at a time on it,
so the server is a thread per connection reading ``POST`` requests with a ``Content-Length``
body and answering each in one write: status line, headers and body in one TLS record (a body
sent apart waits for the peer's delayed ACK: +40 ms a request, measured on the admission
webhook), TCP_NODELAY. Requests are parsed here, not by :mod:`http.server` (whose header
parser is ``email.parser``): half the CPU per decision, which is what the API server waits for
on every request it sends (``benchmarks/bench_rbac_authz.py``).

Anything but ``POST`` with a length (chunked bodies, other methods, bodies over
:data:`MAX_BODY`, a malformed request line) is answered with an error and the connection is
closed; an idle connection is closed after :data:`IDLE_TIMEOUT` seconds.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from podsec.webhook.tls import CERT_FILE, KEY_FILE

# (request path, decoded JSON body) → JSON answer; KeyError/ValueError answer 400
Decide = Callable[[str, dict[str, Any]], dict[str, Any]]

MAX_LINE = 16384
MAX_HEADERS = 100
MAX_BODY = 32 * 1024 * 1024  # an AdmissionReview carries a whole object (old and new)
IDLE_TIMEOUT = 120.0
_REASONS = {
    200: "OK",
    400: "Bad Request",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
}


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _answer(status: int, data: bytes, *, close: bool = False) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    )
    return head.encode() + data


def _headers(f: BinaryIO, keep: bool) -> tuple[int | None, bool]:
    """(Content-Length, keep-alive) from the header lines."""
    length: int | None = None
    for _ in range(MAX_HEADERS + 1):
        header = f.readline(MAX_LINE + 1)
        if header in (b"\r\n", b"\n", b""):
            return length, keep
        name, sep, value = header.partition(b":")
        if not sep or len(header) > MAX_LINE:
            raise _Refused(400, "malformed header")
        key = name.strip().lower()
        if key == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                raise _Refused(400, "bad Content-Length") from None
        elif key == b"transfer-encoding":
            raise _Refused(411, "chunked bodies are not accepted")
        elif key == b"connection":
            token = value.strip().lower()
            keep = token != b"close" and (keep or token == b"keep-alive")
    raise _Refused(400, "too many headers")


def _read_request(f: BinaryIO) -> tuple[str, bytes, bool] | None:
    """(path, body, keep-alive) of the next request; None at the end of the connection."""
    line = f.readline(MAX_LINE + 1)
    while line in (b"\r\n", b"\n"):  # tolerated between requests (RFC 9112 §2.2)
        line = f.readline(MAX_LINE + 1)
    if not line:
        return None
    parts = line.split()
    if len(line) > MAX_LINE or len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise _Refused(400, "malformed request line")
    method, path, version = parts
    length, keep = _headers(f, version == b"HTTP/1.1")
    if method != b"POST":
        raise _Refused(405, "only POST")
    if length is None:
        raise _Refused(411, "Content-Length required")
    if length < 0 or length > MAX_BODY:
        raise _Refused(413, "body too large")
    body = f.read(length)
    if len(body) != length:
        return None
    return path.decode("latin-1"), body, keep


class Server:
    """Accepts on a listening TCP socket; the TLS handshake and the requests of each
    connection in a daemon thread of its own (a slow client holds up nobody)."""

    def __init__(self, listener: socket.socket, context: ssl.SSLContext, decide: Decide) -> None:
        self.socket = listener
        self.context = context
        self.decide = decide
        self._stop = threading.Event()

    def serve_forever(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _addr = self.socket.accept()
            except OSError:
                if self._stop.is_set():
                    break
                raise
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def shutdown(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)  # wakes the accept

    def server_close(self) -> None:
        self.socket.close()

    def _connection(self, raw: socket.socket) -> None:
        with contextlib.suppress(OSError), raw:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            raw.settimeout(IDLE_TIMEOUT)
            with self.context.wrap_socket(raw, server_side=True) as conn:
                self.converse(conn)

    def converse(self, conn: socket.socket) -> None:
        """Answer the requests of one connection until it ends."""
        f = conn.makefile("rb")
        while True:
            try:
                request = _read_request(f)
            except _Refused as exc:
                data = json.dumps({"error": str(exc)}).encode()
                conn.sendall(_answer(exc.status, data, close=True))
                return
            if request is None:
                return
            path, body, keep = request
            conn.sendall(_answer(*self._decide(path, body), close=not keep))
            if not keep:
                return

    def _decide(self, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            doc = json.loads(body or b"{}")
            if not isinstance(doc, dict):
                raise ValueError("expected a JSON object")
            return 200, json.dumps(self.decide(path, doc)).encode()
        except (ValueError, KeyError) as exc:
            return 400, json.dumps({"error": str(exc)}).encode()


def https_server(cert_dir: Path, listener: socket.socket, decide: Decide) -> Server:
    """The HTTPS server on ``listener`` (a listening TCP socket; call ``serve_forever``) with
    the certificate in ``cert_dir`` (``tls.crt``, ``tls.key``), answering with ``decide``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_dir / CERT_FILE, cert_dir / KEY_FILE)
    return Server(listener, ctx, decide)
