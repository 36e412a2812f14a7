"""Kubernetes audit events: which ones podsec reports, and the record it keeps of each.

A line of the apiserver's audit log (JSON, audit.k8s.io/v1 ``Event``) becomes a
:class:`Record` when its response code is above 400, as the seed counts them ("код более
400"; ``--codes 401,403`` narrows it to the refusals proper), or when a revoked certificate's
CN made it — whatever the answer. :func:`candidate_needles` are the bytes prefilters
:mod:`podsec.host.logscan` runs over the raw log so only candidate lines are parsed as JSON;
they never leave out a line :func:`extract` would report, whatever its JSON looks like.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from podsec import revocations
from podsec.errors import ValidationError
from podsec.host import logscan
from podsec.i18n import _

SEED_CODES = frozenset(range(401, 600))  # the seed's "> 400"
FORBIDDEN_CODES = frozenset((401, 403))  # unauthenticated and forbidden only


def parse_codes(text: str) -> frozenset[int]:
    """``401,403`` or ``401-499,503`` → the set of HTTP status codes (400 < code < 600)."""
    out: set[int] = set()
    for item in (t.strip() for t in text.split(",")):
        lo, dash, hi = item.partition("-")
        try:
            a, b = int(lo), int(hi if dash else lo)
        except ValueError:
            raise ValidationError(
                _("--codes: {item!r} is not a status code or a range A-B").format(item=item)
            ) from None
        if not 400 < a <= b < 600:
            raise ValidationError(_("--codes: {item!r} is outside 401-599").format(item=item))
        out.update(range(a, b + 1))
    return frozenset(out)


class Record(NamedTuple):
    """One forbidden/unauthenticated (or revoked-certificate) request (a NamedTuple: 10,000
    of them are built during a catch-up, and a frozen dataclass costs 3x more to build)."""

    timestamp: str
    user: str
    groups: tuple[str, ...]
    verb: str
    resource: str
    namespace: str
    name: str
    code: int
    reason: str
    source_ip: str
    uri: str
    audit_id: str
    revoked: bool = False

    def to_json(self) -> str:
        data = self._asdict()
        data["groups"] = list(self.groups)
        return _dumps(data)

    @classmethod
    def from_json(cls, line: str) -> Record:
        data = json.loads(line)
        data["groups"] = tuple(data.get("groups") or ())
        return cls(**{k: v for k, v in data.items() if k in cls._fields})

    @property
    def what(self) -> str:
        if self.resource:
            target = self.resource
            if self.namespace:
                target = f"{self.namespace}/{target}"
            if self.name:
                target += f"/{self.name}"
            return target
        return self.uri

    def message(self) -> str:
        """The syslog line (``Critical: ...`` so nagwad's rule maps it to CRITICAL)."""
        kind = {401: _("Unauthorized"), 403: _("Forbidden")}.get(self.code) or _("Refused")
        who = self.user or _("(anonymous)")
        text = _(
            "{kind} ({code}): user {user} groups [{groups}] {verb} {what} from {ip} at {ts}"
        ).format(
            kind=kind,
            code=self.code,
            user=who,
            groups=",".join(self.groups),
            verb=self.verb or "-",
            what=self.what or "-",
            ip=self.source_ip or "-",
            ts=self.timestamp,
        )
        if self.reason:
            text += _("; reason: {reason}").format(reason=self.reason)
        if self.revoked:
            text = _("request with a REVOKED certificate (CN {user}, code {code}): {text}").format(
                user=self.user, code=self.code, text=text
            )
        return "Critical: " + text


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _json_codec() -> tuple[Callable[[bytes | str], Any], Callable[[Any], str]]:
    """orjson when installed (3-4x faster on audit events), else the standard library;
    imported at the first event, not at start-up."""
    try:
        import orjson
    except ImportError:

        def dumps(obj: Any) -> str:
            return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))

        return json.loads, dumps

    def odumps(obj: Any) -> str:
        return orjson.dumps(obj).decode()

    return orjson.loads, odumps


_CODEC: tuple[Callable[[bytes | str], Any], Callable[[Any], str]] | None = None


def _codec() -> tuple[Callable[[bytes | str], Any], Callable[[Any], str]]:
    global _CODEC  # noqa: PLW0603 - chosen once, at the first event
    _CODEC = _json_codec()
    return _CODEC


def _dumps(obj: Any) -> str:
    return (_CODEC or _codec())[1](obj)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def extract(
    line: bytes | str, revoked: frozenset[str] = frozenset(), codes: frozenset[int] = SEED_CODES
) -> Record | None:
    """The record for one audit log line, or None when it is not one to report.

    Raises ValueError for a line that is not a JSON object (the caller counts those).
    """
    event = (_CODEC or _codec())[0](line)
    if type(event) is not dict:
        raise ValueError("not a JSON object")
    get = event.get
    status = get("responseStatus")
    code = status.get("code") if type(status) is dict else None
    if type(code) is not int:
        code = None  # a status code is an integer (int32); 403.0 or "403" is not one
    user = get("user")
    if type(user) is not dict:
        user = {}
    username = user.get("username")
    if type(username) is not str:
        username = ""
    is_revoked = username in revoked if username else False
    if not is_revoked and (code not in codes or get("stage") == "RequestReceived"):
        return None
    obj = _dict(get("objectRef"))
    reason = _str(_dict(get("annotations")).get("authorization.k8s.io/reason"))
    if not reason and type(status) is dict:
        reason = _str(status.get("message")) or _str(status.get("reason"))
    ips = get("sourceIPs")
    resource = _str(obj.get("resource"))
    sub = _str(obj.get("subresource"))
    if resource and sub:
        resource += "/" + sub
    return Record(
        _str(get("requestReceivedTimestamp")) or _str(get("stageTimestamp")),
        username,
        tuple(g for g in _list(user.get("groups")) if type(g) is str),
        _str(get("verb")),
        resource,
        _str(obj.get("namespace")),
        _str(obj.get("name")),
        code or 0,
        reason,
        _str(ips[0]) if type(ips) is list and ips else "",
        _str(get("requestURI")),
        _str(get("auditID")),
        is_revoked,
    )


def load_revoked(path: Path, notice: Callable[[int, str], None] | None = None) -> frozenset[str]:
    """Common names from the RBAC denylist (:mod:`podsec.revocations`); a missing file means
    nothing is revoked. A broken file is reported through ``notice`` and revokes nothing:
    the watcher keeps reporting refusals rather than stopping."""
    try:
        return frozenset(r.cn for r in revocations.read(path))
    except ValidationError as exc:
        if notice is not None:
            notice(2, "Critical: " + exc.message)
        return frozenset()


def candidate_needles(
    revoked: Iterable[str] = (), codes: frozenset[int] = SEED_CODES
) -> list[logscan.Needle]:
    """Lines that may carry one of ``codes``, or be made by a revoked user.

    The apiserver writes compact JSON (``"code":403``). A hundred that is almost all wanted
    gets one needle on its first digit (the seed's > 400: ``"code":4``, ``"code":5``);
    otherwise one needle per ten, the last digit picked after it (401/403: ``"code":40``
    then 1 or 3). The parse decides; a needle only has to miss nothing, so the other ways
    JSON may write the key are candidates too: whitespace around its colon (a raw tab or CR
    anywhere, which compact JSON never has; ``"code" `` and ``"code": ``) and an escaped
    letter (``\\u0063ode``: ``\\u006`` is how c, d, e and o are escaped). A status code is a
    JSON integer, whose text starts with its first digit. For revoked users: their name as
    the apiserver writes it (UTF-8), with whitespace after the key, or any escape.
    """
    needles: list[logscan.Needle] = []
    for hundred in sorted({c // 100 for c in codes}):
        in_hundred = sorted(c for c in codes if c // 100 == hundred)
        if len(in_hundred) >= 90:
            needles.append(logscan.Needle(b'"code":%d' % hundred))
            continue
        for ten in sorted({c // 10 for c in in_hundred}):
            last = bytes(sorted({ord("0") + c % 10 for c in in_hundred if c // 10 == ten}))
            needles.append(logscan.Needle(b'"code":%d' % ten, last))
    needles += [logscan.Needle(b) for b in ODD_CODE_KEYS]
    names = sorted(set(revoked))
    for name in names:
        quoted = json.dumps(name, ensure_ascii=False)[1:-1].encode()
        needles.append(logscan.Needle(b'"username":"' + quoted + b'"'))
    if names:
        needles += [logscan.Needle(b) for b in (b'"username" ', b'"username": ', b"\\u")]
    return needles


# "code" written otherwise than compactly and in plain letters (candidate_needles)
ODD_CODE_KEYS = (b'"code" ', b'"code": ', b"\\u006", b"\t", b"\r")


def scanner(
    revoked: frozenset[str] = frozenset(),
    *,
    codes: frozenset[int] = SEED_CODES,
) -> logscan.Scanner[Record]:
    """A log scanner for audit events: the prefilters, :func:`extract`, and each request
    reported once (by audit ID)."""
    return logscan.Scanner(
        candidate_needles(revoked, codes),
        functools.partial(extract, revoked=revoked, codes=codes),
        key=_audit_id,
    )


def _audit_id(record: Record) -> str:
    return record.audit_id
