"""The Debian 12 test tree: cached by scripts/debian-tree (mmdebstrap), used through an
overlay by tests/packaging/tree-run — chrooted, or booted with systemd as PID 1 under
systemd-nspawn. Nothing is installed on the machine itself: the .debs go into the overlay."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.fixtures.require import missing, require_root
from tests.packaging.conftest import REPO, run

TREE_RUN = Path(__file__).with_name("tree-run")
DEBS_IN_TREE = "/var/cache/podsec-test-debs"
ENV = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"]


def tree_packages(debs: dict[str, Path]) -> list[str]:
    """What the .debs depend on and recommend (first alternatives), minus podsec's own."""
    names = set()
    for deb in debs.values():
        for name in ("Depends", "Recommends"):
            text = run(["dpkg-deb", "-f", str(deb), name]).stdout
            for dep in text.split(","):
                pkg = dep.split("|")[0].split("(")[0].strip().removesuffix(":any")
                if pkg and not pkg.startswith("podsec"):
                    names.add(pkg)
    return sorted(names)


def debian_tree(debs: dict[str, Path]) -> Path:
    require_root()
    for tool in ("mmdebstrap", "systemd-nspawn", "unshare", "nsenter"):
        if shutil.which(tool) is None:
            missing(f"program {tool} (mmdebstrap, systemd-container, util-linux) is not installed")
    r = run([str(REPO / "scripts/debian-tree"), *tree_packages(debs)], timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    return Path(r.stdout.strip().splitlines()[-1])


@dataclass
class Overlay:
    """One test's writable view of the cached tree (upper dir under ``state``)."""

    lower: Path
    state: Path

    def add_debs(self, debs: dict[str, Path]) -> None:
        target = self.state / "upper" / DEBS_IN_TREE.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        for deb in debs.values():
            shutil.copy(deb, target)

    def chroot(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run(
            [str(TREE_RUN), "chroot", str(self.lower), str(self.state), "--", *argv],
            timeout=timeout,
        )

    def file(self, path: str) -> Path:
        """A file as the tree sees it after the last run (upper layer first)."""
        upper = self.state / "upper" / path.lstrip("/")
        return upper if upper.exists() or upper.is_symlink() else self.lower / path.lstrip("/")


@dataclass
class Booted:
    """A running container: systemd is PID 1; ``run`` enters all of its namespaces."""

    proc: subprocess.Popen[bytes]
    init: int
    console: Path
    timings: dict[str, float] = field(default_factory=dict)

    def run(
        self, *argv: str, timeout: float = 300, env: Sequence[str] = ()
    ) -> subprocess.CompletedProcess[str]:
        return run(["nsenter", "-t", str(self.init), "-a", *ENV, *env, *argv], timeout=timeout)

    def ok(self, *argv: str, timeout: float = 300, env: Sequence[str] = ()) -> str:
        r = self.run(*argv, timeout=timeout, env=env)
        assert r.returncode == 0, (
            f"{' '.join(argv)} ({r.returncode}): {r.stdout[-2000:]}{r.stderr[-2000:]}"
        )
        return r.stdout

    def show(self, unit: str, *props: str, user: bool = False) -> dict[str, str]:
        argv = ["systemctl", *(["--user", "-M", "u7s-admin@"] if user else []), "show", unit]
        r = self.run(*argv, *(f"--property={p}" for p in props))
        return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def _init_of(nspawn: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                stat = (child / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == nspawn and (child / "comm").read_text().strip() == "systemd":
                    return int(child.name)
        time.sleep(0.2)
    raise AssertionError("systemd did not start in the container")


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for p in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        cur = todo.pop()
        out.append(cur)
        todo.extend(children.get(cur, []))
    return out


@contextlib.contextmanager
def boot(overlay: Overlay, *nspawn_args: str, timeout: float = 120) -> Iterator[Booted]:
    """systemd-nspawn --boot on the overlay; waits for `is-system-running`; powers off after."""
    console = overlay.state / "console.log"
    started = time.monotonic()
    with console.open("wb") as log:
        proc = subprocess.Popen(
            [str(TREE_RUN), "boot", str(overlay.lower), str(overlay.state), "--", *nspawn_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        nspawn = _nspawn_pid(proc.pid)
        booted = Booted(proc, _init_of(nspawn), console)
        deadline = time.monotonic() + timeout
        while True:
            # "offline" or no answer at all: PID 1 is not listening on its bus yet
            state = booted.run("systemctl", "is-system-running", "--wait", timeout=timeout)
            if state.stdout.strip() in ("running", "degraded") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        booted.timings["boot"] = time.monotonic() - started
        assert state.stdout.strip() in ("running", "degraded"), (
            f"{state.stdout}{state.stderr}\n{console.read_text()[-3000:]}"
        )
        yield booted
    finally:
        _stop(proc)


def _nspawn_pid(outer: int, timeout: float = 30) -> int:
    """tree-run execs unshare, which forks the mount-namespace child that execs nspawn."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in _descendants(outer):
            with contextlib.suppress(OSError):
                if (Path(f"/proc/{pid}/comm")).read_text().strip() == "systemd-nspawn":
                    return pid
        time.sleep(0.1)
    raise AssertionError("systemd-nspawn did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM makes nspawn shut the container down cleanly; SIGKILL what is left."""
    for pid in _descendants(proc.pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd-nspawn":
                os.kill(pid, signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        for pid in reversed(_descendants(proc.pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(30)
