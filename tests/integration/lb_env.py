"""Real-program helpers for the HA / port-sync tests: RootlessKit, listeners, haproxy.

RootlessKit runs as root here (its port API is what we test; the u7s suites run it as a real
unprivileged user). Root has no subordinate ids on this machine, so it is started in a private
mount namespace whose /etc/subuid and /etc/subgid are bind mounts of a one-line file: the
machine's own files are never touched. Every process is started under ``timeout`` in its own
process group and stopped by PID.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.require import require_root, require_tool

REPO = Path(__file__).resolve().parents[2]
LIFETIME = "1800"

# a listener that answers every connection with its own marker and closes
LISTENER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[3].encode())
    c.close()
"""


def start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            ["timeout", "--kill-after=5", LIFETIME, *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )


def stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def wait_until(fn, timeout: float = 30.0, interval: float = 0.2):  # type: ignore[no-untyped-def]
    """Poll ``fn`` until it returns something truthy (or the time is up); return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def free_node_port(host: str = "0.0.0.0") -> int:
    """A port in the NodePort range that nobody on this machine has bound."""
    for _ in range(200):
        port = random.randint(30000, 32767)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free NodePort-range port")


def read_marker(host: str, port: int, timeout: float = 3.0) -> bytes | None:
    """Connect and read what the listener says; None when nothing answers."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64) or None
    except OSError:
        return None


@dataclass
class Rootlesskit:
    proc: subprocess.Popen[bytes]
    state_dir: Path
    log: Path
    listeners: list[subprocess.Popen[bytes]]

    @property
    def socket(self) -> Path:
        return self.state_dir / "api.sock"

    @property
    def child_pid(self) -> int:
        return int((self.state_dir / "child_pid").read_text().strip())

    def listen(self, port: int, marker: str, log_dir: Path) -> None:
        """A TCP listener on ``port`` *inside* the namespace."""
        log = log_dir / f"listener-{port}.log"
        proc = start(
            [
                "nsenter",
                f"--target={self.child_pid}",
                "--net",
                sys.executable,
                "-c",
                LISTENER,
                "0.0.0.0",
                str(port),
                marker,
            ],
            log,
        )
        self.listeners.append(proc)
        if not wait_until(lambda: "listening" in log.read_text(), 15):
            raise RuntimeError(f"listener on {port} did not start: {log.read_text()}")


@contextlib.contextmanager
def rootlesskit(work: Path, netns: str | None = None) -> Iterator[Rootlesskit]:
    """``rootlesskit --net=slirp4netns --port-driver=builtin sleep infinity`` (as root, private
    subid files); with ``netns`` the whole thing runs in that network namespace (a "node")."""
    require_root()
    require_tool("rootlesskit", "slirp4netns", "unshare", "nsenter", "newuidmap")
    work.mkdir(parents=True, exist_ok=True)
    subid = work / "subid"
    subid.write_text("root:400000:65536\n")
    state = work / "rk-state"
    log = work / "rootlesskit.log"
    inner = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        # scripts/test-env's /etc/hosts is a bind mount of a deleted file; nothing (RootlessKit's
        # own hosts file included) can be mounted over that (ENOENT): put a live copy there
        'mount --bind "$1" /etc/subuid && mount --bind "$1" /etc/subgid && '
        'cat /etc/hosts > "$2" && { umount /etc/hosts 2>/dev/null; true; } && '
        'mount --bind "$2" /etc/hosts && shift 2 && exec "$@"',
        "sh",
        str(subid),
        str(work / "hosts"),
        "rootlesskit",
        f"--state-dir={state}",
        "--net=slirp4netns",
        "--disable-host-loopback",
        "--port-driver=builtin",
        "sleep",
        "infinity",
    ]
    argv = ["ip", "netns", "exec", netns, *inner] if netns else inner
    proc = start(argv, log)
    rk = Rootlesskit(proc, state, log, [])
    try:
        ok = wait_until(lambda: rk.socket.exists() and (state / "child_pid").exists(), 20)
        if not ok or proc.poll() is not None:
            raise RuntimeError(f"rootlesskit did not start:\n{log.read_text()}")
        yield rk
    finally:
        for listener in rk.listeners:
            stop(listener)
        stop(proc)


def controller(
    socket_path: Path, state: Path, kubeconfig: Path, log: Path, *extra: str
) -> subprocess.Popen[bytes]:
    """``podsec u7s ports sync`` as its own process (the group runs standalone with -m)."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return start(
        [
            sys.executable,
            "-m",
            "podsec.cli.u7s_ports",
            "sync",
            "--socket",
            str(socket_path),
            "--state",
            str(state),
            "--kubeconfig",
            str(kubeconfig),
            *extra,
        ],
        log,
        env,
    )


def podsec(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("LANG", "LC_", "PODSEC"))}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "podsec.cli", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=120,
        check=False,
    )


def ports_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podsec.cli.u7s_ports", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
