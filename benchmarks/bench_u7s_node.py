"""One rootless node, measured in one run: `kubeadm init` → node Ready with its phases
(issue 17 item 4), the node's footprint when idle (item 7), admission latency through the
signed-images webhook against the same pods with the webhook off (item 6), and pod
networking with iperf3 against the rootful paths of the same machine (item 5).

* **init → Ready** (goal ≤ 25 s, local images): podsec's own step marks (runtime, image
  import, the real kubeadm, webhook registration), then the wait for the Node's Ready
  condition, with the kubelet's and the API's timestamps of what happened in between; CPU
  time of every process of the node (a cpuacct cgroup) beside the wall time.
* **footprint** (goal: podsec's own processes ≤ 100 MB RSS together): the supervisor, the
  namespace's child, port-sync, the admission webhook and its verifier, 20 s after Ready with
  nothing running; the whole node's RSS beside it.
* **admission** (goal p99 ≤ 100 ms for an image already verified): 100 pod creations (the
  pods stay Pending: a node selector nothing matches) of a signed image in a registry of
  this run, through the API with one kept-alive connection; then the same 100 with the
  webhook's registration deleted. The first verification (nothing cached) is shown apart.
* **network**: host → pod through a NodePort (port-sync forwards it; RootlessKit's builtin
  port driver), pod → host (slirp4netns egress), pod ↔ pod on the node's bridge, and the
  rootful baselines: loopback, and a veth pair between two network namespaces.

Runs in a private mount namespace with overlays over /etc, /var/lib, /root, /run and
/usr/libexec (the machine is untouched) and tears the node down afterwards. Needs root.

Run: python benchmarks/bench_u7s_node.py [--only init]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import net
import u7s_node as un

sys.path.insert(0, str(harness.REPO / "src"))

GOAL_READY = 25.0
GOAL_FOOTPRINT_MB = 100
GOAL_P99 = 0.100
PODS = 100
KEY = "bench-signer@podsec.test"


# --- a registry with one signed image -------------------------------------------------------


class SignedImage:
    """docker-registry on 127.0.0.1 with busybox pushed and signed (file:// lookaside), and
    the node's trust configuration requiring that signature."""

    def __init__(self, work: Path):
        self.work = work
        work.mkdir(mode=0o755)
        self.port = harness.free_port()
        data = work / "registry"
        data.mkdir()
        (data / "config.yml").write_text(
            f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {data}/data\nhttp:\n  addr: 127.0.0.1:{self.port}\n"
        )
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(data / "config.yml")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.host = f"127.0.0.1:{self.port}"
        self.image = f"{self.host}/bench/busybox:1"
        un.wait("the registry", lambda: net._listening(self.proc.pid, self.port), timeout=20)

    def sign_and_push(self) -> None:
        gnupg = self.work / "gnupg"
        gnupg.mkdir(mode=0o700)
        env = {**os.environ, "GNUPGHOME": str(gnupg)}
        subprocess.run(
            ["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
             "--quick-gen-key", f"Bench <{KEY}>", "ed25519", "sign", "never"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        key = Path("/etc/containers/podsec-bench.pgp")
        key.parent.mkdir(exist_ok=True)
        key.write_bytes(
            subprocess.run(
                ["gpg", "--export", KEY], env=env, check=True, capture_output=True
            ).stdout
        )
        key.chmod(0o644)
        sigs = self.work / "sigstore"
        sigs.mkdir(mode=0o755)
        regd = Path("/etc/containers/registries.d")
        regd.mkdir(parents=True, exist_ok=True)
        (regd / "podsec-bench.yaml").write_text(
            f"docker:\n  {self.host}:\n    lookaside: file://{sigs}/\n"
            f"    lookaside-staging: file://{sigs}/\n"
        )
        policy = {
            "default": [{"type": "reject"}],
            "transports": {
                "docker": {
                    self.host: [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(key)}]
                },
                "oci": {"": [{"type": "insecureAcceptAnything"}]},
            },
        }
        Path("/etc/containers/policy.json").write_text(json.dumps(policy, indent=2))
        subprocess.run(
            ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"--sign-by={KEY}",
             f"--registries.d={regd}",
             f"oci:{un.IMAGES}:registry.local/p10/busybox:1.35", f"docker://{self.image}"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        for p in sigs.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# --- sections -------------------------------------------------------------------------------


def section_init(env: dict[str, str], cpu: harness.CpuGroup) -> un.Init:
    with harness.load() as meter:
        init = un.init_node(env, cpu)
    api = un.Api()
    try:
        events = un.node_conditions(api, init.epoch0)
    finally:
        api.close()
    kubelet_log = un.LOG_DIR / "kubelet.log"
    events.update(un.klog_events(kubelet_log, un.KUBELET_EVENTS, init.epoch0))
    starts = un.kubelet_starts(kubelet_log, init.epoch0)
    for n, t in enumerate(starts, 1):
        events[f"kubelet start #{n}"] = t
    print("kubeadm init (rootless, local images) -> node Ready")
    for name, seconds in init.phases():
        print(f"  {name:32} {seconds:6.1f} s")
    print("  timeline (s after init started):")
    for name, t in sorted(events.items(), key=lambda kv: kv[1]):
        print(f"    {t:6.1f}  {name}")
    for name, t in sorted(init.marks.items(), key=lambda kv: kv[1]):
        print(f"    {t:6.1f}  podsec: {name}")
    print(f"    {init.done:6.1f}  podsec u7s kubeadm init exited")
    print(f"    {init.ready:6.1f}  node Ready seen by the benchmark")
    phases = ", ".join(f"{n} {s:.1f}" for n, s in init.phases() if not n.startswith("("))
    harness.record(
        "kubeadm init → node Ready (rootless, local images)",
        figure=f"{init.ready:.1f} s wall, {init.cpu:.1f} s CPU (whole node)",
        baseline="—",
        ratio=f"CPU/wall {init.cpu / init.ready:.2f} of 2 cores",
        goal=f"<= {GOAL_READY:.0f} s",
        met=init.ready <= GOAL_READY,
        load=meter.text,
        note=phases,
        ready=init.ready,
        cpu=init.cpu,
    )
    return init


def section_footprint(cpu: harness.CpuGroup) -> None:
    time.sleep(20)  # idle: the controllers settle after Ready
    with harness.load() as meter:
        procs = un.processes(cpu)
    ours = [p for p in procs if p.podsec]
    rest = [p for p in procs if not p.podsec]
    ours_mb = sum(p.rss_kb for p in ours) / 1024
    node_mb = sum(p.rss_kb for p in procs) / 1024
    print("node processes (RSS, PSS):")
    for p in sorted(procs, key=lambda p: -p.rss_kb):
        print(f"  {'podsec ' if p.podsec else '       '}{p.name:40} {p.rss_kb / 1024:6.1f} MB"
              f"  {p.pss_kb / 1024:6.1f} MB")  # fmt: skip
    harness.record(
        "node footprint: podsec's own processes, idle",
        figure=f"{ours_mb:.0f} MB RSS ({len(ours)} processes; PSS "
        f"{sum(p.pss_kb for p in ours) / 1024:.0f} MB)",
        baseline=f"whole node {node_mb:.0f} MB RSS ({len(procs)} processes)",
        ratio=f"{ours_mb / node_mb:.2f} of the node",
        goal=f"<= {GOAL_FOOTPRINT_MB} MB",
        met=ours_mb <= GOAL_FOOTPRINT_MB,
        load=meter.text,
        note=", ".join(
            f"{p.name} {p.rss_kb / 1024:.0f}" for p in sorted(ours, key=lambda p: -p.rss_kb)
        ),
        podsec_mb=ours_mb,
        node_mb=node_mb,
        others=len(rest),
    )


def _pod(name: str, image: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"podsec.bench/never": "scheduled"},
            "containers": [{"name": "c", "image": image}],
        },
    }


def _create(api: un.Api, ns: str, prefix: str, image: str, n: int) -> list[float]:
    lat = []
    for i in range(n):
        status, body, t = api.request(
            "POST", f"/api/v1/namespaces/{ns}/pods", _pod(f"{prefix}-{i}", image)
        )
        if status != 201:
            raise SystemExit(f"pod {prefix}-{i}: {status} {body.get('message', body)}")
        lat.append(t)
    return lat


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * len(s)) - 1))]


def _admission_pids(cpu: harness.CpuGroup) -> list[int]:
    return [p.pid for p in un.processes(cpu) if p.podsec and "admission" in p.name]


def section_admission(cpu: harness.CpuGroup, signed: SignedImage) -> None:
    api = un.Api()
    try:
        for ns in ("bench-adm-on", "bench-adm-off"):
            api.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
            un.wait(
                f"{ns}/default",
                lambda ns=ns: api.get(f"/api/v1/namespaces/{ns}/serviceaccounts/default"),
            )
        # the first pod: nothing cached, the verifier fetches and checks the signature
        first = _create(api, "bench-adm-on", "first", signed.image, 1)[0]
        pids = _admission_pids(cpu)
        cpu0 = sum(net._cpu(p) for p in pids)
        with harness.load() as meter:
            on = _create(api, "bench-adm-on", "pod", signed.image, PODS)
            on_cpu = sum(net._cpu(p) for p in pids) - cpu0
            api.request(
                "DELETE",
                "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/"
                "podsec-u7s-signed-images",
            )
            time.sleep(3)  # the API server's webhook informer drops it
            off = _create(api, "bench-adm-off", "pod", signed.image, PODS)
    finally:
        api.close()
    p50, p99 = statistics.median(on), _pct(on, 0.99)
    b50, b99 = statistics.median(off), _pct(off, 0.99)
    print(f"first pod (verification not cached): {first * 1000:.0f} ms")
    print(
        f"webhook on:  p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {max(on) * 1000:.1f} ms"
    )
    print(
        f"webhook off: p50 {b50 * 1000:.1f} ms, p99 {b99 * 1000:.1f} ms, max {max(off) * 1000:.1f} ms"
    )
    harness.record(
        f"admission: {PODS} pod creations through the signed-images webhook (image verified)",
        figure=f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms; webhook + verifier CPU "
        f"{on_cpu / PODS * 1000:.1f} ms per pod",
        baseline=f"webhook off: p50 {b50 * 1000:.1f} ms, p99 {b99 * 1000:.1f} ms",
        ratio=f"p99 {p99 / b99:.1f}×, +{(p50 - b50) * 1000:.1f} ms at p50",
        goal=f"p99 <= {GOAL_P99 * 1000:.0f} ms",
        met=p99 <= GOAL_P99,
        load=meter.text,
        note=f"first, uncached verification {first * 1000:.0f} ms",
        p50=p50,
        p99=p99,
        off_p50=b50,
        off_p99=b99,
        first=first,
        cpu_per_pod=on_cpu / PODS,
    )


def _net_pod(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "tolerations": [{"key": "node-role.kubernetes.io/master", "operator": "Exists"}],
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "c",
                    "image": "registry.local/p10/busybox:1.35",
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "3600"],
                }
            ],
        },
    }


def _pod_netns(cpu: harness.CpuGroup, ip: str) -> int:
    """A process of the pod whose address is ``ip`` (its network namespace is the pod's)."""
    for pid in cpu.pids():
        if net.comm(pid) != "sleep":
            continue
        out = subprocess.run(
            ["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-4", "-o", "addr"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if f" {ip}/" in out:
            return pid
    raise SystemExit(f"no process of the pod {ip} found")


def section_network(cpu: harness.CpuGroup) -> None:
    api = un.Api()
    ns = "bench-net"
    remote = net.Netns()
    try:
        meta = {"name": ns, "labels": {"podsec.alt/admission": "skip"}}
        api.request("POST", "/api/v1/namespaces", {"metadata": meta})
        un.wait(
            f"{ns}/default", lambda: api.get(f"/api/v1/namespaces/{ns}/serviceaccounts/default")
        )
        for name in ("iperf-a", "iperf-b"):
            status, body, _t = api.request("POST", f"/api/v1/namespaces/{ns}/pods", _net_pod(name))
            assert status == 201, body
        svc = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "iperf-a"},
            "spec": {
                "type": "NodePort",
                "selector": {"app": "iperf-a"},
                "ports": [{"port": 5201, "targetPort": 5201, "protocol": "TCP"}],
            },
        }
        status, body, _t = api.request("POST", f"/api/v1/namespaces/{ns}/services", svc)
        assert status == 201, body
        node_port = int(body["spec"]["ports"][0]["nodePort"])

        def pod_ip(name: str) -> str | None:
            pod = api.get(f"/api/v1/namespaces/{ns}/pods/{name}") or {}
            st = pod.get("status") or {}
            return st.get("podIP") if st.get("phase") == "Running" else None

        un.wait("the iperf pods Running", lambda: pod_ip("iperf-a") and pod_ip("iperf-b"), 120)
        ip_a, ip_b = pod_ip("iperf-a"), pod_ip("iperf-b")
        assert ip_a and ip_b
        pod_a, pod_b = _pod_netns(cpu, ip_a), _pod_netns(cpu, ip_b)
        # port-sync forwards the NodePort out of the namespace
        un.wait(
            f"NodePort {node_port} forwarded", lambda: net._listening(os.getpid(), node_port), 90
        )
        # a LAN peer behind a veth of MTU 1500; its host side is an address of this host
        subprocess.run(
            ["ip", "link", "add", "pbench0", "type", "veth", "peer", "name", "pbench1", "netns",
             str(remote.pid)], check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(["ip", "addr", "add", "10.233.0.1/24", "dev", "pbench0"], check=True)
        subprocess.run(["ip", "link", "set", "pbench0", "up"], check=True)
        remote.ip("addr", "add", "10.233.0.2/24", "dev", "pbench1")
        remote.ip("link", "set", "pbench1", "up")
        remote.ip("route", "add", "default", "via", "10.233.0.1")
        path = [p for p in cpu.pids() if net.comm(p) in ("rootlesskit", "slirp4netns")]
        with harness.load() as meter:
            loop, veth = net.rootful_baselines()
            flows = [
                net.measure("host → pod (NodePort, builtin port driver)", server_ns=pod_a,
                            server_bind="0.0.0.0", client_ns=None, target="127.0.0.1",
                            port=node_port, server_port=5201, path_pids=path),
                net.measure("pod → host (slirp4netns)", server_ns=None, server_bind="10.233.0.1",
                            client_ns=pod_b, target="10.233.0.1", path_pids=path),
                net.measure("pod → another host (slirp4netns, MTU 1500 link)", server_ns=remote.pid,
                            server_bind="10.233.0.2", client_ns=pod_b, target="10.233.0.2",
                            path_pids=path),
                net.measure("pod ↔ pod (one node, bridge)", server_ns=pod_a, server_bind=ip_a,
                            client_ns=pod_b, target=ip_a),
            ]  # fmt: skip
    finally:
        remote.close()
        api.close()
    print(f"rootful loopback {loop.gbps:.2f} Gbps ({loop.cpu_per_gb:.2f} CPU s/GB), "
          f"veth {veth.gbps:.2f} Gbps ({veth.cpu_per_gb:.2f} CPU s/GB)")  # fmt: skip
    from podsec.u7s import netconf

    config = (
        f"tap MTU {netconf.MTU}, pod MTU {netconf.POD_MTU or 1500}, {netconf.PORT_DRIVER} ports"
    )
    for f in flows:
        base = veth
        harness.record(
            f"network: {f.name}",
            figure=f"{f.gbps:.2f} Gbps, {f.cpu_per_gb:.2f} CPU s/GB",
            baseline=f"rootful veth {base.gbps:.2f} Gbps, {base.cpu_per_gb:.2f} CPU s/GB "
            f"(loopback {loop.gbps:.1f} Gbps)",
            ratio=f"{f.gbps / base.gbps:.2f}× throughput, {f.cpu_per_gb / base.cpu_per_gb:.1f}× "
            "CPU per GB",
            goal="reported",
            met=None,
            load=meter.text,
            note=config,
            gbps=f.gbps,
            cpu_per_gb=f.cpu_per_gb,
            baseline_gbps=base.gbps,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("init",), help="stop after init → Ready")
    parser.add_argument("--keep-logs", type=Path, help="copy the node's logs here before reset")
    args = parser.parse_args()
    why = un.missing_prerequisites()
    if why:
        print(f"bench_u7s_node: {why} (skipped)")
        return 0
    un.reexec_private()
    with (
        tempfile.TemporaryDirectory(prefix="podsec-bench-node-", dir="/tmp") as t,
        un.sandbox(Path(t)) as env,
        harness.CpuGroup("node") as cpu,
    ):
        Path(t).chmod(0o711)  # u7s-admin's verifier reads the lookaside below it
        signed = SignedImage(Path(t) / "trust")
        try:
            signed.sign_and_push()
            section_init(env, cpu)
            if args.only != "init":
                section_footprint(cpu)
                section_admission(cpu, signed)
                section_network(cpu)
        finally:
            if args.keep_logs:
                shutil.copytree(un.LOG_DIR, args.keep_logs, dirs_exist_ok=True)
            un.reset(env)
            un.kill_group(cpu)
            signed.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
