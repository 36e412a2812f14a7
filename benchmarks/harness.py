"""What every benchmark shares: CPU time next to wall time, the load average during the run,
and one result row per goal for benchmarks/RESULTS.md (written by ``benchmarks/run.py``).

The machine is shared (2 cores, other engineers' runs): wall time depends on what else runs,
CPU time much less. So every figure is measured as both, its baseline is measured in the same
run, and a goal is judged on the CPU-time ratio wherever the goal is a ratio.

* :func:`run` starts one program and returns its wall time, its CPU time (user + system of it
  and every descendant it waited for, from ``wait4``) and its peak RSS;
* :class:`CpuGroup` counts the CPU time of a whole process tree, daemons included, through a
  cpuacct cgroup (cgroup v1) or cpu.stat (cgroup v2) — for a node whose services are never
  waited for by us;
* :class:`LoadMeter` samples ``/proc/loadavg`` in the background while a figure is measured;
* :func:`record` appends one row to the results file (``PODSEC_BENCH_RESULTS``).

Benchmarks import this as ``import harness`` (they run as ``python benchmarks/bench_x.py``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
# the pinned Kubernetes build and free_port: one home with the tests'
from tests.fixtures.require import IMAGES_DIR, K8S_BIN, K8S_VERSION, free_port  # noqa: E402, F401

RESULTS_ENV = "PODSEC_BENCH_RESULTS"
DEFAULT_RESULTS = REPO / "benchmarks" / ".results.jsonl"


# --- measuring ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One finished program: wall and CPU seconds, peak RSS and RssAnon (kB), exit status."""

    argv: tuple[str, ...]
    wall: float
    cpu: float
    maxrss_kb: int
    returncode: int
    stdout: bytes = b""
    stderr: bytes = b""
    peak_anon_kb: int = 0

    def check(self) -> Run:
        if self.returncode != 0:
            tail = self.stderr.decode(errors="replace")[-1500:]
            raise SystemExit(f"{' '.join(self.argv)} failed ({self.returncode}): {tail}")
        return self


def _sample_anon(pid: int, peak: list[int], done: threading.Event) -> None:
    status = Path(f"/proc/{pid}/status")
    while not done.is_set():
        with contextlib.suppress(OSError, ValueError):
            for text in status.read_text().splitlines():
                if text.startswith("RssAnon:"):
                    peak[0] = max(peak[0], int(text.split()[1]))
        done.wait(0.005)


def run(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    stdin: int | None = subprocess.DEVNULL,
    input: bytes | None = None,
    capture: bool = False,
    sample_anon: bool = False,
    cwd: str | Path | None = None,
) -> Run:
    """Run ``argv`` to its end; CPU time comes from ``wait4`` (this child and the descendants
    it reaped), so another process's load does not count."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        if input is not None:
            stdin = subprocess.PIPE
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            env=env,
            stdin=stdin,
            stdout=out if capture else subprocess.DEVNULL,
            stderr=err,
            cwd=cwd,
        )
        peak = [0]
        done = threading.Event()
        sampler = None
        if sample_anon:
            sampler = threading.Thread(target=_sample_anon, args=(proc.pid, peak, done))
            sampler.start()
        if input is not None:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(input)
            proc.stdin.close()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        if sampler is not None:
            sampler.join()
        out.seek(0)
        err.seek(0)
        return Run(
            tuple(argv),
            wall,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss,
            proc.returncode,
            out.read(),
            err.read(),
            peak[0],
        )


def repeat(argv: Sequence[str], times: int, **kw: object) -> list[Run]:
    return [run(argv, **kw) for _ in range(times)]  # type: ignore[arg-type]


def median_run(runs: Sequence[Run]) -> tuple[float, float]:
    """Median wall and median CPU seconds (each on its own: the machine is noisy)."""
    return statistics.median(r.wall for r in runs), statistics.median(r.cpu for r in runs)


class CpuGroup:
    """CPU time of a process tree, daemons included: every process started through
    :meth:`preexec` (and everything it forks) is counted, whoever reaps it. u7s-admin's
    processes cannot leave the group (its parent's ``cgroup.procs`` is root's)."""

    def __init__(self, name: str):
        self.path: Path | None = None
        base = Path("/sys/fs/cgroup/cpuacct")
        leaf = f"podsec-bench-{os.getpid()}-{name}"
        if base.is_dir() and os.access(base, os.W_OK):
            self.path, self._usage = base / leaf, "cpuacct.usage"
        elif Path("/sys/fs/cgroup/cgroup.controllers").exists():
            self.path, self._usage = Path("/sys/fs/cgroup") / leaf, "cpu.stat"
        if self.path is not None:
            try:
                self.path.mkdir()
            except OSError:
                self.path = None

    @property
    def available(self) -> bool:
        return self.path is not None

    def seconds(self) -> float:
        if self.path is None:
            return float("nan")
        text = (self.path / self._usage).read_text()
        if self._usage == "cpuacct.usage":
            return int(text) / 1e9
        for line in text.splitlines():
            if line.startswith("usage_usec"):
                return int(line.split()[1]) / 1e6
        return float("nan")

    def add(self, pid: int) -> None:
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def preexec(self) -> None:
        """``preexec_fn`` of a Popen: the child joins the group before it execs."""
        self.add(os.getpid())

    def pids(self) -> list[int]:
        if self.path is None:
            return []
        return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]

    def close(self) -> None:
        """Remove the group (what is still in it goes back to the root group)."""
        if self.path is None:
            return
        parent = self.path.parent / "cgroup.procs"
        for pid in self.pids():
            with contextlib.suppress(OSError):
                parent.write_text(f"{pid}\n")
        for _ in range(50):
            try:
                self.path.rmdir()
                break
            except OSError:
                time.sleep(0.1)
        self.path = None

    def __enter__(self) -> CpuGroup:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def self_cpu() -> float:
    """CPU seconds of this process and of its reaped children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def pid_cpu(pid: int) -> float:
    """CPU seconds a live process has used (utime + stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


# --- load average ------------------------------------------------------------------------


class LoadMeter:
    """The 1-minute load average, sampled every second while a figure is measured."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(1.0):
                return

    def __enter__(self) -> LoadMeter:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.samples.append(os.getloadavg()[0])

    @property
    def text(self) -> str:
        if not self.samples:
            return f"{os.getloadavg()[0]:.1f}"
        lo, hi = min(self.samples), max(self.samples)
        return f"{lo:.1f}" if f"{lo:.1f}" == f"{hi:.1f}" else f"{lo:.1f}–{hi:.1f}"


@contextlib.contextmanager
def load() -> Iterator[LoadMeter]:
    with LoadMeter() as meter:
        yield meter


# --- result rows ------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of RESULTS.md: a figure, its same-run baseline, the ratio the goal is judged
    on, the goal, whether it is met, and the load average while it was measured."""

    bench: str
    name: str
    figure: str
    baseline: str
    ratio: str
    goal: str
    met: bool | None
    load: str
    note: str = ""
    data: dict[str, float | int | str | None] = field(default_factory=dict)


def results_path() -> Path:
    return Path(os.environ.get(RESULTS_ENV) or DEFAULT_RESULTS)


def record(
    name: str,
    *,
    figure: str,
    baseline: str,
    ratio: str,
    goal: str,
    met: bool | None,
    load: str,
    note: str = "",
    **data: float | int | str | None,
) -> Row:
    """Print the row and append it to the results file."""
    row = Row(
        Path(sys.argv[0]).stem, name, figure, baseline, ratio, goal, met, load, note, dict(data)
    )
    verdict = {True: "met", False: "NOT MET", None: "reported"}[met]
    print(
        f"RESULT {name}: {figure} | baseline {baseline} | {ratio} | goal {goal}: {verdict}"
        f" | load {load}" + (f" | {note}" if note else "")
    )
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
    return row


def read_rows(path: Path | None = None) -> list[Row]:
    path = path or results_path()
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            rows.append(Row(**json.loads(line)))
    return rows


# --- formatting --------------------------------------------------------------------------


def secs(value: float) -> str:
    """Seconds as people read them: 0.31 s, 12.4 s, 153 ms."""
    if math.isnan(value):
        return "n/a"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 10:
        return f"{value:.2f} s"
    return f"{value:.1f} s"


def wall_cpu(wall: float, cpu: float) -> str:
    return f"{secs(wall)} wall, {secs(cpu)} CPU"


def times(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.2f}×" if value < 10 else f"{value:.1f}×"
