"""Forbidden and unauthenticated Kubernetes API requests from the apiserver's audit log.

``watch-kubeapi -d`` follows ``/etc/kubernetes/audit/audit.log`` (JSON lines, audit.k8s.io/v1
``Event``) across rotation with a persisted cursor and writes one record per code > 400 (the seed's; ``--codes`` narrows) — and
per request made with a revoked certificate — to syslog and to ``forbidden.log``. The pieces:
:mod:`~podsec.monitor.audit_events` (which events, the record), :mod:`podsec.host.logscan`
(the bytes prefilter over the raw log), :mod:`podsec.host.logfollow` (cursor and rotation),
:mod:`~podsec.monitor.kubeapi_digest` (``-m``) and :mod:`~podsec.monitor.audit_install`
(``--install``). This module holds where the state lives and ``forbidden.log``; ``-d`` and
``-m`` coordinate with :func:`podsec.host.files.dir_lock` on the state directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from podsec.host.files import dir_lock
from podsec.host.logfollow import Follower
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.monitor import audit_events
from podsec.monitor.audit_events import Record
from podsec.names import AUDIT_LOG, REVOKED_FILE

STATE_DIR = "/var/lib/podsec/u7s/log/kubeapi"
TAG = "podsec-inotify-check-kubeapi"


@dataclass
class Paths:
    log: Path
    state_dir: Path
    revoked: Path

    @classmethod
    def for_host(cls, host: Host, log: str = AUDIT_LOG) -> Paths:
        return cls(host.path(log), host.path(STATE_DIR), host.path(REVOKED_FILE))

    @property
    def cursor(self) -> Path:
        return self.state_dir / "cursor.json"

    @property
    def forbidden(self) -> Path:
        return self.state_dir / "forbidden.log"


class ForbiddenLog:
    """Appends records to forbidden.log; reopens it when ``-m`` has rotated it away."""

    def __init__(self, path: Path):
        self.path = path
        self._fh: TextIO | None = None

    def _open(self) -> TextIO:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._fh = os.fdopen(fd, "a", encoding="utf-8")
        return self._fh

    def write(self, records: list[Record]) -> None:
        if not records:
            return
        with dir_lock(self.path.parent):
            if self._fh is not None:
                try:
                    current = self.path.stat().st_ino
                except FileNotFoundError:
                    current = -1
                if current != os.fstat(self._fh.fileno()).st_ino:
                    self._fh.close()
                    self._fh = None
            fh = self._fh if self._fh is not None else self._open()
            fh.write("".join(r.to_json() + "\n" for r in records))
            fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def follower(
    paths: Paths,
    sink: Callable[[list[Record]], None],
    notice: Callable[[int, str], None] | None = None,
    *,
    save_interval: float = 1.0,
    codes: frozenset[int] = audit_events.SEED_CODES,
) -> Follower[Record]:
    """The audit log's follower: requests answered with one of ``codes`` (default the
    seed's > 400) and revoked-certificate requests go to ``sink``."""
    revoked = audit_events.load_revoked(paths.revoked, notice)
    return Follower(
        paths.log,
        paths.cursor,
        sink,
        audit_events.scanner(revoked, codes=codes),
        notice,
        label=_("audit log"),
        save_interval=save_interval,
    )


class Watch:
    """``watch-kubeapi -d`` as a :class:`~podsec.monitor.daemon.Watcher`: follow the log
    (``once``: only what is there now), then close ``forbidden.log``."""

    def __init__(self, follower: Follower[Record], forbidden: ForbiddenLog, *, once: bool):
        self.follower = follower
        self.forbidden = forbidden
        self.once = once

    def run(self, should_stop: Callable[[], bool]) -> None:
        if self.once:
            self.follower.catch_up()
        else:
            self.follower.follow(should_stop)

    def close(self) -> None:
        self.forbidden.close()
