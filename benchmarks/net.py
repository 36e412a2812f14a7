"""Network throughput with iperf3 (Debian's), for bench_u7s_node and bench_u7s_network.

Every measurement is one iperf3 client against one iperf3 server, each started in the network
namespace it is meant to be in (``nsenter --net=/proc/PID/ns/net``: a pod's, the rootless
node's, a scratch one). Namespaces made here belong to a ``sleep`` process (``unshare --net``),
never to ``ip netns add`` (that would leave files in /run/netns).

Throughput is what the receiver got (Gbps); CPU time is that of the iperf3 pair plus the
processes named as the path (slirp4netns, rootlesskit's parent: their user-space copies are
the rootless cost), as seconds per GB moved — comparable across paths whatever the load.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import harness

SECONDS = 4  # per measurement, after 1 s omitted (TCP slow start)


@dataclass(frozen=True)
class Flow:
    """One iperf3 measurement."""

    name: str
    gbps: float
    gbytes: float
    cpu: float  # seconds: iperf3 client + server + the path's processes
    wall: float
    retransmits: int = 0
    error: str = ""

    @property
    def cpu_per_gb(self) -> float:
        return self.cpu / self.gbytes if self.gbytes else float("nan")


def _enter(pid: int | None) -> list[str]:
    return [] if pid is None else ["nsenter", f"--net=/proc/{pid}/ns/net", "--"]


@contextlib.contextmanager
def iperf_server(ns_pid: int | None, bind: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [*_enter(ns_pid), "iperf3", "-s", "-1", "-B", bind, "-p", str(port), "-J"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def measure(
    name: str,
    *,
    server_ns: int | None,
    server_bind: str,
    client_ns: int | None,
    target: str,
    port: int | None = None,
    server_port: int | None = None,
    path_pids: Sequence[int] = (),
    seconds: int = SECONDS,
    nbytes: str | None = None,
) -> Flow:
    """iperf3 from ``client_ns`` to ``target:port``; the server listens in ``server_ns`` on
    ``server_bind:server_port`` (a NodePort forwards a different host port to it)."""
    server_port = server_port or port or harness.free_port()
    port = port or server_port
    with iperf_server(server_ns, server_bind, server_port) as server:
        deadline = time.monotonic() + 10
        while not _listening(server.pid, server_port) and time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"iperf3 server for {name} exited: {server.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.05)
        path0 = {p: _cpu(p) for p in path_pids}
        server0 = _cpu(server.pid)
        client = harness.run(
            [
                *_enter(client_ns),
                "iperf3",
                "-c",
                target,
                "-p",
                str(port),
                *(["-n", nbytes] if nbytes else ["-t", str(seconds), "-O", "1"]),
                "-J",
            ],
            capture=True,
        )
        server_cpu = _cpu(server.pid) - server0
        path_cpu = sum(_cpu(p) - c for p, c in path0.items())
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
    try:
        data = json.loads(client.stdout)
    except ValueError:
        data = {}
    if client.returncode != 0 or "error" in data or "sum_received" not in data.get("end", {}):
        why = data.get("error") or client.stderr.decode(errors="replace")[-300:]
        print(f"  {name}: iperf3 failed: {why}")
        return Flow(name, 0.0, 0.0, float("nan"), client.wall, error=str(why))
    end = data["end"]
    received = end["sum_received"]
    return Flow(
        name,
        received["bits_per_second"] / 1e9,
        received["bytes"] / 1e9,
        client.cpu + max(server_cpu, 0.0) + path_cpu,
        client.wall,
        int(end.get("sum_sent", {}).get("retransmits", 0)),
    )


def _cpu(pid: int) -> float:
    """CPU seconds of a process and all its threads (0 once it is gone)."""
    try:
        return harness.pid_cpu(pid) + _children_cpu(pid)
    except (OSError, ValueError, IndexError):
        return 0.0


def _children_cpu(pid: int) -> float:
    # nsenter execs, so the iperf3 server is the pid itself; reaped children count too
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def _listening(pid: int, port: int) -> bool:
    """Whether a TCP socket listens on ``port`` in the namespace of ``pid``."""
    try:
        text = Path(f"/proc/{pid}/net/tcp").read_text() + Path(f"/proc/{pid}/net/tcp6").read_text()
    except OSError:
        return False
    want = f":{port:04X}"
    return any(
        line.split()[1].endswith(want) and line.split()[3] == "0A"
        for line in text.splitlines()[1:]
        if len(line.split()) > 3
    )


# --- scratch namespaces ------------------------------------------------------------------


class Netns:
    """A network namespace held by a sleeping process (no /run/netns entry)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(["unshare", "--net", "--", "sleep", "infinity"])
        deadline = time.monotonic() + 5
        me = Path("/proc/self/ns/net").readlink()
        while Path(f"/proc/{self.proc.pid}/ns/net").readlink() == me:
            if time.monotonic() > deadline:
                raise SystemExit("unshare --net did not start")
            time.sleep(0.01)
        self.pid = self.proc.pid
        self.ip("link", "set", "lo", "up")

    def ip(self, *args: str) -> None:
        subprocess.run([*_enter(self.pid), "ip", *args], check=True, capture_output=True)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


def veth_pair(a: Netns, b: Netns, net: str = "10.231.0", mtu: int = 1500) -> tuple[str, str]:
    """A veth pair between ``a`` (NET.1) and ``b`` (NET.2); returns both addresses."""
    subprocess.run(
        [
            "ip",
            "link",
            "add",
            "vb0",
            "mtu",
            str(mtu),
            "netns",
            str(a.pid),
            "type",
            "veth",
            "peer",
            "name",
            "vb1",
            "mtu",
            str(mtu),
            "netns",
            str(b.pid),
        ],
        check=True,
        capture_output=True,
    )
    a.ip("addr", "add", f"{net}.1/24", "dev", "vb0")
    b.ip("addr", "add", f"{net}.2/24", "dev", "vb1")
    a.ip("link", "set", "vb0", "up")
    b.ip("link", "set", "vb1", "up")
    return f"{net}.1", f"{net}.2"


def rootful_baselines() -> list[Flow]:
    """Loopback inside one namespace, and a veth pair (MTU 1500) between two."""
    a, b = Netns(), Netns()
    try:
        loop = measure(
            "rootful loopback",
            server_ns=a.pid,
            server_bind="127.0.0.1",
            client_ns=a.pid,
            target="127.0.0.1",
        )
        _ip_a, ip_b = veth_pair(a, b)
        veth = measure(
            "rootful veth pair (2 netns, MTU 1500)",
            server_ns=b.pid,
            server_bind=ip_b,
            client_ns=a.pid,
            target=ip_b,
        )
    finally:
        a.close()
        b.close()
    return [loop, veth]


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def descendants(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        with contextlib.suppress(OSError):
            todo += children(p)
    return seen
