"""The revocation webhook's decision latency, as the API server sees it.

The webhook (``podsec rbac authz-serve``, its own process, as the node runs it) is asked
SubjectAccessReviews over one kept-alive TLS connection per client, as kube-apiserver's
webhook client does, with a revoked.json of 1,000 revoked certificates (half of the users
asked are revoked: deny, the others no opinion). Measured in the same run:

  A. decisions with the 1,000-entry denylist, 1 client and 4 concurrent clients: p50, p99,
     max per decision (client-side, request written → answer read), the webhook's CPU time
     per decision (/proc of its process), the wall time of the batch;
  B. the same server with an empty denylist (the baseline: what the HTTPS stack costs
     without a decision).

Goal (issue 20): p99 ≤ 5 ms per decision. The API server's own cost is not in this figure:
every request the Node authorizer does not decide waits for one such answer
(``--authorization-webhook-cache-unauthorized-ttl=0s``).

Run: python benchmarks/bench_rbac_authz.py [--requests N] [--revoked N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import harness  # noqa: E402

from podsec import revocations  # noqa: E402
from podsec.webhook import authz  # noqa: E402

BIN = Path(sys.executable).parent
GOAL_P99_MS = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_denylist(root: Path, count: int) -> None:
    path = root / "var/lib/podsec/rbac/revoked.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    records = [
        revocations.Revoked(f"user{i}", str(10**20 + i), ("devs",), not_after=end)
        for i in range(count)
    ]
    path.write_text(revocations.dumps(records))


class Webhook:
    def __init__(self, root: Path, port: int, nice: int = 0) -> None:
        self.root, self.port = root, port
        self.proc = subprocess.Popen(
            [str(BIN / "podsec"), "--root", str(root), "rbac", "authz-serve", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if nice:
            os.setpriority(os.PRIO_PROCESS, self.proc.pid, nice)
        pinned = authz.read_kubeconfig(root / "etc/kubernetes/podsec-authz/webhook.kubeconfig")
        self.target = authz.Target(authz.url("127.0.0.1", port), pinned.ca_pem)
        deadline = time.monotonic() + 30
        while True:
            try:
                c = authz.Client(self.target)
                c.ask("warm-up")
                c.close()
                break
            except authz.AuthzError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()  # never leave it behind
                    raise SystemExit("the webhook did not start") from None
                time.sleep(0.1)

    def cpu(self) -> float:
        return harness.pid_cpu(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(10)


def batch(target: authz.Target, requests: int, clients: int, revoked: int) -> list[float]:
    """Seconds per decision, ``clients`` threads with one kept-alive connection each."""
    out: list[float] = []
    lock = threading.Lock()
    errors: list[str] = []

    def worker(k: int) -> None:
        client = authz.Client(target)
        client.connect()
        mine: list[float] = []
        try:
            for i in range(requests // clients):
                n = (i * clients + k) % (2 * max(revoked, 1))
                answer = client.ask(f"user{n}", ("devs", "system:authenticated"))
                if (n < revoked) != bool(answer.status.get("denied")):
                    errors.append(f"user{n}: {answer.status}")
                mine.append(answer.seconds)
        finally:
            client.close()
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"wrong decisions: {errors[:3]}")
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    root: Path, requests: int, clients: int, revoked: int, nice: int = 0
) -> dict[str, float]:
    hook = Webhook(root, free_port(), nice)
    try:
        cpu0, t0 = hook.cpu(), time.perf_counter()
        lat = batch(hook.target, requests, clients, revoked)
        wall, cpu = time.perf_counter() - t0, hook.cpu() - cpu0
    finally:
        hook.stop()
    return {
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": pct(lat, 0.99) * 1000,
        "max_ms": max(lat) * 1000,
        "cpu_us": cpu / len(lat) * 1e6,
        "wall_s": wall,
        "n": len(lat),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--revoked", type=int, default=1000)
    ap.add_argument("--nice", type=int, default=0, help="also measure the webhook at this niceness")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-authz-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        r = subprocess.run(
            [
                *(str(BIN / "podsec"), "--root", str(root), "rbac", "enforce-revocation"),
                *("--no-manifest", "--no-start", "--json"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if r.returncode != 0:
            raise SystemExit(r.stderr)
        results: dict[str, dict[str, float]] = {}
        with harness.load() as meter:
            for clients in (1, 4):
                write_denylist(root, args.revoked)
                results[f"full-{clients}"] = measure(root, args.requests, clients, args.revoked)
                write_denylist(root, 0)
                results[f"empty-{clients}"] = measure(root, args.requests, clients, 0)
                if args.nice:
                    write_denylist(root, args.revoked)
                    results[f"nice-{clients}"] = measure(
                        root, args.requests, clients, args.revoked, args.nice
                    )
        load = meter.text
    print(json.dumps(results, indent=2))
    for clients in (1, 4):
        full, empty = results[f"full-{clients}"], results[f"empty-{clients}"]
        harness.record(
            f"authz webhook decision, {args.revoked:,} revoked, {clients} connection(s)",
            figure=(
                f"p50 {full['p50_ms']:.2f} ms, p99 {full['p99_ms']:.2f} ms, max "
                f"{full['max_ms']:.1f} ms; webhook CPU {full['cpu_us']:.0f} µs/decision; "
                f"{full['n']} in {full['wall_s']:.2f} s wall"
            ),
            baseline=(
                f"empty denylist: p50 {empty['p50_ms']:.2f} ms, p99 {empty['p99_ms']:.2f} ms, "
                f"CPU {empty['cpu_us']:.0f} µs"
            ),
            ratio=f"{full['cpu_us'] / empty['cpu_us']:.2f}× CPU of the bare server",
            goal=f"p99 <= {GOAL_P99_MS:g} ms",
            met=full["p99_ms"] <= GOAL_P99_MS,
            load=load,
            **{k: round(v, 4) for k, v in full.items()},
        )
        if args.nice:
            nice = results[f"nice-{clients}"]
            harness.record(
                f"authz webhook decision at nice {args.nice}, {clients} connection(s)",
                figure=f"p50 {nice['p50_ms']:.2f} ms, p99 {nice['p99_ms']:.2f} ms",
                baseline=f"nice 0: p50 {full['p50_ms']:.2f} ms, p99 {full['p99_ms']:.2f} ms",
                ratio=f"p99 {full['p99_ms'] / nice['p99_ms']:.2f}× lower",
                goal=f"p99 <= {GOAL_P99_MS:g} ms",
                met=nice["p99_ms"] <= GOAL_P99_MS,
                load=load,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
