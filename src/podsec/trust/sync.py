"""One policy everywhere: a client node against the registry node's published trust.

The registry node publishes its policy.json and the makers' keys at
``http://sigstore.local:81/keys/`` (:mod:`podsec.trust.setup`). :func:`drift` compares what
this node has installed with that: the policy file, the registries.d file podsec writes for it
(``use-sigstore-attachments`` for the sigstore scopes), and every key — above all a key this
node's policy still trusts that the published policy no longer names (a retired or revoked
maker key: the node would still accept images it signs). :func:`sync` installs the published
version, only when the pins (``--trust``) cover it, exactly as ``policy create`` does on a
client node, and changes nothing otherwise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from podsec.errors import PodsecError
from podsec.host import files
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.names import KEYS_URL
from podsec.trust import policy as pol
from podsec.trust import setup


@dataclass(frozen=True)
class Drift:
    published_sha256: str
    policy_differs: bool
    registries_d_differs: bool
    stale_keys: tuple[str, ...]  # trusted here, no longer by the registry node
    changed_keys: tuple[str, ...]  # same file name, other content
    missing_keys: tuple[str, ...]  # published policy names them, not installed here

    @property
    def in_sync(self) -> bool:
        return not (
            self.policy_differs
            or self.registries_d_differs
            or self.stale_keys
            or self.changed_keys
            or self.missing_keys
        )


def _keys(policy: pol.Policy) -> set[str]:
    reqs = [r for scopes in policy.transports.values() for rs in scopes.values() for r in rs]
    return {k for r in [*policy.default, *reqs] for k in r.keys}


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def drift(host: Host, published: dict[str, bytes]) -> Drift:
    """How this node differs from ``published`` (:func:`setup.fetch_published`)."""
    text = published["policy.json"]
    wanted = pol.parse(text.decode(errors="replace"), KEYS_URL + "policy.json")
    installed_path = host.path(pol.SYSTEM_POLICY)
    installed_bytes = installed_path.read_bytes() if installed_path.is_file() else b""
    installed = setup.load_system_policy(host)
    local_keys = _keys(installed) if installed is not None else set()
    wanted_keys = _keys(wanted)
    stale = sorted(local_keys - wanted_keys)
    changed, missing = [], []
    for path in sorted(wanted_keys):
        name = Path(path).name
        here = host.path(path)
        if not here.is_file():
            missing.append(path)
        elif name in published and here.read_bytes() != published[name]:
            changed.append(path)
    regd = host.path(setup.REGISTRIES_D_FILE)
    regd_now = files.read_text(regd)
    try:
        regd_wanted = setup.registries_d_text(host, wanted)
    except PodsecError:  # a file podsec cannot rewrite here is drift, not a crash
        regd_wanted = None
    return Drift(
        _sha(text),
        installed_bytes != text,
        regd_now != regd_wanted,
        tuple(stale),
        tuple(changed),
        tuple(missing),
    )


@dataclass(frozen=True)
class SyncReport:
    changed: tuple[str, ...]
    drift_before: Drift


def sync(host: Host, trust: Sequence[str], *, keys_url: str = KEYS_URL) -> SyncReport:
    """Install the published policy, its keys and the registries.d file podsec writes for it,
    when ``trust`` (pins) covers them; raise without changing anything otherwise."""
    pins = setup.parse_pins(trust)
    published = setup.fetch_published(keys_url)
    policy, keys = setup.verify_published(published, pins)  # raises: nothing written
    before = drift(host, published)
    regd_text = setup.registries_d_text(host, policy)
    changed: list[str] = []
    for name, data in sorted(keys.items()):
        path = f"{setup.KEYS_DIR}/{name}"
        if files.atomic_write(host.path(path), data, mode=0o644):
            changed.append(path)
    changed += setup.write_policy(host, policy, publish=False)
    if files.atomic_write(host.path(setup.REGISTRIES_D_FILE), regd_text, mode=0o644):
        changed.append(setup.REGISTRIES_D_FILE)
    return SyncReport(tuple(changed), before)


def describe(d: Drift) -> list[str]:
    out = [
        _("trusts {key}, which the registry node no longer does").format(key=k)
        for k in d.stale_keys
    ]
    out += [_("{key} differs from the published one").format(key=k) for k in d.changed_keys]
    out += [_("{key} is not installed").format(key=k) for k in d.missing_keys]
    if d.policy_differs:
        out.append(_("{path} differs from the published policy").format(path=pol.SYSTEM_POLICY))
    if d.registries_d_differs:
        out.append(
            _("{path} is not what the published policy needs").format(path=setup.REGISTRIES_D_FILE)
        )
    return out
