"""``podsec policy explain``: which rule decides about an image, and the real verdict.

Takes the user's effective trust view (:mod:`podsec.trust.view`), the transport and the most
specific scope, fetches the manifest from the registry (plain HTTP, as registry.local is
served), computes its digest from the bytes, and asks :mod:`podsec.trust.verify` — the
engine every other check uses. Each signature's claims (identity, digest, key), read
without verifying it, are shown next to its verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podsec.errors import PodsecError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.registry.client import RegistryClient
from podsec.trust import manifest, reference, verify, view
from podsec.trust import policy as pol


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
    warnings: tuple[str, ...] = ()
    user: str = ""  # whose view (for the report)

    def as_dict(self) -> dict[str, Any]:
        v = self.verdict
        return {
            "image": self.image,
            "user": self.user,
            "policy_file": self.policy_file,
            "registries_d": self.registries_d,
            "warnings": list(self.warnings),
            "transport": self.transport,
            "reference": self.reference,
            "manifest_digest": self.manifest_digest,
            "scope": v.scope,
            "requirements": [r.to_json() for r in v.requirements],
            "keys": list(v.keys),
            "lookaside_url": v.lookaside_url,
            "sigstore_attachments": v.attachments,
            "signatures": list(v.signatures),
            "accepted": v.accepted,
            "reason": v.reason,
        }


def split_transport(image: str) -> tuple[str, str]:
    for t in pol.KNOWN_TRANSPORTS:
        if image.startswith(f"{t}:"):
            rest = image[len(t) + 1 :]
            return t, rest.removeprefix("//") if t == "docker" else rest
    return "docker", image


def _digest(ref: reference.DockerRef) -> tuple[str, str]:
    """(manifest digest, error): computed from the manifest bytes the registry serves."""
    try:
        body = RegistryClient(f"http://{ref.domain}", timeout=10).manifest(
            ref.path, ref.digest or ref.tag or "latest"
        )[0]
    except PodsecError as exc:
        return "", exc.message
    try:
        found = manifest.digest(body)
    except PodsecError as exc:
        return "", exc.message
    if ref.digest and found != ref.digest:
        return "", _("the registry served a manifest whose digest is {found}").format(found=found)
    return found, ""


def explain_for(host: Host, image: str, user: str | None) -> Explanation:
    """``podsec policy explain IMAGE [--user USER]``: :func:`explain` in ``user``'s view
    (default: the running user's; see :func:`podsec.trust.view.user_home`)."""
    from dataclasses import replace

    name, home = view.user_home(host, user)
    return replace(explain(host, image, home), user=name)


def explain(host: Host, image: str, home: Path | None) -> Explanation:
    trust = view.effective(host, home)
    policy, conf = trust.policy, trust.regd
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
            return Explanation(
                image,
                trust.policy_shown,
                trust.regd_shown,
                transport,
                ref,
                None,
                verdict,
                warnings=trust.warnings,
            )
    verdict = verify.check_image(host, ref, digest, policy, conf, transport=transport)
    return Explanation(
        image,
        trust.policy_shown,
        trust.regd_shown,
        transport,
        ref,
        digest or None,
        verdict,
        warnings=trust.warnings,
    )
