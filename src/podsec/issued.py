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

from podsec import cert_records


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
    cn, serial, groups, text = cert_records.fields(item, where, _TEXT)
    return Issued(cn, serial, groups, **text)


def parse(data: bytes | str, source: str) -> tuple[Issued, ...]:
    """The records of ``data``; empty data is an empty list (a file just created)."""
    return cert_records.parse(data, source, _entry)


def read(path: Path, source: str | None = None) -> tuple[Issued, ...]:
    """The records in ``path`` (already rooted); a missing file holds none. ``source`` names
    the file in errors (the unrooted path)."""
    return cert_records.read(path, source, _entry)


def dumps(records: Iterable[Issued]) -> str:
    return json.dumps([r.as_dict() for r in records], indent=2) + "\n"


def added(records: Iterable[Issued], new: Issued) -> tuple[Issued, ...]:
    """``records`` with ``new`` appended, replacing an earlier record of the same serial."""
    return (*(r for r in records if r.serial != new.serial), new)
