"""``podsec images audit``: is every image in registry.local signed by the right key?

For every repository and tag of the registry the manifest digest is checked by digest
reference (``registry.local/REPO@sha256:…``) against the system policy: the signatures the
scope requires (GPG in the lookaside, sigstore attachments in the registry) must verify with
the keys bound to the repository's scope. Attachment tags (``sha256-<hex>.sig``) are not
images; one whose image no longer exists is an orphan, as are local signature dirs whose
image is gone.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from podsec.errors import NotFoundError, PodsecError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.names import REGISTRY_HOST
from podsec.progress import NULL_PROGRESS, Progress
from podsec.registry.client import RegistryClient
from podsec.trust import manifest, setup, verify, view
from podsec.trust.policy import Policy

OK = "ok"
UNSIGNED = "unsigned"
BAD = "bad-signature"
UNCHECKED = "unchecked"


@dataclass(frozen=True)
class AuditItem:
    repository: str
    digest: str
    tags: tuple[str, ...]
    status: str
    reason: str
    scope: str
    signer: str | None = None


@dataclass(frozen=True)
class AuditReport:
    registry: str
    policy_file: str
    items: tuple[AuditItem, ...]
    orphans: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def findings(self) -> int:
        return sum(1 for i in self.items if i.status != OK) + len(self.orphans)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "findings": self.findings}


def audit(
    host: Host,
    *,
    registry: str = REGISTRY_HOST,
    signatures_dir: Path | None = None,
    progress: Progress = NULL_PROGRESS,
    policy: Policy | None = None,
) -> AuditReport:
    """``policy``: audit against this policy instead of the system's (what a change
    would do, e.g. retiring a key)."""
    trust = view.effective(host, None)
    conf = trust.regd
    policy = trust.policy if policy is None else policy
    client = RegistryClient(f"http://{registry}")
    by_digest, attached = _read_registry(client, progress)
    items = []
    progress.start(_("checking signatures"), total=len(by_digest))
    for (repo, digest), tags in sorted(by_digest.items()):
        ref = f"{registry}/{repo}@{digest}"
        try:
            v = verify.check_image(host, ref, digest, policy, conf, registry=lambda _h: client)
        except PodsecError as exc:
            items.append(AuditItem(repo, digest, tuple(tags), UNCHECKED, exc.message, "?"))
            continue
        good = next((s for s in v.signatures if s.ok), None)
        if v.accepted:
            status = OK
        elif not v.signatures:
            status = UNSIGNED
        else:
            status = BAD
        items.append(
            AuditItem(
                repo,
                digest,
                tuple(sorted(tags)),
                status,
                v.reason,
                v.scope,
                good.fingerprint if good else None,
            )
        )
        progress.advance(_("checking signatures"))
    progress.finish(_("checking signatures"))
    orphans: list[str] = [
        f"{repo}:{tag}"
        for (repo, digest), tag in sorted(attached.items())
        if (repo, digest) not in by_digest
    ]
    notes: list[str] = []
    sig_root = signatures_dir or host.path(setup.SIGNATURES_DIR)
    if sig_root is not None:
        if sig_root.is_dir():
            known = {(repo, digest) for repo, digest in by_digest}
            orphans += _orphans(sig_root, known)
        else:
            notes.append(
                _("{path} does not exist here: orphaned signatures not checked").format(
                    path=host.unroot(sig_root)
                )
            )
    return AuditReport(registry, trust.policy_shown, tuple(items), tuple(orphans), tuple(notes))


def _read_registry(
    client: RegistryClient, progress: Progress
) -> tuple[dict[tuple[str, str], list[str]], dict[tuple[str, str], str]]:
    """{(repo, digest): tags} of the images, {(repo, digest): tag} of attachment tags."""
    repos = client.catalog()
    by_digest: dict[tuple[str, str], list[str]] = {}
    progress.start(_("reading the registry"), total=len(repos))
    attached: dict[tuple[str, str], str] = {}
    for repo in repos:
        for tag in client.tags(repo) or []:
            target = attachment_target(tag)
            if target is not None:  # sigstore signatures of that digest, not an image
                attached[(repo, target)] = tag
                continue
            try:
                body = client.manifest(repo, tag)[0]
            except NotFoundError:
                continue
            # what signatures sign: the manifest's own digest, not Docker-Content-Digest
            digest = manifest.digest(body)
            if digest:
                by_digest.setdefault((repo, digest), []).append(tag)
        progress.advance(_("reading the registry"))
    progress.finish(_("reading the registry"))
    return by_digest, attached


_ATTACHMENT_TAG = re.compile(r"sha256-([0-9a-f]{64})\.(sig|att|sbom)")


def attachment_target(tag: str) -> str | None:
    """The digest a cosign attachment tag (``sha256-<hex>.sig``/``.att``/``.sbom``)
    belongs to; None for an image tag."""
    m = _ATTACHMENT_TAG.fullmatch(tag)
    return f"sha256:{m.group(1)}" if m else None


def _orphans(sig_root: Path, known: set[tuple[str, str]]) -> list[str]:
    out = []
    for d in sorted(sig_root.rglob("*@sha256=*")):
        if not d.is_dir():
            continue
        rel = str(d.relative_to(sig_root))
        repo, _sep, hexpart = rel.rpartition("@sha256=")
        if (repo, f"sha256:{hexpart}") not in known:
            out.append(rel)
    return out
