"""``issued.json``: the client certificates podsec issued, written by rbac and read by monitor.

Like ``revoked.json`` (:mod:`podsec.revocations`) the file is the contract between two areas
that may not import each other, so its format lives here, below both: a JSON list of objects,
one per certificate ``create-kubeconfig`` or ``renew`` wrote into a kubeconfig::

    [{"cn": "alice", "serial": "1267650600228229401496703205383", "groups": ["k8s"],
      "fingerprint_sha256": "ab…", "not_before": "2026-12-03T14:00:00+00:00",
      "not_after": "2027-12-03T14:00:00+00:00", "issued_at": "2026-12-03T14:05:00+00:00",
      "kubeconfig": "/home/alice/.kube/config"}]

``cn`` and ``serial`` (decimal string) are required; unknown keys are ignored. Read through
:mod:`podsec.readers`; an entry of the wrong shape is an error naming the file and the entry.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podsec import readers
from podsec.errors import ValidationError
from podsec.i18n import _


@dataclass(frozen=True)
class Issued:
    cn: str
    serial: str
    groups: tuple[str, ...] = ()
    fingerprint_sha256: str = ""
    not_before: str = ""
    not_after: str = ""
    issued_at: str = ""
    kubeconfig: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "cn": self.cn,
            "serial": self.serial,
            "groups": list(self.groups),
            "fingerprint_sha256": self.fingerprint_sha256,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "issued_at": self.issued_at,
            "kubeconfig": self.kubeconfig,
        }

    def expires(self) -> dt.datetime | None:
        try:
            end = dt.datetime.fromisoformat(self.not_after)
        except ValueError:
            return None
        return end if end.tzinfo else end.replace(tzinfo=dt.UTC)


_TEXT = ("fingerprint_sha256", "not_before", "not_after", "issued_at", "kubeconfig")


def _entry(item: object, where: str) -> Issued:
    if not isinstance(item, dict):
        raise ValidationError(_("{where}: expected an object").format(where=where))
    cn, serial = item.get("cn"), item.get("serial")
    if not isinstance(cn, str) or not cn:
        raise ValidationError(_("{where}.cn: expected a non-empty string").format(where=where))
    if not isinstance(serial, str):
        raise ValidationError(_("{where}.serial: expected a string").format(where=where))
    groups = item.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ValidationError(_("{where}.groups: expected a list of strings").format(where=where))
    text: dict[str, str] = {}
    for key in _TEXT:
        value = item.get(key, "")
        if not isinstance(value, str):
            raise ValidationError(
                _("{where}.{key}: expected a string").format(where=where, key=key)
            )
        text[key] = value
    return Issued(cn, serial, tuple(groups), **text)


def parse(data: bytes | str, source: str) -> tuple[Issued, ...]:
    if not data.strip():
        return ()
    doc = readers.parse_json(data, source)
    if not isinstance(doc, list):
        raise ValidationError(_("{path} must hold a JSON list").format(path=source))
    return tuple(_entry(item, f"{source}[{i}]") for i, item in enumerate(doc))


def read(path: Path, source: str | None = None) -> tuple[Issued, ...]:
    """The records in ``path`` (rooted); a missing file means none was recorded."""
    name = source or str(path)
    data = readers.read_bytes(path, shown=name)
    return () if data is None else parse(data, name)


def dumps(records: Iterable[Issued]) -> str:
    return json.dumps([r.as_dict() for r in records], indent=2) + "\n"


def added(records: Iterable[Issued], new: Issued) -> tuple[Issued, ...]:
    """``records`` with ``new`` appended, replacing an earlier record of the same serial."""
    return (*(r for r in records if r.serial != new.serial), new)
