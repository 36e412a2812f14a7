"""The child step: runs as the namespace's root right after rootlesskit created the namespaces.

It makes the copied-up tree usable for a 1.20 kubelet (private /run/netns and /var/lib/cni,
per-user persistent /var/lib/{containerd,kubelet,cni} and /var/log, /dev/null over /dev/kmsg,
files holding the wanted values over three global sysctls), puts the node IP on ``lo``, then
*becomes* the CRI (exec): one resident Python process less on every node. rootlesskit's own
child is the namespace's PID 1 and reaps orphans (``--pidns``, its reaper); SIGTERM reaches
the CRI from rootlesskit, and when the CRI exits rootlesskit exits and the supervisor notices.
``ready_file`` says the setup is done and which process became the CRI; the node is up once
the CRI's socket exists too (:func:`podsec.u7s.nsenter.wait_child`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NoReturn

from podsec.errors import CommandError, PodsecError
from podsec.host.run import replace_process, run
from podsec.i18n import _


def _replace_link(path: Path) -> None:
    if path.is_symlink():
        path.unlink()


def _bind(src: str, dst: str) -> None:
    target = Path(dst)
    if Path(src).is_dir():
        _replace_link(target)
        target.mkdir(parents=True, exist_ok=True)
    elif not target.exists() and not target.is_symlink():
        # a file's mount point cannot be made here (e.g. /dev/kmsg, which kubelet 1.20 opens:
        # every host has it; a container may not)
        raise PodsecError(
            _("cannot bind {src} over {dst}: {dst} does not exist").format(src=src, dst=dst)
        )
    try:
        run(["mount", "--bind", src, dst], timeout=10)
    except CommandError as exc:
        raise PodsecError(
            _("cannot bind {src} over {dst}: {err}").format(
                src=src, dst=dst, err=exc.stderr[-300:].strip() or exc.message
            )
        ) from exc


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


def start_cri(spec: dict[str, Any]) -> NoReturn:
    """Replace this process by the CRI; its output goes to its log file."""
    Path(spec["cri_socket"]).unlink(missing_ok=True)  # a stale socket is not "up"
    ready = Path(spec["ready_file"])
    ready.write_text(f"{os.getpid()}\n")
    replace_process(spec["cri_argv"], log_file=Path(spec["log_file"]))


def main(spec_file: Path) -> NoReturn:
    spec = json.loads(spec_file.read_text())
    Path(spec["ready_file"]).unlink(missing_ok=True)
    setup(spec)
    start_cri(spec)
