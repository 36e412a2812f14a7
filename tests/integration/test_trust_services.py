"""``podsec services run``: the real docker-registry and nginx under podsec's supervisor —
both answer, sigstore serves keys/ as JSON and nothing else as a listing, read-only; a crashed
service is restarted; SIGTERM stops both cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tests.fixtures.images import wait_http
from tests.fixtures.require import free_port, require_root, require_tool

pytestmark = pytest.mark.integration


def _pids(log: Path, name: str) -> list[int]:
    return [
        int(p) for p in re.findall(rf"started {re.escape(name)} \(pid (\d+)\)", log.read_text())
    ]


def _wait(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def _status(url: str, method: str = "GET") -> int:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, method=method, data=b"x" if method == "POST" else None),
            timeout=5,
        ) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_services_run_supervises(host_root, tmp_path):
    require_root()
    require_tool("docker-registry", "nginx")
    root = host_root
    env = {**os.environ, "LANG": "C"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "podsec.cli",
            "--root",
            str(root),
            "policy",
            "create",
            "10.1.1.1",
            "--registry-node",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    (root / "var/sigstore/keys/alice.pgp").write_text("key\n")
    (root / "var/sigstore/sigstore/team").mkdir()
    rport, sport = free_port(), free_port()
    log = tmp_path / "run.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "podsec.cli",
            "--root",
            str(root),
            "services",
            "run",
            "--address",
            "127.0.0.1",
            "--registry-port",
            str(rport),
            "--sigstore-port",
            str(sport),
            "--nginx-user",
            "root",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        env=env,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{rport}/v2/", proc)
        wait_http(f"http://127.0.0.1:{sport}/", proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{sport}/keys/") as resp:
            names = {e["name"] for e in json.load(resp)}
        assert {"alice.pgp", "policy.json"} <= names
        assert _status(f"http://127.0.0.1:{sport}/sigstore/") in (403, 404)  # no listing
        assert _status(f"http://127.0.0.1:{sport}/keys/alice.pgp", "POST") in (
            403,
            405,
        )  # read-only
        assert _status(f"http://127.0.0.1:{sport}/etc/passwd") == 404
        # crash the registry: the supervisor starts a new one
        assert _wait(lambda: len(_pids(log, "registry.local")) == 1)
        first = _pids(log, "registry.local")[0]
        os.kill(first, signal.SIGKILL)
        assert _wait(lambda: len(_pids(log, "registry.local")) == 2), log.read_text()
        wait_http(f"http://127.0.0.1:{rport}/v2/", proc)
        children = _pids(log, "registry.local")[-1:] + _pids(log, "sigstore.local")
        # clean shutdown on SIGTERM
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        for pid in children:
            assert (
                not Path(f"/proc/{pid}").exists()
                or "zombie" in Path(f"/proc/{pid}/status").read_text()
            )
        assert "stopped registry.local" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for pid in _pids(log, "registry.local") + _pids(log, "sigstore.local"):
            # children we started, by PID (the supervisor may have died first)
            with contextlib.suppress(OSError):
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"registry" in cmd or b"nginx" in cmd:
                    os.kill(pid, signal.SIGKILL)
