"""Idempotent ``/etc/hosts`` editing that never lists a name twice."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from podsec.errors import UsageError
from podsec.host import files
from podsec.host.paths import Host
from podsec.i18n import _


@dataclass(frozen=True)
class HostsEntry:
    address: str
    names: tuple[str, ...]


def parse(text: str) -> list[HostsEntry]:
    entries = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2:
            entries.append(HostsEntry(fields[0], tuple(fields[1:])))
    return entries


def lookup(host: Host, name: str) -> str | None:
    """The address ``name`` maps to in the configured /etc/hosts, or None."""
    for entry in parse(files.read_text(host.path("/etc/hosts")) or ""):
        if name in entry.names:
            return entry.address
    return None


def ensure_names(host: Host, address: str, names: list[str], *, force: bool = False) -> bool:
    """Make every name in ``names`` resolve to ``address``; return True if the file changed.

    A name already mapped to ``address`` is left alone. A name mapped to another address is
    a conflict: refused unless ``force``, which removes the name from the other lines.
    """
    try:
        ipaddress.ip_address(address)
    except ValueError as exc:
        raise UsageError(_("{address}: not an IP address").format(address=address)) from exc
    path = host.path("/etc/hosts")
    text = files.read_text(path) or ""
    conflicts = [
        (name, entry.address)
        for entry in parse(text)
        for name in names
        if name in entry.names and entry.address != address
    ]
    if conflicts and not force:
        name, other = conflicts[0]
        raise UsageError(
            _("/etc/hosts already maps {name} to {other}").format(name=name, other=other),
            hint=_("remove that line or re-run with --force to move the name to {address}").format(
                address=address
            ),
        )
    present = {n for e in parse(text) if e.address == address for n in e.names}
    missing = [n for n in names if n not in present]
    conflict_names = {c[0] for c in conflicts}
    if not missing and not conflict_names:
        return False
    out_lines = []
    for line in text.splitlines():
        body, sep, comment = line.partition("#")
        fields = body.split()
        if len(fields) >= 2 and conflict_names & set(fields[1:]):
            kept = [f for f in fields[1:] if f not in conflict_names]
            if not kept:
                continue
            out_lines.append(" ".join([fields[0], *kept]) + (f" #{comment}" if sep else ""))
            continue
        out_lines.append(line)
    out_lines.append(" ".join([address, *missing]))
    files.atomic_write(path, "\n".join(out_lines) + "\n", mode=0o644)
    return True
