"""The port-sync controller against a real control plane and a real RootlessKit.

Measures, in one run:
* time from `kubectl apply` of N NodePort Services until all N forwards exist (the controller),
  against the seed's manual way: one `rootlessctl add-ports 0.0.0.0:P:P/tcp` per port (the
  baseline — it does not even include a human noticing the Service);
* the controller's steady-state RSS (budget < 60 MB) and its CPU time while idle for 10 s
  (budget ≈ 0: it blocks on the API watch).

Run as root: python benchmarks/bench_portsync.py [--services N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

import harness  # noqa: E402
from tests.fixtures.kube import k8s_bin_dir, running_control_plane  # noqa: E402
from tests.integration import lb_env  # noqa: E402

from podsec.u7s.rootlesskit_api import RootlesskitApi  # noqa: E402

_TICK = 100  # USER_HZ


def _python_child(pid: int) -> int:
    """The controller's PID (lb_env.start runs it under `timeout`)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0]) if children else pid


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _services(ns: str, ports: list[int]) -> str:
    items = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"s{p}", "namespace": ns},
            "spec": {
                "type": "NodePort",
                "selector": {"app": f"s{p}"},
                "ports": [{"port": 80, "nodePort": p}],
            },
        }
        for p in ports
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=50)
    args = parser.parse_args()
    n = args.services
    with tempfile.TemporaryDirectory(prefix="podsec-bench-ports-") as tmp:
        work = Path(tmp)
        with (
            running_control_plane(work / "cp", k8s_bin_dir()) as cp,
            lb_env.rootlesskit(work / "rk") as rk,
        ):
            api = RootlesskitApi(rk.socket)
            # baseline: the seed's manual command, once per port
            base_ports = sorted({lb_env.free_node_port() for _ in range(n)})
            c0 = harness.self_cpu()
            t0 = time.monotonic()
            for p in base_ports:
                lb_env.subprocess.run(
                    ["rootlessctl", f"--socket={rk.socket}", "add-ports", f"0.0.0.0:{p}:{p}/tcp"],
                    check=True,
                    capture_output=True,
                )
            baseline = time.monotonic() - t0
            baseline_cpu = harness.self_cpu() - c0
            for port in api.list_ports():
                api.remove_port(port.id)

            proc = lb_env.controller(
                rk.socket, work / "state.json", cp.kubeconfig, work / "controller.log"
            )
            try:
                pid = lb_env.wait_until(lambda: _python_child(proc.pid) != proc.pid, 10)
                pid = _python_child(proc.pid)
                cp.kubectl("create", "namespace", "bench")
                time.sleep(2)  # let the controller finish its first list/watch
                ports = sorted({lb_env.free_node_port() for _ in range(n)})
                ctl0 = _cpu_seconds(pid)
                t0 = time.monotonic()
                cp.kubectl("apply", "-f", "-", input=_services("bench", ports))
                applied = time.monotonic() - t0
                want = len(ports)
                done = lb_env.wait_until(lambda: len(api.list_ports()) >= want, 120, 0.05)
                elapsed = time.monotonic() - t0
                ctl_cpu = _cpu_seconds(pid) - ctl0
                if not done:
                    print((work / "controller.log").read_text()[-2000:], file=sys.stderr)
                    return 1
                time.sleep(1)
                cpu0 = _cpu_seconds(pid)
                time.sleep(10)
                idle_cpu = _cpu_seconds(pid) - cpu0
                rss = _rss_mb(pid)
            finally:
                lb_env.stop(proc)
    print(
        f"{want} NodePort services → forwards by the controller: all in place {elapsed:.2f} s "
        f"after kubectl apply started, {max(elapsed - applied, 0):.2f} s after it returned "
        f"(the apply itself took {applied:.2f} s); baseline {len(base_ports)} × rootlessctl "
        f"add-ports typed in a loop: {baseline:.2f} s; ratio {elapsed / baseline:.2f}"
    )
    print(
        f"controller steady-state RSS {rss:.1f} MB (budget 60 MB); "
        f"CPU while idle for 10 s: {idle_cpu:.2f} s"
    )
    load = f"{os.getloadavg()[0]:.1f}"
    harness.record(
        f"port-sync: {want} NodePort Services forwarded",
        figure=f"{harness.secs(elapsed)} after apply; controller CPU {harness.secs(ctl_cpu)}",
        baseline=f"{len(base_ports)} × rootlessctl add-ports: "
        + harness.wall_cpu(baseline, baseline_cpu),
        ratio=f"{harness.times(baseline_cpu / max(ctl_cpu, 0.01))} by CPU "
        f"({harness.times(baseline / elapsed)} wall)",
        goal="reported",
        met=None,
        load=load,
    )
    harness.record(
        "port-sync steady state",
        figure=f"RSS {rss:.1f} MB, {idle_cpu:.2f} CPU s idle in 10 s",
        baseline="—",
        ratio="—",
        goal="RSS < 60 MB, idle ≈ 0",
        met=rss < 60 and idle_cpu < 0.05,
        load=load,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
