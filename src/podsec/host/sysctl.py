"""Kernel parameters: persistent ``/etc/sysctl.d`` files and (on the live system) their
immediate application."""

from __future__ import annotations

from podsec.host import files
from podsec.host.paths import Host
from podsec.host.run import run


def read(host: Host, key: str) -> str | None:
    """Current value of ``key`` (dotted name) from the host's /proc/sys, None if absent."""
    path = host.proc / "sys" / key.replace(".", "/")
    try:
        return path.read_text().strip()
    except OSError:
        return None


def render(values: dict[str, str], comment: str) -> str:
    lines = [f"# {comment}"] + [f"{k} = {v}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def ensure_file(
    host: Host, name: str, values: dict[str, str], *, comment: str, apply: bool = True
) -> bool:
    """Write ``/etc/sysctl.d/NAME`` with ``values``; on the live system also apply them.

    Returns True if the file changed.
    """
    path = host.path(f"/etc/sysctl.d/{name}")
    changed = files.atomic_write(path, render(values, comment), mode=0o644)
    if apply and host.is_live:
        for key, value in values.items():
            if read(host, key) != value:
                run(["sysctl", "-w", f"{key}={value}"])
    return changed
