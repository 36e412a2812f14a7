"""``revoked.json``: the revoked client certificates, written by rbac and read by monitor.

The file (:data:`podsec.names.REVOKED_FILE`) is the contract between two areas that may not
import each other, so its format lives here, below both: a JSON list of objects, one per
revoked certificate::

    [{"cn": "alice", "serial": "1267650600228229401496703205383", "groups": ["k8s"],
      "user": "alice", "fingerprint_sha256": "ab…", "not_after": "2027-01-02T00:00:00+00:00",
      "revoked_at": "2026-01-02T00:00:00+00:00"}]

``cn`` (non-empty) and ``serial`` (a decimal string) are required; the other keys are
optional, and keys this version does not know are ignored (a newer podsec may add some).
Anything else — another top-level shape, an entry that is not an object, a field of the
wrong type — is an error naming the file and the entry. A leaf: the caller writes
through the host layer; :func:`read` reads a path it is given through :mod:`podsec.readers`
(a FIFO or a huge file in its place is an error, not a hang).
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
class Revoked:
    """One revoked certificate."""

    cn: str
    serial: str  # decimal, as a string (serials exceed JSON's safe integers)
    groups: tuple[str, ...] = ()
    user: str = ""
    fingerprint_sha256: str = ""
    not_after: str = ""  # ISO 8601; "" when unknown
    revoked_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "cn": self.cn,
            "serial": self.serial,
            "groups": list(self.groups),
            "user": self.user,
            "fingerprint_sha256": self.fingerprint_sha256,
            "not_after": self.not_after,
            "revoked_at": self.revoked_at,
        }

    def expires(self) -> dt.datetime | None:
        """When the certificate stops authenticating; None when unknown or unreadable."""
        try:
            return dt.datetime.fromisoformat(self.not_after)
        except ValueError:
            return None


_OPTIONAL_TEXT = ("user", "fingerprint_sha256", "not_after", "revoked_at")


def _entry(item: object, where: str) -> Revoked:
    cn, serial, groups, text = cert_records.fields(item, where, _OPTIONAL_TEXT)
    return Revoked(cn, serial, groups, **text)


def parse(data: bytes | str, source: str) -> tuple[Revoked, ...]:
    """The records of ``data``; empty data is an empty list (a file just created)."""
    return cert_records.parse(data, source, _entry)


def read(path: Path, source: str | None = None) -> tuple[Revoked, ...]:
    """The records in ``path`` (already rooted); a missing file holds none. ``source`` names
    the file in errors (the unrooted path)."""
    return cert_records.read(path, source, _entry)


def dumps(records: Iterable[Revoked]) -> str:
    """The file's text for ``records``."""
    return json.dumps([r.as_dict() for r in records], indent=2) + "\n"


def added(records: Iterable[Revoked], new: Revoked) -> tuple[Revoked, ...]:
    """``records`` with ``new`` appended, replacing an earlier record of the same serial."""
    return (*(r for r in records if r.serial != new.serial), new)
