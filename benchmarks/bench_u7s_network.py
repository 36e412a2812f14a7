"""Which rootless network configuration podsec should run: every setting podsec controls,
measured with iperf3 against the rootful paths of the same machine, in one run.

What podsec controls for a u7s node: rootlesskit's ``--mtu`` (the tap device slirp4netns
serves), the port driver (``builtin`` or ``slirp4netns``), slirp4netns' sandbox and seccomp,
and the MTU of the pods' bridge (the CNI configuration). Each configuration runs a bare
rootlesskit (no Kubernetes: the path is the same, and one configuration takes seconds) as a
throw-away unprivileged user, with a "pod" namespace on a bridge inside it the way the bridge
CNI wires one, and measures:

* host → namespace through the port driver (what a NodePort forward is);
* host → pod: the same, then DNAT to the pod over the bridge (what kube-proxy does);
* pod → host and pod → another host (slirp4netns egress; the other host is a network
  namespace behind a veth of MTU 1500, as a real LAN is: a large tap MTU must not collapse
  throughput there);
* fresh connections: 5 × 2 MB, each a new connection, worst time (slirp4netns has stalled
  seconds at the start of connections with large MTUs: upstream issues #128, #284).

The baselines, same run: loopback, and a veth pair between two network namespaces (rootful).
The whole benchmark runs in its own network and mount namespaces (a private /etc for the
throw-away user): the machine's network and accounts are untouched.

Each configuration is measured three times, interleaved with the others (the machine's load
drifts), and the median is kept.

Run as root: python benchmarks/bench_u7s_network.py [--quick | --all]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import harness
import net

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

USER = "podsec-netbench"
HOST_IP, REMOTE_IP = "10.232.0.1", "10.232.0.2"
POD_NET = "10.244.0"
POD_IP = f"{POD_NET}.2"


@dataclass(frozen=True)
class Config:
    mtu: int
    pod_mtu: int
    port_driver: str = "builtin"
    sandbox: bool = True

    @property
    def label(self) -> str:
        extra = "" if self.sandbox else ", no sandbox/seccomp"
        return f"tap MTU {self.mtu}, pod MTU {self.pod_mtu}, {self.port_driver} ports{extra}"

    def rootlesskit_flags(self) -> list[str]:
        auto = "auto" if self.sandbox else "false"
        return [
            "--net=slirp4netns",
            f"--mtu={self.mtu}",
            "--disable-host-loopback",
            f"--slirp4netns-sandbox={auto}",
            f"--slirp4netns-seccomp={auto}",
            f"--port-driver={self.port_driver}",
        ]


def podsec_config() -> Config:
    """What podsec runs today (podsec.u7s.netconf: rootlesskit's flags and the pods' MTU)."""
    from podsec.u7s import netconf

    return Config(
        netconf.MTU,
        netconf.POD_MTU or 1500,
        netconf.PORT_DRIVER,
        netconf.SLIRP_SANDBOX != "false",
    )


def sh(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def private_user(tmp: Path) -> Iterator[tuple[int, int]]:
    """A throw-away user with subordinate ids, in a private /etc (overlay)."""
    (tmp / "etc.up").mkdir()
    (tmp / "etc.work").mkdir()
    sh(
        "mount",
        "-t",
        "overlay",
        "overlay",
        "-o",
        f"lowerdir=/etc,upperdir={tmp}/etc.up,workdir={tmp}/etc.work",
        "/etc",
    )
    try:
        sh("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", USER)
        sh("usermod", "--add-subuids", "3000000-3065535", "--add-subgids", "3000000-3065535", USER)
        ids = subprocess.run(["id", "-u", USER], capture_output=True, text=True, check=True)
        gid = subprocess.run(["id", "-g", USER], capture_output=True, text=True, check=True)
        yield int(ids.stdout), int(gid.stdout)
    finally:
        subprocess.run(["umount", "-l", "/etc"], check=False)


class Node:
    """A bare rootlesskit namespace (as the user) with one pod namespace on a bridge."""

    def __init__(self, cfg: Config, uid: int, gid: int, tmp: Path):
        self.cfg = cfg
        self.state = Path(
            tempfile.mkdtemp(prefix=f"rk-{cfg.mtu}-{cfg.pod_mtu}-{cfg.port_driver}-", dir=tmp)
        )
        os.chown(self.state, uid, gid)
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.state),
            "XDG_RUNTIME_DIR": str(self.state),
        }
        self.proc = subprocess.Popen(
            [
                "setpriv",
                f"--reuid={uid}",
                f"--regid={gid}",
                "--clear-groups",
                "--",
                "rootlesskit",
                f"--state-dir={self.state}/rk",
                *cfg.rootlesskit_flags(),
                "sleep",
                "infinity",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.state,
        )
        deadline = time.monotonic() + 20
        pid_file = self.state / "rk" / "child_pid"
        while not pid_file.exists() or not pid_file.read_text().strip():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"rootlesskit did not start: {self.proc.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.05)
        self.child = int(pid_file.read_text())
        self.api = self.state / "rk" / "api.sock"
        # the user-space copies: rootlesskit's parent (builtin ports) and slirp4netns
        self.path_pids = [
            p
            for p in net.descendants(self.proc.pid)
            if net.comm(p) in ("rootlesskit", "slirp4netns")
        ]
        self.pod = net.Netns()
        self._wire_pod()

    def ns(self, *argv: str) -> None:
        sh("nsenter", f"--net=/proc/{self.child}/ns/net", "--", *argv)

    def _wire_pod(self) -> None:
        m = str(self.cfg.pod_mtu)
        self.ns("ip", "link", "add", "cni0", "type", "bridge")
        self.ns("ip", "addr", "add", f"{POD_NET}.1/24", "dev", "cni0")
        sh(
            "ip",
            "link",
            "add",
            "vp0",
            "mtu",
            m,
            "netns",
            str(self.child),
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "mtu",
            m,
            "netns",
            str(self.pod.pid),
        )
        self.ns("ip", "link", "set", "vp0", "master", "cni0", "up")
        self.ns("ip", "link", "set", "cni0", "mtu", m, "up")
        self.pod.ip("addr", "add", f"{POD_IP}/24", "dev", "eth0")
        self.pod.ip("link", "set", "eth0", "up")
        self.pod.ip("route", "add", "default", "via", f"{POD_NET}.1")
        self.ns("sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.ns("sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1")
        # the bridge CNI's ipMasq, and kube-proxy's NodePort DNAT + masquerade
        self.ns(
            "iptables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-s",
            f"{POD_NET}.0/24",
            "!",
            "-d",
            f"{POD_NET}.0/24",
            "-j",
            "MASQUERADE",
        )
        self.ns(
            "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "127.0.0.0/8", "-j", "MASQUERADE"
        )

    def forward(self, host_port: int, child_port: int) -> None:
        sh(
            "rootlessctl",
            f"--socket={self.api}",
            "add-ports",
            f"127.0.0.1:{host_port}:{child_port}/tcp",
        )

    def dnat_to_pod(self, child_port: int) -> None:
        # from the builtin driver (it dials 127.0.0.1) and from slirp4netns' (it dials the tap)
        self.ns(
            "iptables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", str(child_port),
            "-j", "DNAT", "--to-destination", f"{POD_IP}:{child_port}",
        )  # fmt: skip
        self.ns(
            "iptables",
            "-t",
            "nat",
            "-A",
            "OUTPUT",
            "-p",
            "tcp",
            "-d",
            "127.0.0.1",
            "--dport",
            str(child_port),
            "-j",
            "DNAT",
            "--to-destination",
            f"{POD_IP}:{child_port}",
        )

    def close(self) -> None:
        self.pod.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def burst(node: Node, name: str, **kw: object) -> float:
    """Worst wall time of 5 fresh connections moving 2 MB each."""
    worst = 0.0
    for _ in range(5):
        t = time.monotonic()
        net.measure(name, nbytes="2M", **kw)  # type: ignore[arg-type]
        worst = max(worst, time.monotonic() - t)
    return worst


def run_config(
    cfg: Config, uid: int, gid: int, tmp: Path, seconds: int
) -> dict[str, net.Flow | float]:
    node = Node(cfg, uid, gid, tmp)
    out: dict[str, net.Flow | float] = {}
    try:
        pids = node.path_pids
        hp, cp = harness.free_port(), 15201
        node.forward(hp, cp)
        out["host→ns"] = net.measure(
            "host→ns",
            server_ns=node.child,
            server_bind="0.0.0.0",
            client_ns=None,
            target="127.0.0.1",
            port=hp,
            server_port=cp,
            path_pids=pids,
            seconds=seconds,
        )
        hp2, cp2 = harness.free_port(), 15202
        node.forward(hp2, cp2)
        node.dnat_to_pod(cp2)
        out["host→pod"] = net.measure(
            "host→pod",
            server_ns=node.pod.pid,
            server_bind=POD_IP,
            client_ns=None,
            target="127.0.0.1",
            port=hp2,
            server_port=cp2,
            path_pids=pids,
            seconds=seconds,
        )
        out["pod→host"] = net.measure(
            "pod→host",
            server_ns=None,
            server_bind=HOST_IP,
            client_ns=node.pod.pid,
            target=HOST_IP,
            path_pids=pids,
            seconds=seconds,
        )
        remote = int(os.environ["PODSEC_BENCH_REMOTE"])
        out["pod→remote"] = net.measure(
            "pod→remote",
            server_ns=remote,
            server_bind=REMOTE_IP,
            client_ns=node.pod.pid,
            target=REMOTE_IP,
            path_pids=pids,
            seconds=seconds,
        )
        out["burst host→pod"] = burst(
            node,
            "burst host→pod",
            server_ns=node.pod.pid,
            server_bind=POD_IP,
            client_ns=None,
            target="127.0.0.1",
            port=hp2,
            server_port=cp2,
        )
        out["burst pod→remote"] = burst(
            node,
            "burst pod→remote",
            server_ns=remote,
            server_bind=REMOTE_IP,
            client_ns=node.pod.pid,
            target=REMOTE_IP,
        )
    finally:
        node.close()
    return out


def score(result: dict[str, net.Flow | float]) -> float:
    """The configuration to choose: best worst-path throughput, a stall disqualifies."""
    flows = [v for v in result.values() if isinstance(v, net.Flow)]
    stalls = [v for k, v in result.items() if k.startswith("burst") and isinstance(v, float)]
    if any(s > 1.0 for s in stalls):
        return 0.0
    # the geometric mean of the paths a cluster uses: none may be sacrificed for another
    prod = 1.0
    for f in flows:
        prod *= max(f.gbps, 1e-3)
    return prod ** (1 / len(flows))


# make bench: podsec's against the former default (65520, pods at 1500) and the neighbours;
# --all adds the port driver and slirp4netns' sandbox (and more MTUs)
CONFIGS = (
    Config(65520, 1500),
    Config(65520, 65520),
    Config(32768, 32768),
    Config(16384, 16384),
    Config(1500, 1500),
)
MORE = (
    Config(65520, 16384),
    Config(9000, 9000),
    Config(16384, 16384, port_driver="slirp4netns"),
    Config(16384, 16384, sandbox=False),
)
ROUNDS = 3  # every configuration measured this many times, interleaved: medians


def median_result(runs: list[dict[str, net.Flow | float]]) -> dict[str, net.Flow | float]:
    """Per path the median throughput and CPU per GB; the worst fresh-connection time."""
    out: dict[str, net.Flow | float] = {}
    for key in runs[0]:
        values = [r[key] for r in runs]
        if all(isinstance(v, float) for v in values):
            out[key] = max(v for v in values if isinstance(v, float))
            continue
        flows = [v for v in values if isinstance(v, net.Flow)]
        mid = sorted(flows, key=lambda f: f.gbps)[len(flows) // 2]
        per_gb = sorted(f.cpu_per_gb for f in flows if f.gbytes)
        cpu = per_gb[len(per_gb) // 2] * mid.gbytes if per_gb else mid.cpu
        out[key] = net.Flow(mid.name, mid.gbps, mid.gbytes, cpu, mid.wall, mid.retransmits)
    return out


@contextlib.contextmanager
def lan() -> Iterator[net.Netns]:
    """This (private) namespace is the host; another one behind a veth is a LAN peer."""
    sh("ip", "link", "set", "lo", "up")
    remote = net.Netns()
    try:
        sh("ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan1", "netns",
           str(remote.pid))  # fmt: skip
        sh("ip", "addr", "add", f"{HOST_IP}/24", "dev", "lan0")
        sh("ip", "link", "set", "lan0", "up")
        remote.ip("addr", "add", f"{REMOTE_IP}/24", "dev", "lan1")
        remote.ip("link", "set", "lan1", "up")
        os.environ["PODSEC_BENCH_REMOTE"] = str(remote.pid)
        yield remote
    finally:
        remote.close()


def show(cfg: Config, result: dict[str, net.Flow | float]) -> None:
    print(f"{cfg.label}:  score {score(result):.2f}")
    for k, v in result.items():
        if isinstance(v, net.Flow):
            print(
                f"  {k:18} {v.gbps:6.2f} Gbps  {v.cpu_per_gb:5.2f} CPU s/GB"
                f"  retransmits {v.retransmits}"
            )
        else:
            print(f"  {k:18} worst {v * 1000:.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2-second flows, 2 configurations")
    parser.add_argument("--all", action="store_true", help="every configuration (slow)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_u7s_network: needs root (skipped)")
        return 0
    tools = ("iperf3", "rootlesskit", "slirp4netns", "setpriv", "iptables")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        print(f"bench_u7s_network: missing {', '.join(missing)} (scripts/install-deps)")
        return 2
    if not os.environ.get("PODSEC_BENCH_NETNS"):
        os.environ["PODSEC_BENCH_NETNS"] = "1"
        argv = ["unshare", "--mount", "--net", "--propagation", "private"]
        os.execvp("unshare", [*argv, sys.executable, *sys.argv])
    seconds = 2
    current = podsec_config()
    configs = list(CONFIGS[:2] if args.quick else CONFIGS + MORE if args.all else CONFIGS)
    if current not in configs:
        configs.insert(0, current)
    tun = Path("/dev/net/tun")
    tun_mode = tun.stat().st_mode & 0o777
    results: dict[Config, dict[str, net.Flow | float]] = {}
    try:
        with (
            lan(),
            tempfile.TemporaryDirectory(prefix="podsec-bench-net-") as t,
            private_user(Path(t)) as (uid, gid),
            harness.load() as meter,
        ):
            tun.chmod(0o666)  # slirp4netns as a user (restored below)
            Path(t).chmod(0o755)
            loop, veth = net.rootful_baselines()
            runs: dict[Config, list[dict[str, net.Flow | float]]] = {c: [] for c in configs}
            for _round in range(1 if args.quick else ROUNDS):  # interleaved: the same drift
                for cfg in configs:
                    runs[cfg].append(run_config(cfg, uid, gid, Path(t), seconds))
            for cfg in configs:
                results[cfg] = median_result(runs[cfg])
                show(cfg, results[cfg])
    finally:
        tun.chmod(tun_mode)
    print(
        f"rootful loopback {loop.gbps:.2f} Gbps ({loop.cpu_per_gb:.2f} CPU s/GB), "
        f"veth {veth.gbps:.2f} Gbps ({veth.cpu_per_gb:.2f} CPU s/GB)"
    )
    best = max(configs, key=lambda c: score(results[c]))
    cur, top = score(results[current]), score(results[best])
    harness.record(
        f"rootless network settings: podsec's vs the best of {len(configs)} (bare rootlesskit)",
        figure=f"{current.label}: {cur:.2f} Gbps",
        baseline=f"best: {best.label}: {top:.2f} Gbps; rootful veth {veth.gbps:.2f} Gbps",
        ratio=f"{cur / top:.2f}× the best, {cur / veth.gbps:.2f}× rootful veth",
        goal="podsec's within 10 % of the best",
        met=cur >= 0.9 * top,
        load=meter.text,
        note="score: geometric mean of host→ns, host→pod, pod→host, pod→remote; 0 if a fresh "
        "connection stalls > 1 s",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
