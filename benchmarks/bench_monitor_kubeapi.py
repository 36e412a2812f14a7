"""watch-kubeapi: catch-up over a 1,000,000-event audit log (1 % forbidden, 2 % not found: the
codes > 400 the plugin reports by default, as the seed) against
`jq -c 'select(.responseStatus.code >= 400)'` over the same file, measured in this run
(goal, issue 17: >= 30x jq by CPU time, peak RssAnon < 64 MB); then 0 events lost while the log is rotated
100 times during following.

Run: .venv/bin/python benchmarks/bench_monitor_kubeapi.py [EVENTS]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import harness

BIN = Path(sys.executable).parent
EVENTS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
ROTATIONS = 100
PER_FILE = 200
GOAL_RATIO = 30
GOAL_ANON_MB = 64

TEMPLATE = (
    '{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id:08x}-1b2c-4d5e-8f90-{id:012x}",'
    '"stage":"ResponseComplete","requestURI":"/api/v1/namespaces/ns{ns}/pods/pod-{id}?timeout=32s","verb":"get",'
    '"user":{{"username":"user{u}","groups":["k8s","system:authenticated"]}},"sourceIPs":["10.0.{a}.{b}"],'
    '"userAgent":"kubectl/v1.20.2 (linux/amd64) kubernetes/faecb19","objectRef":{{"resource":"pods",'
    '"namespace":"ns{ns}","name":"pod-{id}","apiVersion":"v1"}},"responseStatus":{status},'
    '"requestReceivedTimestamp":"2026-11-29T01:00:00.{us:06d}Z","stageTimestamp":"2026-11-29T01:00:00.{us:06d}Z",'
    '"annotations":{{"authorization.k8s.io/decision":"{decision}","authorization.k8s.io/reason":"{reason}"}}}}\n'
)
OK = '{"metadata":{},"code":200}'
NOTFOUND = '{"metadata":{},"status":"Failure","reason":"NotFound","code":404}'
FORBIDDEN = '{"metadata":{},"status":"Failure","reason":"Forbidden","code":403}'
ALLOW_REASON = 'RBAC: allowed by ClusterRoleBinding \\"system:basic-user\\" of ClusterRole \\"system:basic-user\\" to Group \\"system:authenticated\\"'


def line(i: int, forbidden: bool, notfound: bool = False) -> str:
    status = FORBIDDEN if forbidden else NOTFOUND if notfound else OK
    return TEMPLATE.format(
        id=i,
        ns=i % 50,
        u=i % 300,
        a=i % 256,
        b=(i // 256) % 256,
        status=status,
        us=i % 1_000_000,
        decision="forbid" if forbidden else "allow",
        reason="" if forbidden else ALLOW_REASON,
    )


def generate(path: Path, n: int) -> int:
    """Write ``n`` events: 1 % forbidden (403), 2 % not found (404); return how many have a
    code > 400 — what check-kubeapi reports by default (the seed's rule) and jq selects."""
    failed = 0
    with path.open("w") as fh:
        chunk = []
        for i in range(n):
            f = i % 100 == 7  # 1 %
            nf = not f and i % 50 == 3  # 2 %
            failed += f or nf
            chunk.append(line(i, f, nf))
            if len(chunk) >= 10000:
                fh.write("".join(chunk))
                chunk = []
        fh.write("".join(chunk))
    return failed


class Drain:
    """A syslog socket that just counts datagrams."""

    def __init__(self, path: Path):
        self.count = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.settimeout(0.2)
        self.stop = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self) -> None:
        while not self.stop:
            try:
                self.sock.recv(65536)
                self.count += 1
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def catch_up(work: Path) -> None:
    log_dir = work / "root/etc/kubernetes/audit"
    log_dir.mkdir(parents=True)
    log = log_dir / "audit.log"
    t = time.perf_counter()
    forbidden = generate(log, EVENTS)
    size = log.stat().st_size
    print(
        f"generated {EVENTS:,} events ({size / 1e6:.0f} MB, {forbidden:,} with a code > 400) in {time.perf_counter() - t:.1f} s"
    )
    log.read_bytes() if size < 4e9 else None  # warm the page cache for both contenders

    jq = shutil.which("jq")
    drain = Drain(work / "syslog.sock")
    env = {
        **os.environ,
        "PODSEC_ROOT": str(work / "root"),
        "PODSEC_SYSLOG_SOCKET": str(work / "syslog.sock"),
    }
    with harness.load() as load:
        if jq is None:
            print("jq is not installed: no baseline (apt-get install jq)")
            base = None
        else:
            base = harness.run([jq, "-c", "select(.responseStatus.code >= 400)", str(log)]).check()
        runs = []
        for _attempt in range(3):  # the machine is shared: the median of three runs
            shutil.rmtree(work / "root/var", ignore_errors=True)
            drain.count = 0
            res = harness.run(
                [str(BIN / "podsec-inotify-check-kubeapi"), "-d", "--once"],
                env=env,
                sample_anon=True,
            ).check()
            runs.append(res)
            time.sleep(0.3)
    drain.close()
    wall, cpu = harness.median_run(runs)
    peak = max(r.peak_anon_kb for r in runs)
    records = sum(1 for _ in (work / "root/var/lib/podsec/u7s/log/kubeapi/forbidden.log").open())
    assert records == forbidden, (records, forbidden)
    print(f"{records:,} records, {drain.count:,} syslog lines")
    figure = harness.wall_cpu(wall, cpu)
    if base is None:
        ratio, ratio_text, baseline = float("nan"), "n/a", "jq missing"
    else:
        ratio = base.cpu / cpu
        ratio_text = f"{harness.times(ratio)} by CPU ({harness.times(base.wall / wall)} wall)"
        baseline = "jq: " + harness.wall_cpu(base.wall, base.cpu)
    harness.record(
        f"audit-log catch-up, {EVENTS:,} events ({size / 1e6:.0f} MB) vs jq",
        figure=figure,
        baseline=baseline,
        ratio=ratio_text,
        goal=f">= {GOAL_RATIO}x jq by CPU",
        met=ratio >= GOAL_RATIO,
        load=load.text,
        wall=wall,
        cpu=cpu,
        baseline_wall=base.wall if base else None,
        baseline_cpu=base.cpu if base else None,
    )
    harness.record(
        "audit-log catch-up, peak RssAnon",
        figure=f"{peak / 1024:.1f} MB",
        baseline="—",
        ratio="—",
        goal=f"< {GOAL_ANON_MB} MB",
        met=peak / 1024 < GOAL_ANON_MB,
        load=load.text,
        peak_anon_kb=peak,
    )
    log.unlink()


def rotations(work: Path) -> None:
    root = work / "root2"
    log_dir = root / "etc/kubernetes/audit"
    log_dir.mkdir(parents=True)
    log = log_dir / "audit.log"
    log.touch()
    env = {**os.environ, "PODSEC_ROOT": str(root), "PODSEC_SYSLOG_SOCKET": str(work / "none.sock")}
    proc = subprocess.Popen(
        [str(BIN / "podsec-inotify-check-kubeapi"), "-d"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    written = 0
    t = time.perf_counter()
    cpu0 = harness.pid_cpu(proc.pid)
    meter = harness.LoadMeter().__enter__()
    for r in range(ROTATIONS):
        with log.open("a") as fh:
            for _k in range(PER_FILE):
                fh.write(line(10_000_000 + written, True))
                written += 1
                if written % 50 == 0:
                    fh.flush()
        # lumberjack's rotation: rename the full file away, start a new one
        log.rename(log_dir / f"audit-2026-11-29T01-{r // 60:02d}-{r % 60:02d}.000.log")
        log.touch()
    forbidden = root / "var/lib/podsec/u7s/log/kubeapi/forbidden.log"
    deadline = time.monotonic() + 60
    count = 0
    while time.monotonic() < deadline:
        count = sum(1 for _ in forbidden.open()) if forbidden.exists() else 0
        if count >= written:
            break
        time.sleep(0.2)
    follow_wall = time.perf_counter() - t
    follow_cpu = harness.pid_cpu(proc.pid) - cpu0
    meter.__exit__()
    idle0 = harness.pid_cpu(proc.pid)
    time.sleep(2)
    idle = harness.pid_cpu(proc.pid) - idle0
    rss = harness.status_kb(proc.pid, "VmRSS")
    print(f"follower idle: {idle:.2f} CPU s in 2 s, RSS {rss / 1024:.0f} MB (goal < 60 MB)")
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    ids = {json.loads(x)["audit_id"] for x in forbidden.open()} if forbidden.exists() else set()
    lost = written - len(ids)
    print(
        f"following: {written:,} forbidden events over {ROTATIONS} rotations in "
        f"{follow_wall:.1f} s: {len(ids):,} recorded, {lost} lost, "
        f"{count - len(ids)} duplicates (goal 0 lost)"
    )
    harness.record(
        f"audit-log following, {ROTATIONS} rotations",
        figure=f"{lost} of {written:,} lost, {count - len(ids)} duplicated; "
        + harness.wall_cpu(follow_wall, follow_cpu),
        baseline="events written",
        ratio="—",
        goal="0 lost",
        met=lost == 0,
        load=meter.text,
        note=f"idle {idle:.2f} CPU s in 2 s, RSS {rss / 1024:.0f} MB",
        lost=lost,
        written=written,
    )


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="podsec-bench-kubeapi."))
    try:
        catch_up(work)
        rotations(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
