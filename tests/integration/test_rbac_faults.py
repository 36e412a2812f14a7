"""Faults during rbac commands against the real control plane (issue 15): the API server
goes away mid-``bind``/``unbind``/``revoke``/``create-kubeconfig`` and ``rbac bind`` is killed
with SIGKILL, each at N points spread over the command's own duration; afterwards a re-run
converges (the user is in the binding exactly once, or gone from it) and no CertificateSigning
Request of the user is left behind.

"The API server goes away" is a TCP proxy in front of the real kube-apiserver that drops
every connection and refuses new ones at the point (what clients see of a stopped server),
then listens again for the re-run; the kubeconfig podsec gets names the proxy.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.fixtures.kube import ControlPlane
from tests.fixtures.require import free_port, require_root, require_tool

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

BIN = Path(sys.executable).parent
POINTS = 6
TAG = f"{os.getpid() % 100000}"


class CuttableProxy:
    """127.0.0.1:port → the API server; :meth:`cut` drops everything, :meth:`restore`
    listens again on the same port."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = free_port()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._socks.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _addr = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


class Faults:
    def __init__(self, cp: ControlPlane, base: Path):
        self.cp = cp
        self.root = base / "root"
        self.home = base / "home"
        self.proxy = CuttableProxy((cp.host, cp.port))
        doc = yaml.safe_load(cp.kubeconfig.read_text())
        for cluster in doc["clusters"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{self.proxy.port}"
        self.kubeconfig = base / "through-proxy.conf"
        self.kubeconfig.write_text(yaml.safe_dump(doc))

    def argv(self, *args: str) -> list[str]:
        return [str(BIN / "podsec"), "--root", str(self.root), "rbac", *args,
                "--kubeconfig", str(self.kubeconfig)]  # fmt: skip

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "PODSEC"))}
        env.update(HOME=str(self.home), LANG="C.UTF-8")
        return env

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, env=self.env(),
                              timeout=180)  # fmt: skip

    def timed(self, *args: str) -> float:
        started = time.monotonic()
        r = self.run(*args)
        assert r.returncode == 0, r.stderr
        return time.monotonic() - started

    def subjects(self, binding: str) -> list[str]:
        out = self.cp.kubectl("get", "clusterrolebinding", binding, "-o", "json", check=False)
        if out.returncode != 0:
            return []
        return [s["name"] for s in json.loads(out.stdout).get("subjects") or []]

    def csrs(self, user: str) -> list[str]:
        out = self.cp.kubectl("get", "csr", "-o", "json")
        items = json.loads(out.stdout)["items"]
        return [i["metadata"]["name"] for i in items if user in i["metadata"]["name"]]


@pytest.fixture(scope="module")
def faults(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Faults]:
    require_root()
    require_tool("useradd", "kubectl")
    base = tmp_path_factory.mktemp("rbac-faults")
    root = base / "root"
    (root / "etc").mkdir(parents=True)
    (root / "home").mkdir()
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/gshadow").write_text("root:*::\n")
    (base / "home").mkdir()
    f = Faults(control_plane, base)
    yield f
    f.proxy.cut()
    shutil.rmtree(base, ignore_errors=True)


def _points(duration: float) -> list[float]:
    return [duration * (i + 0.5) / POINTS for i in range(POINTS)]


def _cut_during(f: Faults, at: float, *args: str) -> subprocess.CompletedProcess[str]:
    timer = threading.Timer(at, f.proxy.cut)
    timer.start()
    try:
        return f.run(*args)
    finally:
        timer.cancel()
        f.proxy.cut()
        f.proxy.restore()


def test_api_server_gone_mid_bind_and_unbind(faults: Faults) -> None:
    f = faults
    user, binding = f"bob{TAG}", f"bob-view-{TAG}"
    f.run("create-user", user).check_returncode()
    bind = ("bind", user, "clusterrole", "view", binding)
    unbind = ("unbind", user, "clusterrole", "view", binding)
    duration = f.timed(*bind)
    f.timed(*unbind)
    for at in _points(duration):
        r = _cut_during(f, at, *bind)
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
        assert f.subjects(binding).count(user) <= 1
        again = f.run(*bind)
        assert again.returncode == 0, f"bind after a cut at {at:.2f}s: {again.stderr}"
        assert f.subjects(binding).count(user) == 1
        r = _cut_during(f, at, *unbind)
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
        again = f.run(*unbind)
        assert again.returncode == 0, f"unbind after a cut at {at:.2f}s: {again.stderr}"
        assert user not in f.subjects(binding)


def test_api_server_gone_mid_create_kubeconfig_and_revoke(faults: Faults) -> None:
    f = faults
    user = f"carol{TAG}"
    f.run("create-user", user).check_returncode()
    create = ("create-kubeconfig", user, "--timeout", "20")
    duration = f.timed(*create)
    for at in _points(duration):
        r = _cut_during(f, at, *create)
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
        again = f.run(*create)
        assert again.returncode == 0, f"after a cut at {at:.2f}s: {again.stderr}"
        assert f.csrs(user) == [], f"cut at {at:.2f}s left {f.csrs(user)}"
    f.run("bind", user, "clusterrole", "view", f"carol-view-{TAG}").check_returncode()
    revoke = ("revoke", user)
    duration = f.timed(*revoke)
    for at in _points(duration):
        f.run("bind", user, "clusterrole", "view", f"carol-view-{TAG}", "--force")
        r = _cut_during(f, at, *revoke)
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
        again = f.run(*revoke)
        assert again.returncode == 0, f"revoke after a cut at {at:.2f}s: {again.stderr}"
        assert user not in f.subjects(f"carol-view-{TAG}")
        assert f.csrs(user) == []


def test_bind_killed_anywhere(faults: Faults) -> None:
    f = faults
    user, binding = f"dave{TAG}", f"dave-view-{TAG}"
    f.run("create-user", user).check_returncode()
    bind = ("bind", user, "clusterrole", "view", binding)
    duration = f.timed(*bind)
    f.run("unbind", user, "clusterrole", "view", binding).check_returncode()
    for at in _points(duration):
        proc = subprocess.Popen(f.argv(*bind), env=f.env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(at)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert f.subjects(binding).count(user) <= 1
        again = f.run(*bind)
        assert again.returncode == 0, f"bind after a kill at {at:.2f}s: {again.stderr}"
        assert f.subjects(binding).count(user) == 1
        f.run("unbind", user, "clusterrole", "view", binding).check_returncode()
