"""The webhooks' HTTP/1.1 server: requests parsed as the API server sends them (POST with a
Content-Length, kept alive), anything else refused with a status and the connection closed.
Over a socket pair with TLS: the unit suite has no network."""

from __future__ import annotations

import io
import json
import os
import socket
import ssl
import threading
from pathlib import Path

import pytest

from podsec.webhook import server, tls


def _req(body: bytes = b"{}", head: str = "POST /authorize HTTP/1.1", **headers: str) -> bytes:
    lines = [head, *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_requests_are_read_one_after_another_on_a_kept_alive_connection() -> None:
    f = io.BytesIO(
        _req(b'{"a":1}', **{"Content-Length": "7", "Host": "x"})
        + _req(b"{}", **{"content-length": "2", "Connection": "close"})
    )
    assert server._read_request(f) == ("/authorize", b'{"a":1}', True)
    assert server._read_request(f) == ("/authorize", b"{}", False)
    assert server._read_request(f) is None  # the peer closed
    http10 = io.BytesIO(_req(b"{}", "POST /v HTTP/1.0", **{"Content-Length": "2"}))
    assert server._read_request(http10) == ("/v", b"{}", False)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (_req(b"", "GET /authorize HTTP/1.1", **{"Content-Length": "0"}), 405),
        (_req(b"{}", **{"Transfer-Encoding": "chunked"}), 411),
        (_req(b"{}"), 411),
        (_req(b"{}", **{"Content-Length": "two"}), 400),
        (_req(b"{}", **{"Content-Length": str(server.MAX_BODY + 1)}), 413),
        (b"garbage\r\n\r\n", 400),
        (_req(b"{}", **{f"X-{i}": "v" for i in range(server.MAX_HEADERS + 1)}), 400),
    ],
)
def test_what_the_api_server_never_sends_is_refused(raw: bytes, status: int) -> None:
    with pytest.raises(server._Refused) as info:
        server._read_request(io.BytesIO(raw))
    assert info.value.status == status


def test_answers_over_tls_in_one_piece_and_bad_json_is_400(tmp_path: Path) -> None:
    tls.serving_certificates(
        tmp_path,
        ca_name="ca",
        name="leaf",
        addresses=["127.0.0.1"],
        uid=os.getuid(),
        gid=os.getgid(),
    )
    listener = socket.socket()  # unused: the connection is handed over directly
    srv = server.https_server(tmp_path, listener, lambda path, body: {"path": path, **body})
    listener.close()
    a, b = socket.socketpair()
    thread = threading.Thread(
        target=lambda: srv.converse(srv.context.wrap_socket(a, server_side=True))
    )
    thread.start()
    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    with ctx.wrap_socket(b, server_hostname="localhost") as c:
        f = c.makefile("rb")
        for body, code in ((b'{"x": 1}', b"200"), (b"[1]", b"400"), (b"{", b"400")):
            c.sendall(_req(body, **{"Content-Length": str(len(body))}))
            status = f.readline()
            assert status.split()[1] == code
            length = 0
            while (h := f.readline()) != b"\r\n":
                if h.lower().startswith(b"content-length"):
                    length = int(h.split(b":")[1])
            answer = json.loads(f.read(length))
            if code == b"200":
                assert answer == {"path": "/authorize", "x": 1}
        c.sendall(_req(b"", "GET / HTTP/1.1"))
        assert f.readline().split()[1] == b"405"
        assert b"Connection: close" in f.read()  # then the server closes
    thread.join(5)
    assert not thread.is_alive()
