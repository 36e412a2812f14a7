"""Fixtures of the monitoring suites: a syslog socket that records what the plugins send, a
real SMTP server (aiosmtpd) that records the mail, and a runner for the installed programs.

(No tests here; the other test_monitor_* modules import these fixtures.)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import pytest
from tests.fixtures.require import free_port

BIN = Path(sys.executable).parent


def program(name: str) -> str:
    path = BIN / name
    if not path.exists():
        from tests.fixtures.require import missing

        missing(f"{name} is not installed in the venv (pip install -e .)")
    return str(path)


def run_prog(
    name: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    **kwargs: object,
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("LANG", "LC_", "PODSEC"))}
    full.update(env or {})
    return subprocess.run(
        [program(name), *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )


@dataclass
class SyslogServer:
    path: Path
    lines: list[str] = field(default_factory=list)
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None
    _stop: bool = False

    def start(self) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.path))
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        assert self._sock is not None
        while not self._stop:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.lines.append(data.decode("utf-8", "replace"))

    def wait_for(self, pred: Callable[[str], bool], timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if pred(line):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no syslog line matched; got {self.lines[-10:]}")

    def stop(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join(2)
        if self._sock is not None:
            self._sock.close()


@pytest.fixture
def syslog_server(tmp_path: Path) -> Iterator[SyslogServer]:
    server = SyslogServer(tmp_path / "syslog.sock")
    server.start()
    yield server
    server.stop()


@dataclass
class SmtpServer:
    host: str
    port: int
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on a free loopback port; records every mail."""
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        from tests.fixtures.require import missing

        missing("aiosmtpd is not installed (pip install -e '.[dev]')")
        raise
    port = free_port()
    server = SmtpServer("127.0.0.1", port)

    class Handler:
        async def handle_DATA(self, _server: object, _session: object, envelope: object) -> str:
            server.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))  # type: ignore[attr-defined]
            server.messages.append(message_from_bytes(envelope.content))  # type: ignore[attr-defined]
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    yield server
    controller.stop()
