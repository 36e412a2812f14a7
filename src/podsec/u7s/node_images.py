"""The node's image store (containerd's ``k8s.io`` namespace inside the node): what is
there, imports from archives and OCI layouts, and pulls through skopeo so the host's
signature policy decides what gets in.

An image whose policy scope requires ``sigstoreSigned`` is decided by podsec's verifier (the
admission webhook's engine) instead: Debian's skopeo refuses every such image ("sigstore
disabled"). The manifest digest it verified is then copied, by digest, so what enters the
store is exactly what was verified."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from podsec.errors import PodsecError
from podsec.host import run as hostrun
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.progress import Progress
from podsec.trust import reference
from podsec.u7s import lifecycle, render, supervisor
from podsec.u7s.layout import Layout
from podsec.u7s.lifecycle import NodeError
from podsec.u7s.plan import NodePlan


def ctr(layout: Layout, *args: str, timeout: float = 600) -> hostrun.Result:
    return hostrun.run(
        ["ctr", f"--address={layout.cri_socket}", "-n", "k8s.io", *args], timeout=timeout
    )


def present_images(layout: Layout) -> set[str]:
    out = ctr(layout, "images", "ls", "-q").stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def import_archive(layout: Layout, archive: Path) -> None:
    """Import an OCI/docker archive into the node's image store (names from the archive)."""
    ctr(layout, "images", "import", str(archive))


def import_oci_layout(layout: Layout, oci_dir: Path, tmp: Path) -> None:
    """Import every image of an OCI layout directory (tests, offline demo)."""
    archive = tmp / "images.tar"
    hostrun.run(["tar", "-C", str(oci_dir), "-cf", str(archive), "."], timeout=300)
    try:
        import_archive(layout, archive)
    finally:
        archive.unlink(missing_ok=True)


def sigstore_verified(host: Host, image: str) -> str | None:
    """``REPO@DIGEST`` of ``image`` verified by podsec's engine when its scope requires a
    sigstore signature (refused with the policy's reason otherwise); None when the scope
    does not (skopeo's own policy check decides)."""
    import os

    from podsec.registry.client import RegistryClient, base_url
    from podsec.trust import manifest, verify, view
    from podsec.trust import policy as pol

    trust = view.effective(host, view.caller_home(host), rootless=os.geteuid() != 0)
    ref = reference.parse(image)
    _scope, reqs = pol.scope_for(trust.policy, "docker", str(ref))
    if not any(r.type == pol.SIGSTORE_SIGNED for r in reqs):
        return None
    client = RegistryClient(base_url(ref.domain), timeout=60)
    body = client.manifest(ref.path, ref.digest or ref.tag or "latest")[0]
    digest = manifest.digest(body)
    if ref.digest is not None and digest != ref.digest:
        raise PodsecError(
            _("{image}: the registry served a manifest with digest {digest}").format(
                image=image, digest=digest
            )
        )
    verdict = verify.check_image(
        host, str(ref), digest, trust.policy, trust.regd, registry=lambda _h: client
    )
    if not verdict.accepted:
        raise PodsecError(verdict.reason)
    return f"{ref.domain}/{ref.path}@{digest}"


def pull_images(
    layout: Layout, plan: NodePlan, progress: Progress, tmp: Path, host: Host | None = None
) -> None:
    """Pull every planned image missing from the node's store, through skopeo, so the host's
    signature policy (/etc/containers/policy.json, registries.d) is enforced on the way in
    (with ``host``: sigstore scopes by podsec's verifier, see the module docstring)."""
    have = present_images(layout)
    todo = [i for i in plan.images if i not in have]
    progress.start("images", total=len(todo) or None)
    for ref in todo:
        archive = tmp / "image.tar"
        # the policy is checked on the source; an archive cannot hold the signatures
        argv = ["skopeo", "copy", "--quiet", "--remove-signatures"]
        if reference.plain_http(ref.split("/", 1)[0]):
            argv.append("--src-tls-verify=false")
        try:
            source = sigstore_verified(host, ref) if host is not None else None
            if source is not None:
                # verified above; skopeo copies exactly that digest
                argv.insert(1, "--insecure-policy")
            src = f"docker://{source or ref}"
            hostrun.run([*argv, src, f"oci-archive:{archive}:{ref}"], timeout=900)
        except PodsecError as exc:
            raise NodeError(
                _("cannot pull {image}: {err}").format(image=ref, err=exc.message),
                hint=_("check the registry (U7S_REGISTRY), the tag and the image's signature"),
            ) from exc
        try:
            import_archive(layout, archive)
        finally:
            archive.unlink(missing_ok=True)
        progress.advance("images")

    for pulled, expected in render.retag_pairs(plan):
        ctr(layout, "images", "tag", "--force", pulled, expected)
    progress.finish("images")


def load(
    plan: NodePlan,
    layout: Layout,
    progress: Progress,
    *,
    oci_layout: Path | None,
    pull: bool,
    host: Host | None = None,
) -> None:
    """Every image of ``plan`` into the node's store (from ``oci_layout``, else pulled unless
    ``pull`` is false); refuse when one is still missing."""
    with tempfile.TemporaryDirectory(prefix="podsec-u7s-") as tmp:
        if oci_layout is not None:
            progress.start("import")
            import_oci_layout(layout, oci_layout, Path(tmp))
            progress.finish("import")
        elif pull:
            pull_images(layout, plan, progress, Path(tmp), host)
    missing_images = [i for i in plan.images if i not in present_images(layout)]
    if missing_images:
        raise NodeError(
            _("image {image} is not available").format(image=missing_images[0]),
            hint=_("check U7S_REGISTRY / U7S_PLATFORM and the registry's tags"),
        )


def pull(host: Host, layout: Layout, images: Sequence[str], progress: Progress) -> None:
    """``podsec u7s pull``: ``images`` into the running node's store, through the policy."""
    plan = replace(supervisor.load_plan(host), images=tuple(images), env={})
    lifecycle.start_required(host, layout)
    with tempfile.TemporaryDirectory(prefix="podsec-u7s-") as tmp:
        pull_images(layout, plan, progress, Path(tmp), host)
