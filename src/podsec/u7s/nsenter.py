"""Entering the node's namespaces (``nsenter_u7s``): the argv, run as u7s-admin."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from podsec.errors import PodsecError
from podsec.i18n import _
from podsec.u7s.layout import Layout

# the namespaces rootlesskit may create, in nsenter's flag names (user first: it grants the rest)
_KINDS = (
    ("user", "--user"),
    ("mnt", "--mount"),
    ("net", "--net"),
    ("uts", "--uts"),
    ("ipc", "--ipc"),
    ("pid", "--pid"),
    ("cgroup", "--cgroup"),
)


class NotRunning(PodsecError):
    """The node's namespace does not exist (the runtime is stopped)."""

    exit_code = 3


def _ns(pid: int | str, kind: str) -> str | None:
    try:
        return str(Path(f"/proc/{pid}/ns/{kind}").readlink())
    except OSError:
        return None


def namespace_flags(pid: int) -> list[str]:
    """nsenter flags for every namespace of ``pid`` that differs from ours."""
    flags = []
    for kind, flag in _KINDS:
        theirs = _ns(pid, kind)
        if theirs is not None and theirs != _ns("self", kind):
            flags.append(flag)
    if "--user" in flags:
        flags.insert(1, "--preserve-credentials")
    return flags


def wait_child(layout: Layout, timeout: float = 30.0) -> int:
    """The child's PID once the namespace is up (its setup is done and the CRI made its
    socket), retrying until ``timeout``."""
    deadline = time.monotonic() + timeout
    ready = layout.runtime_dir / "child.ready"
    while True:
        pid = layout.child_pid()
        if (
            pid is not None
            and Path(f"/proc/{pid}").exists()
            and ready.exists()
            and layout.cri_socket.is_socket()
        ):
            return pid
        if time.monotonic() > deadline:
            raise NotRunning(
                _("the u7s namespace of {user} is not running").format(user=layout.user),
                hint=_("start it with `podsec u7s start` (or `podsec u7s kubeadm init`)"),
            )
        time.sleep(0.2)


def argv(layout: Layout, command: Sequence[str], *, timeout: float = 30.0) -> list[str]:
    """``nsenter ... -t CHILD -- command`` (the caller runs it as ``layout.user``)."""
    pid = wait_child(layout, timeout)
    return ["nsenter", *namespace_flags(pid), "-t", str(pid), "--wd=/", "--", *command]
