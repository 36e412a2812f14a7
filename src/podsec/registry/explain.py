"""``podsec policy explain``: which rule decides about an image, and the real verdict.

Resolves the policy file and registries.d a user's podman would read, the transport and the
most specific scope, then fetches the manifest digest from the registry (plain HTTP, as
registry.local is served) and verifies the signatures like containers/image would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podsec.errors import PodsecError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.names import SYSTEM_REGISTRIES_D, USER_REGISTRIES_D
from podsec.registry.client import RegistryClient
from podsec.trust import policy as pol
from podsec.trust import reference, verify
from podsec.trust import registries_d as rd


@dataclass(frozen=True)
class Explanation:
    image: str
    policy_file: str
    registries_d: str
    transport: str
    reference: str
    manifest_digest: str | None
    verdict: verify.Verdict
    extra: dict[str, Any] = field(default_factory=dict)


def config_for(host: Host, home: Path | None) -> tuple[Path, Path]:
    """(policy.json, registries.d dir) that podman run with this HOME reads."""
    policy_path = pol.effective_policy_path(host, home)
    regd = host.path(str(home / USER_REGISTRIES_D)) if home is not None else None
    if regd is None or not regd.is_dir():
        regd = host.path(SYSTEM_REGISTRIES_D)
    return policy_path, regd


def split_transport(image: str) -> tuple[str, str]:
    for t in pol.KNOWN_TRANSPORTS:
        if image.startswith(f"{t}:"):
            rest = image[len(t) + 1 :]
            return t, rest.removeprefix("//") if t == "docker" else rest
    return "docker", image


def _digest(ref: reference.DockerRef) -> tuple[str, str]:
    if ref.digest:
        return ref.digest, ""
    try:
        found = RegistryClient(f"http://{ref.domain}", timeout=10).head_manifest(
            ref.path, ref.tag or "latest"
        )
    except PodsecError as exc:
        return "", exc.message
    if not found:
        return "", _("the image is not in the registry")
    return found, ""


def explain(host: Host, image: str, home: Path | None) -> Explanation:
    policy_path, regd = config_for(host, home)
    shown = host.unroot(policy_path)
    policy = pol.load(policy_path, shown)
    conf = rd.load_dir(regd, host.unroot(regd))
    transport, ref = split_transport(image)
    digest = ""
    if transport == "docker":
        parsed = reference.parse(ref)
        ref = str(parsed)
        digest, error = _digest(parsed)
        needs_digest = any(
            r.type not in (pol.ACCEPT, pol.REJECT) for r in pol.scope_for(policy, transport, ref)[1]
        )
        if not digest and needs_digest:
            scope, reqs = pol.scope_for(policy, transport, ref)
            keys = tuple(k for r in reqs for k in r.keys)
            verdict = verify.Verdict(False, scope, reqs, keys, None, error, transport)
            return Explanation(image, shown, host.unroot(regd), transport, ref, None, verdict)
    verdict = verify.check_image(host, ref, digest, policy, conf, transport=transport)
    return Explanation(image, shown, host.unroot(regd), transport, ref, digest or None, verdict)
