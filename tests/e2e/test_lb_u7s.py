"""The seed's HA walk-through with real rootless nodes: haproxy in front, two control planes,
a worker, and its NodePorts exposed by `ports sync`.

Every "machine" is a network namespace on one bridge; a u7s node's machine also gets its own
mount namespace with the node sandbox of tests/fixtures/sandbox.py (as the u7s e2e and the demo:
overlays, every node-state path empty), so its u7s-admin (a uid of its own), /etc/kubernetes and
etcd exist only there and nodes never collide with each other, with another test's node on
this host or with what an earlier run left.

    ha      10.214.N.21 + VIP .100  haproxy rendered by `podsec lb haproxy` (the seed's single
                                    haproxy, the endpoint an extra address on its interface)
    cp1     .11                     `podsec u7s kubeadm init --control-plane-endpoint VIP:8443`
    cp2     .12                     `podsec u7s kubeadm join VIP:8443 … --control-plane`, then
                                    `podsec lb add-server master02 …`
    w1      .31                     `podsec u7s kubeadm join VIP:8443 …` (worker), running
                                    `podsec u7s ports sync` with the node's own credentials
    client  .41                     kubectl and HTTP probes

Shown: init and joins through the endpoint (admin.conf and the printed join commands name the
VIP); both control planes and the worker Ready; a pod's NodePort reachable on the worker's
address and through haproxy's :80 ingress frontend without any manual port command, and gone
once the Service is deleted; cp1's apiserver stopped, kubectl keeps working through haproxy.
Not shown: stopping a whole control-plane *node* — with two stacked etcd members that loses
etcd's quorum by design (HA needs three control planes or an external etcd; test_lb_ha.py
shows node loss with an external etcd).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from tests.fixtures import netns
from tests.fixtures.require import (
    IMAGES_DIR,
    K8S_BIN,
    missing,
    require_path,
    require_root,
    require_tool,
)
from tests.integration import lb_env
from tests.integration.lb_env import free_node_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.rootless]

REPO = Path(__file__).resolve().parents[2]
PODSEC = [sys.executable, "-m", "podsec.cli"]
ROLES = {"cp1": 11, "cp2": 12, "w1": 31, "ha": 21, "client": 41}
USER = "u7s-admin"


@dataclass
class Machine:
    role: str
    netns: str
    holder: subprocess.Popen[bytes] | None = None  # owns the private mount namespace
    env: dict[str, str] = field(default_factory=dict)

    def argv(self, *cmd: str) -> list[str]:
        if self.holder is not None:
            pid = self.holder.pid
            return ["nsenter", f"--target={_leaf(pid)}", "--mount", "--net", *cmd]
        return ["ip", "netns", "exec", self.netns, *cmd]

    def run(
        self, *cmd: str, check: bool = True, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            self.argv(*cmd),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=self.env or None,
            input=input,
        )
        if check and r.returncode != 0:
            raise AssertionError(
                f"[{self.role}] {' '.join(cmd)}: rc={r.returncode}\n{r.stderr[-3000:]}\n{r.stdout[-2000:]}"
            )
        return r


def _leaf(pid: int) -> int:
    """The sleeping process at the end of `timeout … ip netns exec … unshare … sleep`."""
    while True:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if not kids:
            return pid
        pid = int(kids[0])


@dataclass
class Lab:
    work: Path
    prefix: str
    machines: dict[str, Machine]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def ip(self, role: str) -> str:
        return f"{self.prefix}.{ROLES[role]}"

    @property
    def vip(self) -> str:
        return f"{self.prefix}.100"

    def http_get(self, host: str, port: int) -> str | None:
        code = (
            "import urllib.request,sys\n"
            "try:\n"
            f"    sys.stdout.write(urllib.request.urlopen('http://{host}:{port}/', timeout=5).read().decode())\n"
            "except Exception:\n"
            "    pass\n"
        )
        out = self.machines["client"].run(sys.executable, "-c", code, check=False).stdout
        return out or None


@contextlib.contextmanager
def lab(work: Path) -> Iterator[Lab]:
    tag = f"pslu{os.getpid()}"
    prefix = f"10.214.{os.getpid() % 250}"
    switch = f"{tag}-sw"
    names = {role: f"{tag}-{role}" for role in ROLES}
    created: list[str] = []
    machines = {role: Machine(role, ns) for role, ns in names.items()}
    the_lab = Lab(work, prefix, machines)
    try:
        netns.build_lan(switch, names, ROLES, prefix, created, gateway=True)
        yield the_lab
    finally:
        for proc in reversed(the_lab.procs):
            with contextlib.suppress(Exception):
                lb_env.stop(proc)
        for m in machines.values():
            if m.holder is not None:
                with contextlib.suppress(Exception):
                    lb_env.stop(m.holder)
        netns.delete(created)


def _u7s_machine(the_lab: Lab, role: str, uid: int) -> Machine:
    """Give ``role`` a private mount namespace with the node sandbox (state in the lab's
    ``role`` directory), u7s-admin (a uid of its own) and the environment the u7s e2e uses
    (offline images, bridge CNI)."""
    m = the_lab.machines[role]
    work = the_lab.work / role
    work.mkdir()
    # not `ip netns exec`: it remounts /sys, and the kubelet then finds no cgroup mounts;
    # the network namespace is entered before the sandbox hides /run/netns' mounts
    m.holder = lb_env.start(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "nsenter",
            f"--net=/run/netns/{m.netns}",
            sys.executable,
            "-m",
            "tests.fixtures.sandbox",
            str(work),
            "--",
            "sleep",
            "infinity",
        ],
        work / "holder.log",
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert wait_until(
        lambda: (
            _leaf(m.holder.pid) != m.holder.pid
            and Path(f"/proc/{_leaf(m.holder.pid)}/comm").read_text().strip() == "sleep"
        ),
        20,
    ), (work / "holder.log").read_text()  # type: ignore[union-attr]
    m.run("sh", "-c", f'printf "%s\\n" "{role}" > /etc/hostname')
    # a uid nobody else on this host uses: other tests kill their u7s-admin's processes by uid
    m.run(
        "useradd",
        "--system",
        "--uid",
        str(uid),
        "--user-group",
        "--home-dir",
        "/var/lib/u7s-admin",
        "--shell",
        "/bin/sh",
        USER,
    )
    m.env = dict(os.environ)
    m.env.update(
        PATH=f"{K8S_BIN}:{REPO / '.venv/bin'}:{m.env.get('PATH', '/usr/bin:/bin')}",
        PYTHONPATH=str(REPO / "src"),
        U7S_REGISTRY="registry.local",
        U7S_PLATFORM="p10",
        U7S_CNI_PLUGIN="bridge",
        PODSEC_U7S_OCI_IMAGES=str(IMAGES_DIR / "oci"),
        KUBECONFIG="/etc/kubernetes/admin.conf",
    )
    return m


HTTPD_POD = """apiVersion: v1
kind: Pod
metadata: {name: web, namespace: lbweb, labels: {app: web}}
spec:
  nodeName: w1   # the bridge CNI of the test nodes has no cross-node pod network
  containers:
  - name: httpd
    image: registry.local/p10/busybox:1.35
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www && echo podsec-nodeport > /www/index.html && exec httpd -f -p 8080 -h /www"]
"""
JOIN_RE = re.compile(
    r"kubeadm join (?P<endpoint>\S+) --token (?P<token>\S+) \\\s+"
    r"--discovery-token-ca-cert-hash (?P<hash>\S+)(?: \\\s+--control-plane --certificate-key (?P<key>\S+))?"
)


def _diagnose(m: Machine, port: int, kubectl, work: Path) -> str:  # type: ignore[no-untyped-def]
    """What the node sees when a NodePort does not answer (for the failure message)."""
    inside = m.run(
        *PODSEC,
        "u7s",
        "nsenter",
        "sh",
        "-c",
        f"wget -q -T 3 -O- http://127.0.0.1:{port}/; echo rc=$?; "
        f"iptables-save 2>&1 | grep -E '{port}|KUBE-SVC|KUBE-SEP' | grep -v '^:'; "
        "wget -q -T 3 -O- http://$(ip -4 -o addr show cni0 | sed 's/.*inet \\([0-9.]*\\)\\.1\\/.*/\\1.2/'):8080/; echo pod-rc=$?; "
        "cat /proc/sys/net/ipv4/conf/all/route_localnet",
        check=False,
    )
    pods = kubectl("get", "pods,endpoints", "-A", "-o", "wide", check=False).stdout
    return (
        f"port-sync: {(work / 'port-sync.log').read_text()}\ninside: {inside.stdout} {inside.stderr}\n"
        f"pods: {pods}"
    )


def _stop_node(m: Machine, uid: int) -> None:
    """Stop a u7s machine; everything it wrote is in its sandbox (no reset needed), which
    goes with its holder at the lab's teardown."""
    m.run(*PODSEC, "u7s", "stop", check=False, timeout=120)
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            with contextlib.suppress(OSError, ProcessLookupError):
                if p.stat().st_uid == uid:
                    os.kill(int(p.name), signal.SIGKILL)
    time.sleep(1)


def test_rootless_ha_control_plane_behind_haproxy(tmp_path: Path) -> None:
    require_root()
    if not os.environ.get("PODSEC_TEST_NS"):
        missing("needs scripts/test-env (registry.local and a private mount namespace)")
    require_tool(
        "haproxy",
        "rootlesskit",
        "slirp4netns",
        "containerd",
        "runc",
        "nsenter",
        "kubectl",
        "kubeadm",
        "kubelet",
        "useradd",
    )
    require_path(IMAGES_DIR / "oci" / "index.json", "the local v1.20.2 images")
    base_uid = 61000 + (os.getpid() % 300) * 3
    uids = {"cp1": base_uid, "cp2": base_uid + 1, "w1": base_uid + 2}
    started: list[str] = []
    with lab(tmp_path) as net:
        ha, client = net.machines["ha"], net.machines["client"]
        cfg = tmp_path / "haproxy.cfg"

        def restart_haproxy() -> None:
            if net.procs:
                lb_env.stop(net.procs.pop(0))
            net.procs.insert(
                0, lb_env.start(ha.argv("haproxy", "-db", "-f", str(cfg)), tmp_path / "haproxy.log")
            )

        # ---- haproxy first (kubeadm init reaches the API through the endpoint) ------------
        node_port = free_node_port()
        cluster = tmp_path / "cluster.yaml"
        cluster.write_text(
            yaml.safe_dump(
                {
                    "vip": net.vip,
                    "control_plane": [{"name": "master01", "address": net.ip("cp1")}],
                    "ingress": {
                        "node_port": node_port,
                        "nodes": [{"name": "w1", "address": net.ip("w1")}],
                    },
                    "haproxy": {
                        "log": None,
                        "chroot": None,
                        "user": None,
                        "group": None,
                        "stats_socket": None,
                    },
                }
            )
        )
        # the seed: "поднимите на сетевом интерфейсе дополнительный IP-адрес" for the endpoint
        ha.run("ip", "addr", "add", f"{net.vip}/24", "dev", "eth0")
        ha.run(*PODSEC, "lb", "haproxy", "--cluster", str(cluster), "--output", str(cfg))
        restart_haproxy()

        def u7s(role: str, *args: str) -> subprocess.CompletedProcess[str]:
            m = net.machines[role]
            r = m.run(
                *PODSEC, "u7s", "kubeadm", *args, f"--node-name={role}", check=False, timeout=900
            )
            assert r.returncode == 0, (
                f"{role}: kubeadm {args[0]} failed:\n{r.stderr[-4000:]}\n{r.stdout[-3000:]}"
            )
            return r

        try:
            # ---- cp1: init with the VIP as control-plane endpoint --------------------------
            cp1 = _u7s_machine(net, "cp1", uids["cp1"])
            started.append("cp1")
            init = u7s(
                "cp1",
                "init",
                "--skip-phases=addon/coredns",
                f"--apiserver-advertise-address={net.ip('cp1')}",
                f"--control-plane-endpoint={net.vip}:8443",
            )
            joins = {("cp" if m["key"] else "worker"): m for m in JOIN_RE.finditer(init.stdout)}
            assert set(joins) == {"cp", "worker"}, init.stdout[-3000:]
            assert {m["endpoint"] for m in joins.values()} == {f"{net.vip}:8443"}
            admin = cp1.run("cat", "/etc/kubernetes/admin.conf").stdout
            assert (
                yaml.safe_load(admin)["clusters"][0]["cluster"]["server"]
                == f"https://{net.vip}:8443"
            )
            kubeconfig = tmp_path / "admin.conf"
            kubeconfig.write_text(admin)
            kubeconfig.chmod(0o600)

            def kubectl(
                *args: str, check: bool = True, input: str | None = None
            ) -> subprocess.CompletedProcess[str]:
                return client.run(
                    "kubectl",
                    f"--kubeconfig={kubeconfig}",
                    "--request-timeout=20s",
                    *args,
                    check=check,
                    input=input,
                )

            def ready_nodes() -> set[str]:
                r = kubectl("get", "nodes", "-o", "json", check=False)
                if r.returncode != 0:
                    return set()
                return {
                    n["metadata"]["name"]
                    for n in json.loads(r.stdout)["items"]
                    if any(
                        c["type"] == "Ready" and c["status"] == "True"
                        for c in n["status"]["conditions"]
                    )
                }

            assert kubectl("get", "--raw", "/healthz").stdout.strip() == "ok"

            # ---- cp2: control-plane join through the VIP, then into haproxy ---------------
            cp, wk = joins["cp"], joins["worker"]
            _u7s_machine(net, "cp2", uids["cp2"])
            started.append("cp2")
            u7s(
                "cp2",
                "join",
                cp["endpoint"],
                "--token",
                cp["token"],
                "--discovery-token-ca-cert-hash",
                cp["hash"],
                "--control-plane",
                "--certificate-key",
                cp["key"],
                f"--apiserver-advertise-address={net.ip('cp2')}",
            )
            ha.run(*PODSEC, "lb", "add-server", "master02", net.ip("cp2"), "--config", str(cfg))
            assert f"server master02 {net.ip('cp2')}:6443 check" in cfg.read_text()
            restart_haproxy()

            # ---- w1: worker join; its NodePorts exposed by the controller -----------------
            w1 = _u7s_machine(net, "w1", uids["w1"])
            started.append("w1")
            u7s(
                "w1",
                "join",
                wk["endpoint"],
                "--token",
                wk["token"],
                "--discovery-token-ca-cert-hash",
                wk["hash"],
            )
            assert wait_until(lambda: ready_nodes() == {"cp1", "cp2", "w1"}, 300, 3), kubectl(
                "get", "nodes", check=False
            ).stdout
            roles = kubectl(
                "get", "nodes", "-l", "node-role.kubernetes.io/master", "-o", "name"
            ).stdout.split()
            assert sorted(roles) == ["node/cp1", "node/cp2"]

            # no port command and no controller started by hand: the node's supervisor runs
            # `podsec u7s ports sync` next to the kubelet
            # signature enforcement is not what this test is about (the test image is unsigned
            # and no registry runs here): the namespace is exempt as kube-system is
            kubectl("create", "namespace", "lbweb")
            kubectl("label", "namespace", "lbweb", "podsec.alt/admission=skip")
            sa = ("get", "serviceaccount", "default", "-n", "lbweb")
            assert wait_until(lambda: kubectl(*sa, check=False).returncode == 0, 60, 1)
            kubectl("apply", "-f", "-", input=HTTPD_POD)
            web = ("-n", "lbweb", "web")
            kubectl(
                "create", "service", "nodeport", *web, "--tcp=80:8080", f"--node-port={node_port}"
            )

            def pod_running() -> bool:
                phase = kubectl("get", "pod", *web, "-o", "jsonpath={.status.phase}", check=False)
                return phase.stdout.strip() == "Running"

            assert wait_until(pod_running, 180, 2), kubectl(
                "describe", "pod", *web, check=False
            ).stdout[-2000:]
            endpoints = ("get", "endpoints", *web, "-o", "jsonpath={.subsets[*].addresses[*].ip}")

            def has_endpoints() -> bool:
                return bool(kubectl(*endpoints, check=False).stdout.strip())

            assert wait_until(has_endpoints, 120, 2)
            assert wait_until(
                lambda: net.http_get(net.ip("w1"), node_port) == "podsec-nodeport\n", 120, 1
            ), _diagnose(w1, node_port, kubectl, tmp_path)
            # u7s-admin's socket and state are found without flags; the runtime's own forwards
            # (10250 …) have no owner, the Service's has its name
            listing = json.loads(
                w1.run(sys.executable, "-m", "podsec.cli.u7s_ports", "list", "--json").stdout
            )
            owners = {e["hostPort"]: e["owner"] for e in listing}
            assert owners[node_port] == "lbweb/web" and owners[10250] == "", owners
            # haproxy :80 → w1:nodePort → kube-proxy in w1's namespace → the pod
            assert wait_until(lambda: net.http_get(net.vip, 80) == "podsec-nodeport\n", 60, 1)

            # ---- cp1's apiserver goes away: kubectl keeps working through haproxy ---------
            # (only the apiserver: with two stacked etcd members, losing a whole node loses
            # etcd's quorum — real HA needs three control planes or an external etcd)
            cp1.run(
                "mv",
                "/etc/kubernetes/manifests/kube-apiserver.yaml",
                "/etc/kubernetes/kube-apiserver.yaml.off",
            )
            direct = ("get", "--raw", "/healthz", f"--server=https://{net.ip('cp1')}:6443")
            assert wait_until(lambda: kubectl(*direct, check=False).returncode != 0, 120, 2)
            for _ in range(6):  # roundrobin would send half of these to cp1
                assert kubectl("get", "--raw", "/healthz").stdout.strip() == "ok"
            assert kubectl("get", "nodes").returncode == 0

            kubectl("delete", "service", *web)
            assert wait_until(lambda: net.http_get(net.ip("w1"), node_port) is None, 60, 1)
        finally:
            for role in reversed(started):
                _stop_node(net.machines[role], uids[role])
