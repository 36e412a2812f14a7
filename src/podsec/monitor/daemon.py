"""The watchers' runtime: a syslog connection, a stop flag SIGTERM sets, the watch loop and
its cleanup — the same for ``watch-containers`` and ``watch-kubeapi -d``."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType
from typing import Protocol

from podsec.monitor import sinks


class Watcher(Protocol):
    def run(self, should_stop: Callable[[], bool]) -> None: ...

    def close(self) -> None: ...


def stop_on_sigterm() -> Callable[[], bool]:
    """A flag SIGTERM sets; the handler also interrupts a blocking wait (KeyboardInterrupt,
    which :func:`run_watcher` treats as a normal stop)."""
    stopped = {"now": False}

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stopped["now"] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    return lambda: stopped["now"]


def run_watcher(
    tag: str,
    syslog_socket: str,
    make: Callable[[sinks.Syslog], Watcher],
    *,
    warn: Callable[[str], None],
) -> None:
    """Run the watcher ``make`` builds around the syslog connection until SIGTERM or ^C;
    then close it and report (through ``warn``) what syslog could not take."""
    syslog = sinks.Syslog(tag, syslog_socket)
    watcher = make(syslog)
    stop = stop_on_sigterm()
    try:
        watcher.run(stop)
    except KeyboardInterrupt:
        pass
    finally:
        watcher.close()
        for error in syslog.errors:
            warn(f"{tag}: {error}")
