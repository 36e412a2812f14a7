"""Seconds from start to a healthy control plane (etcd + apiserver + controller-manager +
scheduler, all /healthz ok), median of 3, using the same code as the ``control_plane`` fixture.

Baseline: the feasibility probe's shell scripts (openssl PKI + start-control-plane.sh) took
4.0-4.9 s on this kind of machine (../shared/reference/k8s-feasibility.md, section 2).

Run: python benchmarks/bench_control_plane.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import harness  # noqa: E402
from tests.fixtures.kube import k8s_bin_dir, running_control_plane  # noqa: E402

BASELINE_SECONDS = 4.45  # midpoint of the probe's 4.0-4.9 s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    bin_dir = k8s_bin_dir()
    if not (bin_dir / "kube-apiserver").is_file():
        print(
            f"bench_control_plane: {bin_dir}/kube-apiserver missing; run scripts/build-kubernetes",
            file=sys.stderr,
        )
        return 2
    times: list[float] = []
    cpus: list[float] = []
    group = harness.CpuGroup("control-plane")
    group.add(os.getpid())  # this process and every server it starts
    meter = harness.LoadMeter().__enter__()
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="podsec-bench-cp-") as tmp:
            c0 = group.seconds()
            t0 = time.monotonic()
            with running_control_plane(Path(tmp), bin_dir) as cp:
                elapsed = time.monotonic() - t0
                cpus.append(group.seconds() - c0)
            stop = time.monotonic() - t0 - elapsed
        times.append(elapsed)
        print(
            f"run {i + 1}: healthy after {elapsed:.2f} s (apiserver on {cp.server}), "
            f"stopped in {stop:.2f} s"
        )
    median = statistics.median(times)
    print(
        f"control plane start → healthy: median {median:.2f} s "
        f"(min {min(times):.2f}, max {max(times):.2f}, n={len(times)}); "
        f"baseline {BASELINE_SECONDS:.2f} s (probe scripts); ratio {median / BASELINE_SECONDS:.2f}"
    )
    meter.__exit__()
    group.close()
    cpu = statistics.median(cpus)
    harness.record(
        "test control plane (etcd, apiserver, controller-manager, scheduler) → healthy",
        figure=harness.wall_cpu(median, cpu),
        baseline=f"recorded: feasibility probe's scripts {BASELINE_SECONDS:.2f} s (not this run)",
        ratio=f"{harness.times(median / BASELINE_SECONDS)} of the probe's time",
        goal="reported",
        met=None,
        load=meter.text,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
