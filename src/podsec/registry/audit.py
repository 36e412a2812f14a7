"""``podsec images audit``: is every image in registry.local signed by the right key?

For every repository and tag of the registry the manifest digest is checked by digest
reference (``registry.local/REPO@sha256:…``) against the system policy: at least one
signature in the lookaside must verify with the key bound to the repository's scope. The
local signature directory is then scanned for signature dirs whose image no longer exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from podsec.errors import NotFoundError, PodsecError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.names import REGISTRY_HOST
from podsec.progress import NULL_PROGRESS, Progress
from podsec.registry.client import RegistryClient
from podsec.trust import manifest, setup, verify, view

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


def audit(
    host: Host,
    *,
    registry: str = REGISTRY_HOST,
    signatures_dir: Path | None = None,
    progress: Progress = NULL_PROGRESS,
) -> AuditReport:
    trust = view.effective(host, None)
    policy, conf = trust.policy, trust.regd
    client = RegistryClient(f"http://{registry}")
    repos = client.catalog()
    by_digest: dict[tuple[str, str], list[str]] = {}
    progress.start(_("reading the registry"), total=len(repos))
    for repo in repos:
        for tag in client.tags(repo) or []:
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
    items = []
    progress.start(_("checking signatures"), total=len(by_digest))
    for (repo, digest), tags in sorted(by_digest.items()):
        ref = f"{registry}/{repo}@{digest}"
        try:
            v = verify.check_image(host, ref, digest, policy, conf)
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
    orphans: list[str] = []
    notes: list[str] = []
    sig_root = signatures_dir or host.path(setup.SIGNATURES_DIR)
    if sig_root is not None:
        if sig_root.is_dir():
            known = {(repo, digest) for repo, digest in by_digest}
            orphans = _orphans(sig_root, known)
        else:
            notes.append(
                _("{path} does not exist here: orphaned signatures not checked").format(
                    path=host.unroot(sig_root)
                )
            )
    return AuditReport(registry, trust.policy_shown, tuple(items), tuple(orphans), tuple(notes))


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
