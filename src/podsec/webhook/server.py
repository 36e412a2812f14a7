"""The one HTTPS server for JSON webhooks (admission, authorization).

Threaded, HTTP/1.1 keep-alive (the API server reuses its connection instead of a TLS
handshake per request), TCP_NODELAY, and every answer written in one piece: status line,
headers and body in one TLS record — a body sent apart waits for the peer's delayed ACK
(+40 ms a request, measured on the admission webhook).
"""

from __future__ import annotations

import http.server
import json
import socket
import socketserver
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podsec.webhook.tls import CERT_FILE, KEY_FILE

# (request path, decoded JSON body) → JSON answer; KeyError/ValueError answer 400
Decide = Callable[[str, dict[str, Any]], dict[str, Any]]


class _Handler(http.server.BaseHTTPRequestHandler):
    decide: Decide
    protocol_version = "HTTP/1.1"
    timeout = 120  # an idle kept-alive connection is closed after this

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def address_string(self) -> str:
        return "local"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            out = type(self).decide(self.path, body)
            data, status = json.dumps(out).encode(), 200
        except (ValueError, KeyError) as exc:
            data, status = json.dumps({"error": str(exc)}).encode(), 400
        head = (
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Bad Request'}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        self.wfile.write(head.encode() + data)


class _TLSServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr


def https_server(
    cert_dir: Path, listener: socket.socket, decide: Decide
) -> socketserver.BaseServer:
    """The HTTPS server on ``listener`` (a listening TCP socket; call ``serve_forever``) with
    the certificate in ``cert_dir`` (``tls.crt``, ``tls.key``), answering with ``decide``."""
    handler = type("WebhookHandler", (_Handler,), {"decide": staticmethod(decide)})
    server = _TLSServer(listener.getsockname()[:2], handler, bind_and_activate=False)
    server.socket.close()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_dir / CERT_FILE, cert_dir / KEY_FILE)
    server.socket = ctx.wrap_socket(listener, server_side=True)
    return server
