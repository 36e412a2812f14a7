"""HA control plane and service exposure, end to end, in network namespaces on this machine.

Topology (one bridge in a "switch" namespace, every other namespace a machine on it):

    etcd      10.213.N.10   external etcd (stacked etcd with two members would lose quorum)
    cp1, cp2  .11, .12      real kube-apiserver v1.20.2 each, same PKI, own advertise address
    ha1, ha2  .21, .22      haproxy + keepalived, rendered by `podsec lb haproxy|keepalived`
                            *inside* the namespace (so `keepalived -t` sees its interface);
                            ha1 MASTER/101, ha2 BACKUP/100, VIP .100
    worker    .31           a RootlessKit namespace (port driver builtin) with a listener
                            inside, and `podsec u7s ports sync` watching Services via the VIP
    client    .41           where kubectl and the TCP probes run

What it shows: kubectl through haproxy on the VIP works; both apiservers registered; stopping
one apiserver keeps kubectl working; a NodePort Service becomes reachable on the worker's
address and through haproxy's :80 ingress frontend without any manual port command, and stops
being reachable when deleted; stopping haproxy on the MASTER moves the VIP (check_apiserver.sh
fails there) and kubectl keeps working through it.

Not here (depends on the u7s engineers' node runtime): control planes and the worker as real
rootless kubeadm nodes (`podsec u7s kubeadm init --control-plane-endpoint VIP:8443`, control-
plane join). The apiservers here are plain processes in namespaces, the worker's "node" is a
RootlessKit namespace without a kubelet.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from tests.fixtures import netns
from tests.fixtures.kube import (
    CertAuthority,
    new_key,
    require_k8s_binaries,
    write_key,
    write_kubeconfig,
)
from tests.fixtures.require import require_root, require_tool
from tests.integration import lb_env
from tests.integration.lb_env import free_node_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

ROLES = {"etcd": 10, "cp1": 11, "cp2": 12, "ha1": 21, "ha2": 22, "worker": 31, "client": 41}
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Lab:
    work: Path
    prefix: str  # "10.213.N"
    ns: dict[str, str]
    switch: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def ip(self, role: str) -> str:
        return f"{self.prefix}.{ROLES[role]}"

    @property
    def vip(self) -> str:
        return f"{self.prefix}.100"

    def run(
        self, role: str, *argv: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["ip", "netns", "exec", self.ns[role], *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=dict(os.environ, PYTHONPATH=str(REPO / "src")),
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"[{role}] {' '.join(argv)}: rc={proc.returncode} {proc.stderr.strip()}"
            )
        return proc

    def start(self, name: str, role: str, *argv: str) -> subprocess.Popen[bytes]:
        log = self.work / f"{name}.log"
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
        proc = lb_env.start(["ip", "netns", "exec", self.ns[role], *argv], log, env)
        self.procs[name] = proc
        return proc

    def stop(self, name: str) -> None:
        lb_env.stop(self.procs.pop(name))

    def log(self, name: str) -> str:
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def holds_vip(self, role: str) -> bool:
        out = self.run(role, "ip", "-o", "-4", "addr", "show", "to", f"{self.vip}/32").stdout
        return bool(out.strip())

    def marker(self, host: str, port: int) -> str | None:
        """Connect from the client machine and read what answers."""
        code = (
            "import socket,sys\n"
            "try:\n"
            f"    s=socket.create_connection(('{host}',{port}),timeout=3); s.settimeout(3)\n"
            "    sys.stdout.write(s.recv(64).decode())\n"
            "except OSError:\n"
            "    pass\n"
        )
        out = self.run("client", sys.executable, "-c", code, check=False).stdout
        return out or None


@contextlib.contextmanager
def lab(work: Path) -> Iterator[Lab]:
    tag = f"pslb{os.getpid()}"
    prefix = f"10.213.{os.getpid() % 250}"
    ns = {role: f"{tag}-{role}" for role in ROLES}
    switch = f"{tag}-sw"
    created: list[str] = []
    the_lab = Lab(work, prefix, ns, switch)

    try:
        netns.build_lan(switch, ns, ROLES, prefix, created)
        yield the_lab
    finally:
        for name in reversed(list(the_lab.procs)):
            with contextlib.suppress(Exception):
                the_lab.stop(name)
        netns.delete(created)


def _pki(work: Path, lab_: Lab) -> dict[str, Path]:
    pki = work / "pki"
    pki.mkdir()
    ca = CertAuthority.create(pki, "ca", "kubernetes")
    fp = CertAuthority.create(pki, "front-proxy-ca", "front-proxy-ca")
    p = {"ca": ca.cert_path, "fp_ca": fp.cert_path}
    p["apiserver"], p["apiserver_key"] = ca.issue(
        pki,
        "apiserver",
        "kube-apiserver",
        server=True,
        client=False,
        dns=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
        ips=[lab_.ip("cp1"), lab_.ip("cp2"), lab_.vip, "127.0.0.1", "10.96.0.1"],
    )
    p["kubelet"], p["kubelet_key"] = ca.issue(
        pki, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", ["system:masters"]
    )
    p["admin"], p["admin_key"] = ca.issue(pki, "admin", "kubernetes-admin", ["system:masters"])
    p["fp"], p["fp_key"] = fp.issue(pki, "front-proxy-client", "front-proxy-client")
    sa = new_key("rsa")
    p["sa_key"] = write_key(pki / "sa.key", sa)
    from cryptography.hazmat.primitives import serialization

    p["sa_pub"] = pki / "sa.pub"
    p["sa_pub"].write_bytes(
        sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return p


def _apiserver_argv(bin_dir: Path, lab_: Lab, role: str, p: dict[str, Path]) -> list[str]:
    return [
        str(bin_dir / "kube-apiserver"),
        f"--advertise-address={lab_.ip(role)}",
        "--bind-address=0.0.0.0",
        "--secure-port=6443",
        "--insecure-port=0",
        f"--etcd-servers=http://{lab_.ip('etcd')}:2379",
        f"--client-ca-file={p['ca']}",
        f"--tls-cert-file={p['apiserver']}",
        f"--tls-private-key-file={p['apiserver_key']}",
        f"--kubelet-client-certificate={p['kubelet']}",
        f"--kubelet-client-key={p['kubelet_key']}",
        "--authorization-mode=Node,RBAC",
        "--allow-privileged=true",
        "--service-cluster-ip-range=10.96.0.0/12",
        f"--service-account-key-file={p['sa_pub']}",
        f"--service-account-signing-key-file={p['sa_key']}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--proxy-client-cert-file={p['fp']}",
        f"--proxy-client-key-file={p['fp_key']}",
        f"--requestheader-client-ca-file={p['fp_ca']}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User",
        f"--cert-dir={lab_.work / f'certs-{role}'}",
    ]


def test_ha_control_plane_and_node_ports(tmp_path: Path) -> None:
    require_root()
    require_tool("haproxy", "keepalived", "etcd", "kubectl", "curl", "rootlesskit", "slirp4netns")
    bin_dir = require_k8s_binaries("kube-apiserver")
    work = tmp_path
    with lab(work) as net:
        p = _pki(work, net)
        kubeconfig = write_kubeconfig(
            work / "admin.kubeconfig",
            server=f"https://{net.vip}:8443",
            ca_cert=p["ca"],
            client_cert=p["admin"],
            client_key=p["admin_key"],
            user="kubernetes-admin",
        )

        def kubectl(
            *args: str, server: str | None = None, check: bool = True
        ) -> subprocess.CompletedProcess[str]:
            extra = ["--server", server] if server else []
            return net.run(
                "client",
                "kubectl",
                "--kubeconfig",
                str(kubeconfig),
                "--request-timeout=10s",
                *extra,
                *args,
                check=check,
            )

        def healthy(server: str | None = None) -> bool:
            r = kubectl("get", "--raw", "/healthz", server=server, check=False)
            return r.returncode == 0 and r.stdout.strip() == "ok"

        # ---- control plane: external etcd + two apiservers --------------------------------
        etcd_ip = net.ip("etcd")
        net.start(
            "etcd",
            "etcd",
            "etcd",
            "--name=e2e",
            f"--data-dir={work / 'etcd'}",
            f"--listen-client-urls=http://{etcd_ip}:2379",
            f"--advertise-client-urls=http://{etcd_ip}:2379",
            "--listen-peer-urls=http://127.0.0.1:2380",
            "--initial-advertise-peer-urls=http://127.0.0.1:2380",
            "--initial-cluster=e2e=http://127.0.0.1:2380",
            "--log-level=warn",
            "--logger=zap",
        )
        for role in ("cp1", "cp2"):
            net.start(f"apiserver-{role}", role, *_apiserver_argv(bin_dir, net, role, p))
        for role in ("cp1", "cp2"):
            server = f"https://{net.ip(role)}:6443"
            assert wait_until(lambda s=server: healthy(s), 90, 0.5), net.log(f"apiserver-{role}")

        # ---- haproxy + keepalived on ha1/ha2, rendered by podsec inside each namespace -----
        node_port = free_node_port()
        cluster = work / "cluster.yaml"
        cluster.write_text(
            yaml.safe_dump(
                {
                    "vip": net.vip,
                    "lb_port": 8443,
                    "control_plane": [
                        {"name": "master01", "address": net.ip("cp1")},
                        {"name": "master02", "address": net.ip("cp2")},
                    ],
                    "ingress": {
                        "node_port": node_port,
                        "http_port": 80,
                        "nodes": [{"name": "worker01", "address": net.ip("worker")}],
                    },
                    "vrrp": {
                        "router_id": "PODSEC_E2E",
                        "virtual_router_id": random.randint(1, 255),
                        "auth_pass": "e2e",
                        "interval": 1,
                        "fall": 2,
                        "rise": 1,
                    },
                    # a sandbox: no chroot, no user switch, no shared stats socket
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
        for role, state, prio in (("ha1", "MASTER", "101"), ("ha2", "BACKUP", "100")):
            d = work / role
            d.mkdir()
            net.run(
                role,
                sys.executable,
                "-m",
                "podsec.cli",
                "lb",
                "haproxy",
                "--cluster",
                str(cluster),
                "--output",
                str(d / "haproxy.cfg"),
            )
            net.run(
                role,
                sys.executable,
                "-m",
                "podsec.cli",
                "lb",
                "keepalived",
                "--cluster",
                str(cluster),
                "--state",
                state,
                "--priority",
                prio,
                "--interface",
                "eth0",
                "--output",
                str(d / "keepalived.conf"),
            )
            assert f'script "{d / "check_apiserver.sh"}"' in (d / "keepalived.conf").read_text()
            net.start(f"haproxy-{role}", role, "haproxy", "-db", "-f", str(d / "haproxy.cfg"))
            net.start(
                f"keepalived-{role}",
                role,
                "keepalived",
                "--dont-fork",
                "--log-console",
                "--log-detail",
                "--vrrp",
                "-f",
                str(d / "keepalived.conf"),
                "-p",
                str(d / "keepalived.pid"),
                "-r",
                str(d / "vrrp.pid"),
                "-c",
                str(d / "checkers.pid"),
            )
        assert wait_until(lambda: net.holds_vip("ha1"), 30), net.log("keepalived-ha1")
        assert not net.holds_vip("ha2")

        # ---- kubectl through haproxy on the VIP ------------------------------------------
        assert wait_until(healthy, 30), net.log("haproxy-ha1")
        assert kubectl("get", "nodes").returncode == 0
        endpoints = kubectl(
            "get", "endpoints", "kubernetes", "-o", "jsonpath={.subsets[0].addresses[*].ip}"
        )
        assert wait_until(
            lambda: (
                set(
                    kubectl(
                        "get",
                        "endpoints",
                        "kubernetes",
                        "-o",
                        "jsonpath={.subsets[0].addresses[*].ip}",
                    ).stdout.split()
                )
                == {net.ip("cp1"), net.ip("cp2")}
            ),
            30,
        ), endpoints.stdout
        check = net.run(
            "ha1",
            sys.executable,
            "-m",
            "podsec.cli",
            "lb",
            "check-apiserver",
            "--cluster",
            str(cluster),
            "--json",
        )
        assert '"holds_vip": true' in check.stdout and check.stdout.count('"ok": true') == 3
        check = net.run(
            "ha2",
            sys.executable,
            "-m",
            "podsec.cli",
            "lb",
            "check-apiserver",
            "--cluster",
            str(cluster),
            "--json",
        )
        assert '"holds_vip": false' in check.stdout

        # ---- a NodePort Service is forwarded out of the worker's namespace ---------------
        with lb_env.rootlesskit(work / "worker", netns=net.ns["worker"]) as rk:
            rk.listen(node_port, "ingress-nginx", work)
            state = work / "worker" / "podsec-ports.json"
            net.start(
                "port-sync",
                "worker",
                sys.executable,
                "-m",
                "podsec.cli.u7s_ports",
                "sync",
                "--socket",
                str(rk.socket),
                "--state",
                str(state),
                "--kubeconfig",
                str(kubeconfig),
            )
            assert net.marker(net.ip("worker"), node_port) is None  # nothing forwarded yet
            service = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "ingress-nginx-controller", "namespace": "default"},
                "spec": {
                    "type": "NodePort",
                    "selector": {"app": "ingress"},
                    "ports": [
                        {
                            "name": "http",
                            "appProtocol": "http",
                            "port": 80,
                            "targetPort": 80,
                            "nodePort": node_port,
                        }
                    ],
                },
            }
            svc_file = work / "service.yaml"
            svc_file.write_text(yaml.safe_dump(service))
            kubectl("apply", "-f", str(svc_file))
            assert wait_until(
                lambda: net.marker(net.ip("worker"), node_port) == "ingress-nginx", 30
            ), net.log("port-sync")
            # the seed's ingress path: haproxy :80 on the VIP → worker:nodePort → the namespace
            assert wait_until(lambda: net.marker(net.vip, 80) == "ingress-nginx", 30), net.log(
                "haproxy-ha1"
            )

            # ---- one control plane goes away: kubectl keeps working through haproxy ------
            net.stop("apiserver-cp1")
            for _ in range(6):  # roundrobin: half of these would go to cp1
                assert healthy(), net.log("haproxy-ha1")
            assert kubectl("get", "nodes").returncode == 0
            assert kubectl("get", "service", "ingress-nginx-controller").returncode == 0

            # ---- haproxy on the MASTER dies: the VIP moves, kubectl keeps working --------
            # until now the track script (local and VIP checks) kept passing on ha1
            assert net.holds_vip("ha1") and not net.holds_vip("ha2"), net.log("keepalived-ha1")
            assert "check_apiserver" in net.log("keepalived-ha1")
            net.stop("haproxy-ha1")
            assert wait_until(lambda: net.holds_vip("ha2") and not net.holds_vip("ha1"), 30), (
                net.log("keepalived-ha1") + net.log("keepalived-ha2")
            )
            assert wait_until(healthy, 30)
            assert kubectl("get", "nodes").returncode == 0

            # ---- the Service goes: so does the forward ------------------------------------
            kubectl("delete", "-f", str(svc_file))
            assert wait_until(lambda: net.marker(net.ip("worker"), node_port) is None, 30), net.log(
                "port-sync"
            )
            net.stop("port-sync")
