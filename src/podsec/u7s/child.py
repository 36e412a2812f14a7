"""The child step: runs as the namespace's root right after rootlesskit created the namespaces.

It makes the copied-up tree usable for a 1.20 kubelet (private /run/netns and /var/lib/cni,
per-user persistent /var/lib/{containerd,kubelet,cni} and /var/log, /dev/null over /dev/kmsg,
files holding the wanted values over three global sysctls), puts the node IP on ``lo``, then
starts the CRI and stays as the namespace's PID 1: it reaps orphans, forwards SIGTERM and exits
with the CRI's status, which makes rootlesskit exit and the supervisor notice.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from podsec.errors import PodsecError
from podsec.host.run import run, spawn
from podsec.i18n import _


def _replace_link(path: Path) -> None:
    if path.is_symlink():
        path.unlink()


def _bind(src: str, dst: str) -> None:
    target = Path(dst)
    if Path(src).is_dir():
        _replace_link(target)
        target.mkdir(parents=True, exist_ok=True)
    run(["mount", "--bind", src, dst], timeout=10)


def setup(spec: dict[str, Any]) -> None:
    """Everything before the CRI starts (idempotent per fresh namespace)."""
    for link in spec["remove_links"]:
        _replace_link(Path(link))
    for d in spec["private_dirs"]:
        path = Path(d)
        _replace_link(path)
        path.mkdir(parents=True, exist_ok=True)
    for d in spec["make_dirs"]:
        path = Path(d)
        _replace_link(path)
        path.mkdir(parents=True, exist_ok=True)
    for src, dst in spec["binds"]:
        _bind(src, dst)
    _bind(spec["cni_bin"], "/opt/cni/bin")
    for link, target in spec.get("links", {}).items():
        path = Path(link)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.symlink_to(target)
    run(["ip", "link", "set", "lo", "up"], timeout=10)
    run(["ip", "addr", "replace", f"{spec['node_ip']}/32", "dev", "lo"], timeout=10)


def serve(spec: dict[str, Any]) -> int:
    """Start the CRI, signal readiness, reap children until the CRI exits."""
    ready = Path(spec["ready_file"])
    ready.unlink(missing_ok=True)
    socket = Path(spec["cri_socket"])
    socket.unlink(missing_ok=True)
    cri = spawn(spec["cri_argv"], log_file=Path(spec["log_file"]), new_session=False)
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        with contextlib.suppress(ProcessLookupError):
            cri.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    deadline = time.monotonic() + 60
    while not socket.exists():
        if cri.poll() is not None:
            raise PodsecError(
                _("{cri} exited during start (see {log})").format(
                    cri=spec["cri_argv"][0], log=spec["log_file"]
                )
            )
        if time.monotonic() > deadline:
            raise PodsecError(_("{cri} did not create its socket").format(cri=spec["cri_argv"][0]))
        time.sleep(0.1)
    ready.write_text(f"{os.getpid()}\n")
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if pid == cri.pid:
            ready.unlink(missing_ok=True)
            code = os.waitstatus_to_exitcode(status)
            return 0 if stopping else (code or 1)


def main(spec_file: Path) -> int:
    spec = json.loads(spec_file.read_text())
    setup(spec)
    return serve(spec)
