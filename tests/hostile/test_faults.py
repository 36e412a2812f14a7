"""kill -9 at N points (issue 15): a command killed anywhere leaves every file either as it
was or as a complete run writes it — never partial — and a re-run converges to what one
uninterrupted run gives.

Each command is first run once, uninterrupted, from a pristine sandbox (the reference and its
duration); then, for N points spread over that duration, the pristine tree is restored, the
command started, killed with SIGKILL at the point, the tree compared file by file with the
pristine and the reference trees, and the command run again to completion. Only the podsec
process is killed (``kill -9 PID``): a helper it started (groupadd) finishes on its own.
The account databases (/etc/group, passwd, shadow…) are updated one entry per groupadd/
useradd call: there an intermediate version — whole lines of the old and new files — is
allowed. The temporary files of an interrupted atomic write (``.NAME.XXXXXXXX`` beside the target,
never under the target's name) are the one permitted leftover, and are counted.

Commands that need a cluster or a registry (``rbac bind``, ``images load-sign``, the API
server stopped mid-``bind``/``unbind``/``revoke``) have their fault tests with the real
control plane under /work/bin/heavy (tests/integration).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.hostile.conftest import BIN, Sandbox, snapshot

POINTS = 12  # half over the run, half refined into the window where it writes
STARTUP = 0.3  # the first ~30 % of a run is Python starting: no point is spent there
_TEMP = re.compile(r"(^|/)\.[^/]+\.[A-Za-z0-9_]{8}$")


# and shadow-utils' own backups of them (group-, passwd-…: the version before its last write)
_ACCOUNTS = re.compile(r"root/etc/(passwd|group|shadow|gshadow|subuid|subgid)-?$")


def _whole_lines(now: tuple[object, ...], *versions: tuple[object, ...] | None) -> bool:
    data = now[2]
    assert isinstance(data, bytes)
    known: set[bytes] = set()
    for version in versions:
        if version is not None and isinstance(version[2], bytes):
            known |= set(version[2].splitlines())
    return (not data or data.endswith(b"\n")) and set(data.splitlines()) <= known


def _clean(
    tree: dict[str, tuple[object, ...]], runtime: Callable[[str], bool] = lambda _p: False
) -> tuple[dict[str, tuple[object, ...]], int]:
    kept = {k: v for k, v in tree.items() if not _TEMP.search(k) and not runtime(k)}
    return kept, sum(1 for k in tree if _TEMP.search(k))


def _restore(pristine: Path, top: Path) -> None:
    for entry in top.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in pristine.iterdir():
        dest = top / entry.name
        if entry.is_dir():
            shutil.copytree(entry, dest, symlinks=True)
        else:
            shutil.copy2(entry, dest, follow_symlinks=False)


def _env(sandbox: Sandbox) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("U7S_", "LANG", "PODSEC"))}
    env.update({"HOME": str(sandbox.home), "LANG": "C.UTF-8", **sandbox.env})
    return env


def kill_at_points(
    sandbox: Sandbox,
    argv: list[str],
    *,
    volatile: Callable[[str], bool] = lambda _p: False,
    runtime: Callable[[str], bool] = lambda _p: False,
) -> list[tuple[float, int, int, int]]:
    """Run the protocol above; returns (kill time, files changed by the killed run, temp
    leftovers, files a whole run changes) per point. ``volatile`` paths (random key material: names and bytes differ
    per run) are not compared; for them convergence is that a further run changes nothing."""
    full = [str(BIN / "podsec"), "--root", str(sandbox.root), *argv]
    pristine = sandbox.top.parent / (sandbox.top.name + ".pristine")
    shutil.copytree(sandbox.top, pristine, symlinks=True)
    before, _ = _clean(snapshot(sandbox.top), runtime)
    started = time.monotonic()
    first = subprocess.run(full, env=_env(sandbox), capture_output=True, text=True, timeout=120)
    duration = time.monotonic() - started
    assert first.returncode == 0, first.stderr
    after, _ = _clean(snapshot(sandbox.top), runtime)
    assert after != before, "the command changed nothing: nothing to interrupt"
    total = sum(1 for p in set(before) | set(after) if before.get(p) != after.get(p))
    report: list[tuple[float, int, int, int]] = []
    coarse = POINTS // 2
    times = [duration * (STARTUP + (1 - STARTUP) * (i + 0.5) / coarse) for i in range(coarse)]
    while len(report) < POINTS:
        if len(report) == coarse:  # the other half between the last "nothing written yet"
            lo = max([r[0] for r in report if r[1] == 0], default=0.0)  # and the first "all"
            hi = min([r[0] for r in report if r[1] == total], default=duration)
            times = [lo + (hi - lo) * (j + 0.5) / (POINTS - coarse) for j in range(POINTS - coarse)]
        at = times[len(report) % coarse]
        _restore(pristine, sandbox.top)
        proc = subprocess.Popen(full, env=_env(sandbox), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(at)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        time.sleep(0.3)  # an orphaned helper (groupadd) finishes its own write
        _stop_agents(sandbox)
        state, leftovers = _clean(snapshot(sandbox.top), runtime)
        changed = 0
        for path in sorted(set(before) | set(after) | set(state)):
            now, old, new = state.get(path), before.get(path), after.get(path)
            if now != old:
                changed += 1
            if _ACCOUNTS.search(path) and now is not None and now != old:
                # groupadd/useradd update these one entry per call: an intermediate version
                # is whole lines of the old and the new file, ending with a newline
                assert _whole_lines(now, old, new), f"kill at {at:.2f}s: {path} is partial"
                continue
            if volatile(path):  # random key material: its names and bytes vary per run
                continue
            assert now in (old, new), f"kill at {at:.2f}s: {path} is neither old nor new"
        again = subprocess.run(full, env=_env(sandbox), capture_output=True, text=True,
                               timeout=120)  # fmt: skip
        assert again.returncode == 0, f"re-run after a kill at {at:.2f}s: {again.stderr}"
        converged, _ = _clean(snapshot(sandbox.top), runtime)
        for path in sorted(set(after) | set(converged)):
            if not volatile(path):
                assert converged.get(path) == after.get(path), f"kill at {at:.2f}s: {path}"
        if any(volatile(p) for p in after):  # converged: one more run changes nothing
            third = subprocess.run(full, env=_env(sandbox), capture_output=True, timeout=120)
            assert third.returncode == 0
            assert _clean(snapshot(sandbox.top), runtime)[0] == converged, f"kill at {at:.2f}s"
        report.append((at, changed, leftovers, total))
    _stop_agents(sandbox)
    shutil.rmtree(pristine)
    return report


def _stop_agents(sandbox: Sandbox) -> None:
    """A kill -9 during key generation leaves gpg gpg-agent running for that home (podsec's
    own ``gpgconf --kill`` never ran): stop it, as the re-run would at its end."""
    for home in sandbox.root.glob("home/*/.gnupg"):
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False,
                       capture_output=True, timeout=30)  # fmt: skip


def _mid_run(report: list[tuple[float, int, int, int]]) -> int:
    """How many kills landed after the first write and before the last (printed: -s)."""
    mid = sum(1 for _at, changed, _left, total in report if 0 < changed < total)
    print(f"kill points {[round(r[0], 2) for r in report]}: {mid} mid-run")
    return mid


def test_policy_create_killed_anywhere(sandbox: Sandbox) -> None:
    report = kill_at_points(sandbox, ["policy", "create", "--registry-node", "192.0.2.10"])
    assert len(report) == POINTS
    assert _mid_run(report)


CLUSTER = """\
vip: 10.150.0.160
control_plane:
  - {name: master01, address: 192.168.122.80}
  - {name: master02, address: 192.168.122.81}
haproxy: {log: null, chroot: null, user: null, group: null, stats_socket: null}
"""


def test_lb_haproxy_reload_killed_anywhere(sandbox: Sandbox) -> None:
    cluster = sandbox.write("cluster.yaml", CLUSTER)
    sandbox.write("/etc/haproxy/haproxy.cfg", "global\n    daemon\n")  # the package's file
    report = kill_at_points(
        sandbox, ["lb", "haproxy", "--cluster", str(cluster), "--reload", "--force"]
    )
    assert len(report) == POINTS
    _mid_run(report)  # two files: a point between their writes is luck


def test_users_create_imagemaker_killed_anywhere(sandbox: Sandbox) -> None:
    first = sandbox.run("policy", "create", "--registry-node", "192.0.2.10")
    assert first.returncode == 0, first.stderr

    def volatile(path: str) -> bool:  # a new key each run: complete, not identical
        return "gnupg" in path or path.endswith((".pgp", "policy.json", ".podsec-bak", "shadow"))

    def runtime(path: str) -> bool:  # gpg-agent's sockets: not files the command writes
        return "/.gnupg/S." in path

    report = kill_at_points(
        sandbox, ["users", "create-imagemaker", "alice"], volatile=volatile, runtime=runtime
    )
    assert len(report) == POINTS
    assert _mid_run(report)
