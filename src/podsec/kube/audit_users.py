"""When the API server's audit log last saw each of some users (``podsec rbac certs``, the
certificate check of the monitor): the log and its rotated copies (lumberjack's
``audit-<time>.log``), searched in place for the users' names (:mod:`podsec.host.logscan`);
only the lines that name one are parsed. An event counts with its ``stageTimestamp``
(``requestReceivedTimestamp`` when absent), refused requests included: the certificate was
used."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections.abc import Iterable
from pathlib import Path

from podsec.host import logfollow, logscan


def _when(text: object) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    with contextlib.suppress(ValueError):
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return None


def last_seen(log: Path, users: Iterable[str]) -> dict[str, dt.datetime]:
    """{user: the time of its latest event} for the ``users`` the log names."""
    wanted = set(users)
    if not wanted:
        return {}
    needles = [
        logscan.Needle(b'"username":' + json.dumps(u, ensure_ascii=False).encode())
        for u in sorted(wanted)
    ]

    def parse(line: bytes) -> tuple[str, dt.datetime] | None:
        event = json.loads(line)
        user = (event.get("user") or {}).get("username") if isinstance(event, dict) else None
        if user not in wanted:
            return None
        moment = _when(event.get("stageTimestamp") or event.get("requestReceivedTimestamp"))
        return None if moment is None else (user, moment)

    scanner = logscan.Scanner(needles, parse, parallel=False)
    seen: dict[str, dt.datetime] = {}
    for path in [*logfollow.rotated_siblings(log), log]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            records, _end = logscan.scan_file(fd, 0, scanner, final=True)
        finally:
            os.close(fd)
        for user, moment in records:
            if user not in seen or moment > seen[user]:
                seen[user] = moment
    return seen
