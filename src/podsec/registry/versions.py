"""One order for version-like image tags (Kubernetes, etcd, CoreDNS, pause, flannel).

``v1.30.10`` > ``v1.30.9`` (numbers, not strings: the original's defect 26), a release above
its candidates (``v1.30.0`` > ``v1.30.0-rc.1``, like semver), and build suffixes such as
etcd's ``3.4.13-0`` or flannel's ``v1.4.0-flannel1`` above the bare version. Tags that are no
version (``latest``, ``sha256-….sig``) have no place in the order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from podsec.errors import UsageError
from podsec.i18n import _

_VERSION_RE = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:([-+.])(.*))?\Z")
_PRERELEASE_RE = re.compile(r"^(alpha|beta|rc)", re.IGNORECASE)
_NATURAL_RE = re.compile(r"(\d+)")
_PRE, _RELEASE, _BUILD = 0, 1, 2  # rank of a suffix

VersionKey = tuple[Any, ...]


def version_key(tag: str) -> VersionKey | None:
    """Sort key for a version-like tag; None for a tag that is no version (``latest``)."""
    m = _VERSION_RE.match(tag)
    if not m:
        return None
    major, minor, patch = (int(x) if x else 0 for x in m.group(1, 2, 3))
    suffix = m.group(5) or ""
    if m.group(4) and not suffix:
        return None
    parts = tuple((0, int(p)) if p.isdigit() else (1, p) for p in _NATURAL_RE.split(suffix) if p)
    rank = _RELEASE if not suffix else _PRE if _PRERELEASE_RE.match(suffix) else _BUILD
    return (major, minor, patch, rank, parts)


def is_prerelease(tag: str) -> bool:
    key = version_key(tag)
    return key is not None and key[3] == _PRE


def sort_versions(tags: Iterable[str]) -> list[str]:
    """Version-like tags in ascending version order (others dropped)."""
    keyed = [(k, t) for t in tags if (k := version_key(t)) is not None]
    return [t for _k, t in sorted(keyed)]


def minor_of(version: str) -> str:
    """ "v1.20.2" → "v1.20"."""
    m = _VERSION_RE.match(version)
    if not m:
        raise UsageError(_("{version}: not a version").format(version=version))
    return f"v{m.group(1)}.{m.group(2) or 0}"


def newest(tags: Iterable[str], minor: str | None = None) -> str | None:
    """The newest version-like tag, optionally of one minor (``v1.20``); a release wins over
    any pre-release (a release candidate is chosen only when there is nothing else)."""
    ordered = [t for t in sort_versions(tags) if minor is None or minor_of(t) == minor]
    releases = [t for t in ordered if not is_prerelease(t)]
    pick = releases or ordered
    return pick[-1] if pick else None


def flannel_data() -> dict[str, dict[str, Any]]:
    """The flannel releases podsec ships manifest data for (``data/u7s/flannel/versions.json``:
    release → ``cni_plugin`` tag, ``nftables``)."""
    import json
    from importlib import resources

    text = resources.files("podsec").joinpath("data/u7s/flannel/versions.json").read_text()
    releases = json.loads(text)["releases"]
    return releases if isinstance(releases, dict) else {}


def flannel_cni_tag(flannel_tag: str) -> str | None:
    """The flannel-cni-plugin tag the upstream manifest of ``flannel_tag`` uses."""
    info = flannel_data().get(flannel_tag if flannel_tag.startswith("v") else f"v{flannel_tag}")
    tag = info.get("cni_plugin") if isinstance(info, dict) else None
    return tag if isinstance(tag, str) else None
