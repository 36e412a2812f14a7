"""What both of podsec's process supervisors share: the restart back-off and the stop that
escalates to SIGKILL.

The two loops stay apart on purpose: ``services run`` (registry/service.py) keeps two
independent programs up; ``u7s run`` (u7s/supervisor.py) starts services in dependency
order, restarts everything inside a namespace whose holder died, takes restart requests from
files and publishes its state — a generic loop covering both would be larger than either.
"""

from __future__ import annotations

import contextlib
import os
import signal

from podsec.host.run import Child, TimeoutExpired


def next_backoff(
    previous: float, uptime: float, *, first: float = 1.0, limit: float = 10.0, stable: float = 30.0
) -> float:
    """Seconds to wait before restarting a program that ran ``uptime`` seconds: ``first``
    after a run longer than ``stable`` seconds, else twice the previous wait, at most ``limit``."""
    return first if uptime > stable else min(previous * 2, limit)


def terminate(
    proc: Child, *, sig: int = signal.SIGTERM, timeout: float = 30.0, group: bool = False
) -> None:
    """Stop ``proc`` with ``sig`` (its whole process group with ``group``: a service started
    in its own session), SIGKILL after ``timeout`` seconds; returns once it is reaped."""
    if proc.poll() is not None:
        return

    def send(which: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, which)
            else:
                proc.send_signal(which)

    send(sig)
    try:
        proc.wait(timeout)
    except TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(10)
