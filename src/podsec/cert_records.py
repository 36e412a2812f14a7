"""The shape ``revoked.json`` and ``issued.json`` share: a JSON list of objects, one per client
certificate, each with a required ``cn`` (non-empty) and ``serial`` (decimal string), optional
``groups`` (strings) and optional text fields; keys a version does not know are ignored.

One parser for both files (:mod:`podsec.revocations`, :mod:`podsec.issued`), so an entry of
the wrong shape is refused the same way, naming the file and the entry. Read through
:mod:`podsec.readers` (a FIFO or a huge file in its place is an error, not a hang).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from podsec import readers
from podsec.errors import ValidationError
from podsec.i18n import _

T = TypeVar("T")
Fields = tuple[str, str, tuple[str, ...], dict[str, str]]


def fields(item: object, where: str, text_keys: Sequence[str]) -> Fields:
    """``cn``, ``serial``, ``groups`` and the named text fields ("" when absent) of one entry."""
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
    for key in text_keys:
        value = item.get(key, "")
        if not isinstance(value, str):
            raise ValidationError(
                _("{where}.{key}: expected a string").format(where=where, key=key)
            )
        text[key] = value
    return cn, serial, tuple(groups), text


def parse(data: bytes | str, source: str, entry: Callable[[object, str], T]) -> tuple[T, ...]:
    """The records of ``data``; empty data is an empty list (a file just created)."""
    if not data.strip():
        return ()
    doc = readers.parse_json(data, source)
    if not isinstance(doc, list):
        raise ValidationError(_("{path} must hold a JSON list").format(path=source))
    return tuple(entry(item, f"{source}[{i}]") for i, item in enumerate(doc))


def read(path: Path, source: str | None, entry: Callable[[object, str], T]) -> tuple[T, ...]:
    """The records in ``path`` (already rooted); a missing file holds none. ``source`` names
    the file in errors (the unrooted path)."""
    name = source or str(path)
    data = readers.read_bytes(path, shown=name)
    return () if data is None else parse(data, name, entry)
