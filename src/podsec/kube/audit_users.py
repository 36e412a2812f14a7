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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from podsec.host import logfollow, logscan

T = TypeVar("T")


def _when(text: object) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    with contextlib.suppress(ValueError):
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return None


def _scan(log: Path, users: Iterable[str], parse: Callable[[dict[str, Any]], T | None]) -> list[T]:
    """``parse(event)`` of every event of ``users`` in the log and its rotated copies (oldest
    first); lines are searched in place for the users' names, only those are decoded."""
    wanted = set(users)
    if not wanted:
        return []
    needles = [
        logscan.Needle(b'"username":' + json.dumps(u, ensure_ascii=False).encode())
        for u in sorted(wanted)
    ]

    def line(raw: bytes) -> T | None:
        event = json.loads(raw)
        if not isinstance(event, dict):
            return None
        user = (event.get("user") or {}).get("username")
        return parse(event) if user in wanted else None

    scanner = logscan.Scanner(needles, line)
    out: list[T] = []
    for path in [*logfollow.rotated_siblings(log), log]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            records, _end = logscan.scan_file(fd, 0, scanner, final=True)
        finally:
            os.close(fd)
        out.extend(records)
    return out


def last_seen(log: Path, users: Iterable[str]) -> dict[str, dt.datetime]:
    """{user: the time of its latest event} for the ``users`` the log names."""

    def parse(event: dict[str, Any]) -> tuple[str, dt.datetime] | None:
        moment = _when(event.get("stageTimestamp") or event.get("requestReceivedTimestamp"))
        return None if moment is None else (str(event["user"]["username"]), moment)

    seen: dict[str, dt.datetime] = {}
    for user, moment in _scan(log, users, parse):
        if user not in seen or moment > seen[user]:
            seen[user] = moment
    return seen


@dataclass(frozen=True)
class Use:
    """One request a user made, as the audit log's ResponseComplete event tells it."""

    verb: str
    allowed: bool
    when: dt.datetime
    group: str = ""
    resource: str = ""  # "pods", "pods/log"; "" for a non-resource request
    namespace: str | None = None
    name: str | None = None
    path: str = ""  # the non-resource URL path


def uses(log: Path, user: str, since: dt.datetime | None = None) -> list[Use]:
    """The requests of ``user`` (answered: ResponseComplete) from ``since`` on; allowed is
    the authorizer's decision (audit annotation, else not a 403)."""

    def parse(event: dict[str, Any]) -> Use | None:
        if event.get("stage") != "ResponseComplete":
            return None
        moment = _when(event.get("requestReceivedTimestamp") or event.get("stageTimestamp"))
        if moment is None or (since is not None and moment < since):
            return None
        decision = (event.get("annotations") or {}).get("authorization.k8s.io/decision")
        code = (event.get("responseStatus") or {}).get("code")
        allowed = decision == "allow" if decision else code != 403
        ref = event.get("objectRef")
        verb = str(event.get("verb") or "")
        if isinstance(ref, dict) and ref.get("resource"):
            resource = str(ref["resource"])
            if ref.get("subresource"):
                resource += "/" + str(ref["subresource"])
            return Use(
                verb,
                allowed,
                moment,
                group=str(ref.get("apiGroup") or ""),
                resource=resource,
                namespace=ref.get("namespace") or None,
                name=ref.get("name") or None,
            )
        uri = str(event.get("requestURI") or "")
        return Use(verb, allowed, moment, path=uri.split("?", 1)[0])

    return _scan(log, [user], parse)
