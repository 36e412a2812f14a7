"""A rootless u7s node for benchmarks: a private view of the machine, init, Ready, reset.

The benchmark process runs in its own mount namespace (it re-executes itself under
``unshare --mount``) with the node sandbox of tests/fixtures/sandbox.py (the demo's and the
e2e tests'), so u7s-admin, /etc/kubernetes, the etcd data and the kubeconfigs exist only for
the run and every node-state path starts empty; /dev/net/tun's mode is restored at the end. Everything the node runs is started inside one :class:`CpuGroup`, so
its CPU time is known whoever reaps the processes.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness

REPO = harness.REPO
sys.path.insert(0, str(REPO))
from tests.fixtures import sandbox as node_sandbox  # noqa: E402 - one sandbox for every node

K8S_BIN = harness.K8S_BIN
IMAGES = harness.IMAGES_DIR / "oci"
PODSEC = [str(REPO / ".venv/bin/python"), "-m", "podsec.cli"]
ADMIN_CONF = "/etc/kubernetes/admin.conf"
LOG_DIR = Path("/var/lib/podsec/u7s/log")


def sh(*argv: str, timeout: float = 60) -> str:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {r.stderr[-1000:]}")
    return r.stdout


def reexec_private(flag: str = "PODSEC_BENCH_NS") -> None:
    """Re-run this benchmark in a private mount namespace (once)."""
    if not os.environ.get(flag):
        os.environ[flag] = "1"
        os.execvp(
            "unshare", ["unshare", "--mount", "--propagation", "private", sys.executable, *sys.argv]
        )


def missing_prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not (K8S_BIN / "kubeadm").exists() or not (IMAGES / "index.json").exists():
        return "run scripts/build-kubernetes and scripts/build-images first"
    return None


@contextlib.contextmanager
def sandbox(tmp: Path) -> Iterator[dict[str, str]]:
    """The node sandbox (state in ``tmp``, which must not be below an overlaid directory:
    /tmp, not /var/tmp); the environment podsec's commands run with."""
    with node_sandbox.sandbox(tmp):
        env = dict(os.environ)
        env.update(
            PATH=f"{K8S_BIN}:{REPO / '.venv/bin'}:{env.get('PATH', '/usr/bin:/bin')}",
            U7S_REGISTRY="registry.local",
            U7S_PLATFORM="p10",
            U7S_CNI_PLUGIN="bridge",
            PODSEC_U7S_OCI_IMAGES=str(IMAGES),
            KUBECONFIG=ADMIN_CONF,
        )
        try:
            yield env
        finally:
            node_sandbox.restore_tun(tmp)


# --- the API, without kubectl's start-up cost --------------------------------------------


class Api:
    """HTTPS to the API server with admin.conf's client certificate, one kept-alive
    connection (so a measured request is the API's time, not a TLS handshake's)."""

    def __init__(self, kubeconfig: str = ADMIN_CONF):
        raw = json.loads(
            sh("kubectl", "config", "view", "--raw", "-o", "json", f"--kubeconfig={kubeconfig}")
        )
        cluster = raw["clusters"][0]["cluster"]
        user = raw["users"][0]["user"]
        self._dir = tempfile.TemporaryDirectory(prefix="podsec-bench-api-")
        d = Path(self._dir.name)
        for name, key in (
            ("ca.crt", cluster["certificate-authority-data"]),
            ("client.crt", user["client-certificate-data"]),
            ("client.key", user["client-key-data"]),
        ):
            (d / name).write_bytes(base64.b64decode(key))
        self.ctx = ssl.create_default_context(cafile=str(d / "ca.crt"))
        self.ctx.load_cert_chain(d / "client.crt", d / "client.key")
        server = cluster["server"].removeprefix("https://")
        self.host, _, port = server.partition(":")
        self.port = int(port or 443)
        self.conn: http.client.HTTPSConnection | None = None

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
        """(status, JSON body, seconds)."""
        data = None if body is None else json.dumps(body).encode()
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(
                    self.host, self.port, context=self.ctx, timeout=60
                )
            t = time.perf_counter()
            try:
                self.conn.request(
                    method, path, body=data, headers={"Content-Type": "application/json"}
                )
                resp = self.conn.getresponse()
                payload = resp.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            elapsed = time.perf_counter() - t
            return resp.status, json.loads(payload or b"{}"), elapsed
        raise AssertionError("unreachable")

    def get(self, path: str) -> Any:
        status, body, _t = self.request("GET", path)
        return body if status == 200 else None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self._dir.cleanup()


def node_ready(api: Api) -> bool:
    nodes = api.get("/api/v1/nodes")
    items = (nodes or {}).get("items") or []
    return bool(items) and any(
        c["type"] == "Ready" and c["status"] == "True" for c in items[0]["status"]["conditions"]
    )


def wait(what: str, probe: Any, timeout: float = 300, interval: float = 0.25) -> float:
    """Poll ``probe`` until true; the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if probe():
                return time.monotonic()
        time.sleep(interval)
    raise SystemExit(f"timed out waiting for {what}")


# --- init → Ready --------------------------------------------------------------------------


@dataclass
class Init:
    t0: float  # monotonic
    epoch0: float  # wall clock at t0
    done: float  # podsec u7s kubeadm init exited (s after t0)
    ready: float  # node Ready (s after t0)
    cpu: float  # CPU seconds of every process of the node from t0 to Ready
    marks: dict[str, float] = field(default_factory=dict)  # podsec's own step marks
    stderr: str = ""

    def phases(self) -> list[tuple[str, float]]:
        out, prev = [], 0.0
        for phase in ("runtime", "import", "kubeadm", "admission"):
            if f"{phase} done" in self.marks:
                end = self.marks[f"{phase} done"]
                start = self.marks.get(f"{phase} ...", prev)
                if start > prev + 0.05:
                    out.append(
                        (f"(between {out[-1][0] if out else 'start'} and {phase})", start - prev)
                    )
                out.append((phase, end - start))
                prev = end
        out.append(("podsec's exit", self.done - prev))
        out.append(("init exit → Ready", self.ready - self.done))
        return out


def init_node(env: dict[str, str], cpu: harness.CpuGroup, extra: list[str] | None = None) -> Init:
    t0, epoch0 = time.monotonic(), time.time()
    c0 = cpu.seconds()
    proc = subprocess.run(
        [*PODSEC, "u7s", "kubeadm", "init", "--skip-phases=addon/coredns", *(extra or [])],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        preexec_fn=cpu.preexec,
    )
    done = time.monotonic() - t0
    if proc.returncode != 0:
        print(proc.stderr[-3000:])
        raise SystemExit("kubeadm init failed")
    api = Api()
    try:
        ready = wait("node Ready", lambda: node_ready(api)) - t0
    finally:
        api.close()
    marks = {
        m.group(2) + " " + m.group(3): float(m.group(1))
        for m in re.finditer(r"\[podsec\s+([\d.]+)s\] (\S+) (\.\.\.|done)", proc.stderr)
    }
    return Init(t0, epoch0, done, ready, cpu.seconds() - c0, marks, proc.stderr)


def reset(env: dict[str, str]) -> None:
    subprocess.run(
        [*PODSEC, "u7s", "kubeadm", "reset"], env=env, capture_output=True, timeout=300, check=False
    )
    subprocess.run([*PODSEC, "u7s", "stop"], env=env, capture_output=True, timeout=120, check=False)


def kill_group(cpu: harness.CpuGroup) -> None:
    """Whatever of the node outlived reset (nothing, normally)."""
    for pid in cpu.pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --- where the time after kubeadm goes -----------------------------------------------------

_KLOG = re.compile(r"^[IWEF](\d{2})(\d{2}) (\d{2}):(\d{2}):(\d{2})\.(\d{6})")


def klog_events(path: Path, patterns: dict[str, str], epoch0: float) -> dict[str, float]:
    """First time (s after ``epoch0``) each pattern appears in a klog-format log."""
    out: dict[str, float] = {}
    if not path.exists():
        return out
    year = datetime.datetime.now().year
    for line in path.read_text(errors="replace").splitlines():
        m = _KLOG.match(line)
        if not m:
            continue
        for name, pat in patterns.items():
            if name not in out and pat in line:
                mo, d, hh, mm, ss, us = (int(x) for x in m.groups())
                ts = datetime.datetime(year, mo, d, hh, mm, ss, us).timestamp()
                out[name] = ts - epoch0
    return out


KUBELET_EVENTS = {
    "kubelet started": "Started kubelet",
    "node registered": "Successfully registered node",
    "kubelet restarted (2nd start)": "Starting kubelet main sync loop",
    "network not ready": "network plugin is not ready",
    "NodeReady event": "NodeReady",
}


def node_conditions(api: Api, epoch0: float) -> dict[str, float]:
    nodes = api.get("/api/v1/nodes") or {}
    out: dict[str, float] = {}
    for item in nodes.get("items") or []:
        created = item["metadata"]["creationTimestamp"]
        out["Node object created"] = _rfc3339(created) - epoch0
        for c in item["status"]["conditions"]:
            if c["type"] == "Ready":
                out["Ready condition True (API)"] = _rfc3339(c["lastTransitionTime"]) - epoch0
    return out


def _rfc3339(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def kubelet_starts(path: Path, epoch0: float) -> list[float]:
    """Every kubelet start (s after ``epoch0``) in its log."""
    starts = []
    if not path.exists():
        return starts
    year = datetime.datetime.now().year
    for line in path.read_text(errors="replace").splitlines():
        m = _KLOG.match(line)
        if m and "Version: v1.20" in line and "server.go" in line:
            mo, d, hh, mm, ss, us = (int(x) for x in m.groups())
            starts.append(datetime.datetime(year, mo, d, hh, mm, ss, us).timestamp() - epoch0)
    return starts


# --- processes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    name: str
    rss_kb: int
    pss_kb: int
    podsec: bool


def processes(cpu: harness.CpuGroup) -> list[Proc]:
    out = []
    for pid in cpu.pids():
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            rss = harness.status_kb(pid, "VmRSS")
            pss = 0
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        pss = int(line.split()[1])
        except (OSError, ValueError):
            continue
        words = [w.decode(errors="replace") for w in cmd if w]
        if not words or rss == 0:
            continue
        # python -m podsec.cli u7s ports sync …, and nsenter wrapping one of them (rootlesskit's
        # argv holds the child's command too, but rootlesskit is not podsec's program)
        prog = Path(words[0]).name
        at = next((i for i, w in enumerate(words) if w.startswith("podsec.")), None)
        if at is not None and not (prog.startswith("python") or prog == "nsenter"):
            at = None
        if at is not None:
            name = " ".join(w for w in words[at + 1 : at + 4] if not w.startswith("-"))
            if Path(words[0]).name == "nsenter":
                name = f"nsenter for {name}"
        else:
            name = Path(words[0]).name
        out.append(Proc(pid, name, rss, pss, at is not None))
    return out
