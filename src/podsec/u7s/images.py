"""The node's image set: what the real kubeadm lists for a version, plus flannel.

* ``kubeadm config images list --kubernetes-version V --image-repository R`` (through the
  probe) gives the control-plane images;
* every tag is checked against the registry (``GET /v2/<repo>/tags/list``). A missing tag is
  an error that lists the versions the registry has, unless ``U7S_SETAVAILABLEIMAGES=yes``:
  then the newest patch of the same minor is used for the ``kube-*`` images (the plan's
  version changes), the newest tag for etcd/CoreDNS (set in the ClusterConfiguration) and for
  pause (the node retags it to the name kubeadm expects). Versions are ordered numerically:
  ``v1.30.10`` > ``v1.30.9`` (the original sorted strings, defect 26);
* flannel and flannel-cni-plugin come from the same repository (``docker.io/flannel`` for
  upstream images); ``U7S_FLANNEL_TAG`` / ``U7S_FLANNELCNIPLUGIN_TAG`` pin them (the original
  ignored the latter's value, defect 19). The manifest is podsec's own template with the
  images and the pod network filled in. Flannel images that are not there switch the node to
  the ``bridge`` CNI (single node) with a note, unless a flannel tag was pinned.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from ipaddress import IPv4Network
from string import Template

from podsec.config import Settings
from podsec.errors import NotFoundError, PodsecError, UsageError
from podsec.i18n import _
from podsec.registry import versions
from podsec.registry.client import RegistryUnavailable
from podsec.registry.platform import ImageSource
from podsec.registry.versions import minor_of, newest, sort_versions
from podsec.u7s.probe import Probe


def split_ref(ref: str) -> tuple[str, str]:
    """ "registry.local:5000/p10/etcd:3.4.13-0" → ("registry.local:5000/p10/etcd", "3.4.13-0")."""
    head, slash, last = ref.rpartition("/")
    name, colon, tag = last.partition(":")
    if not colon:
        return ref, "latest"
    return f"{head}{slash}{name}", tag


def component(ref: str) -> str:
    """ "registry.local/p10/kube-apiserver:v1.20.2" → "kube-apiserver"."""
    return split_ref(ref)[0].rsplit("/", 1)[-1]


@dataclass(frozen=True)
class FlannelRelease:
    tag: str
    cni_plugin_tag: str
    nftables: bool


def flannel_releases() -> dict[str, FlannelRelease]:
    """The flannel releases podsec ships manifest data for."""
    data = versions.flannel_data()
    return {
        tag: FlannelRelease(tag, info["cni_plugin"], bool(info.get("nftables")))
        for tag, info in data.items()
    }


@dataclass(frozen=True)
class ImageSet:
    kube_version: str  # possibly moved to the newest available patch
    images: tuple[str, ...]  # every image to pull, full references
    pause_image: str  # the pause image the CRI and kubelet use
    etcd_tag: str | None = None  # ClusterConfiguration override when substituted
    coredns_tag: str | None = None
    retag: tuple[tuple[str, str], ...] = ()  # (pulled, name kubeadm expects)
    substitutions: tuple[tuple[str, str], ...] = ()  # (wanted, used) to tell the user
    cni: str = "flannel"
    flannel_image: str | None = None
    flannel_cni_image: str | None = None
    flannel_tag: str | None = None
    flannel_cni_tag: str | None = None
    notes: tuple[str, ...] = ()  # warnings for the CLI to show
    skip_phases: tuple[str, ...] = ()  # kubeadm phases to skip for images that are missing


class _Registry:
    """Cached tag lists for one run, with the user-facing errors."""

    def __init__(self, probe: Probe, source: ImageSource) -> None:
        self.probe = probe
        self.source = source
        self.cache: dict[str, list[str] | None] = {}

    def tags(self, repo: str) -> list[str] | None:
        if repo not in self.cache:
            try:
                self.cache[repo] = self.probe.registry_tags(repo)
            except RegistryUnavailable as exc:
                raise PodsecError(
                    _("cannot read image tags from registry {registry}: {err}").format(
                        registry=repo.split("/", 1)[0], err=exc
                    ),
                    hint=_(
                        "check U7S_REGISTRY (now {repo}) and that /etc/hosts names registry.local"
                    ).format(repo=self.source.repository),
                ) from exc
        return self.cache[repo]

    def require(self, repo: str) -> list[str]:
        tags = self.tags(repo)
        if tags is None:
            raise NotFoundError(
                _("registry has no repository {repo}").format(repo=repo),
                hint=_(
                    "wrong U7S_REGISTRY / U7S_PLATFORM? images are expected under {src}/"
                ).format(src=self.source.repository),
            )
        return tags


def _needed(refs: Sequence[str], role: str, skip_phases: Iterable[str]) -> list[str]:
    skipped = set(skip_phases)
    out = []
    for ref in refs:
        name = component(ref)
        if role == "join-worker" and name not in ("kube-proxy", "pause"):
            continue
        # CoreDNS is an addon: only `init` deploys it; a joining control plane never needs it
        if name == "coredns" and (
            role == "join-control-plane" or skipped & {"addon", "addon/all", "addon/coredns"}
        ):
            continue
        if name == "kube-proxy" and skipped & {"addon", "addon/all", "addon/kube-proxy"}:
            continue
        out.append(ref)
    return out


def _missing_kube(ref: str, tags: list[str], version: str) -> UsageError:
    ordered = [t for t in sort_versions(tags) if t.startswith("v")]
    same = [t for t in ordered if minor_of(t) == minor_of(version)]
    available = same or ordered
    hint = (
        _(
            "export U7S_KUBEVERSION={newest}, or U7S_SETAVAILABLEIMAGES=yes to use the newest patch of {minor}"
        ).format(newest=available[-1], minor=minor_of(version))
        if available
        else _("load the Kubernetes images into the registry first")
    )
    return UsageError(
        _("image {ref} is not in the registry; available versions: {versions}").format(
            ref=ref, versions=", ".join(available[-8:]) or _("none")
        ),
        hint=hint,
    )


def _kube_version(
    reg: _Registry, refs: Sequence[str], version: str, substitute: bool
) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The Kubernetes version whose kube-* images all exist (maybe a newer patch)."""
    kube_refs = [r for r in refs if component(r).startswith("kube-")]
    missing = [r for r in kube_refs if split_ref(r)[1] not in reg.require(split_ref(r)[0])]
    if not missing:
        return version, ()
    first = missing[0]
    if not substitute:
        raise _missing_kube(first, reg.require(split_ref(first)[0]), version)
    common = set(reg.require(split_ref(kube_refs[0])[0]))
    for ref in kube_refs[1:]:
        common &= set(reg.require(split_ref(ref)[0]))
    pick = newest(common, minor_of(version))
    if pick is None:
        raise _missing_kube(first, sorted(common), version)
    return pick, ((version, pick),)


def resolve(
    probe: Probe,
    source: ImageSource,
    settings: Settings,
    *,
    version: str,
    role: str,
    cni: str,
    skip_phases: Sequence[str] = (),
    pod_cidr: IPv4Network | None = None,
    check: bool = True,
) -> ImageSet:
    """The image set for ``version`` from ``source``; see the module docstring."""
    refs = probe.images_list(version, source.repository)
    if not refs:
        raise UsageError(_("kubeadm lists no images for version {version}").format(version=version))
    reg = _Registry(probe, source)
    subs: list[tuple[str, str]] = []
    if check:
        new_version, moved = _kube_version(reg, refs, version, settings.set_available_images)
        if moved:
            subs.extend(
                (f"{source.repository}/kube-*:{a}", f"{source.repository}/kube-*:{b}")
                for a, b in moved
            )
            version = new_version
            refs = probe.images_list(version, source.repository)
    needed = _needed(refs, role, skip_phases)
    pulled: list[str] = []
    etcd_tag = coredns_tag = None
    retag: list[tuple[str, str]] = []
    pause = next((r for r in refs if component(r) == "pause"), f"{source.repository}/pause:3.2")
    pause_used = pause
    skip_more: list[str] = []
    notes: list[str] = []
    for ref in needed:
        repo, tag = split_ref(ref)
        if not check or component(ref).startswith("kube-"):
            pulled.append(ref)
            continue
        tags = reg.tags(repo) if component(ref) == "coredns" else reg.require(repo)
        if tags is not None and tag in tags:
            pulled.append(ref)
            continue
        pick = newest(tags or []) if settings.set_available_images else None
        if pick is None and component(ref) == "coredns":
            # like flannel → bridge: a node without cluster DNS still works (Debian has no
            # CoreDNS); the addon phase is skipped and the user told so
            skip_more.append("addon/coredns")
            notes.append(
                _("CoreDNS image {ref} is not available; the coredns addon is skipped").format(
                    ref=ref
                )
            )
            continue
        if pick is None or tags is None:
            raise UsageError(
                _("image {ref} is not in the registry; available tags: {tags}").format(
                    ref=ref, tags=", ".join(sort_versions(tags or [])[-8:]) or _("none")
                ),
                hint=_(
                    "push it, or set U7S_SETAVAILABLEIMAGES=yes to use the newest available tag"
                ),
            )
        used = f"{repo}:{pick}"
        subs.append((ref, used))
        pulled.append(used)
        name = component(ref)
        if name == "etcd":
            etcd_tag = pick
        elif name == "coredns":
            coredns_tag = pick
        elif name == "pause":
            pause_used = used
            retag.append((used, ref))
    base = ImageSet(
        kube_version=version,
        images=tuple(pulled),
        pause_image=pause_used,
        etcd_tag=etcd_tag,
        coredns_tag=coredns_tag,
        retag=tuple(retag),
        substitutions=tuple(subs),
        cni=cni,
        notes=tuple(notes),
        skip_phases=tuple(skip_more),
    )
    if cni != "flannel":
        return base
    return _with_flannel(base, reg, source, settings, check)


def _with_flannel(  # noqa: PLR0912 - pinned, known and unknown tags
    base: ImageSet, reg: _Registry, source: ImageSource, settings: Settings, check: bool
) -> ImageSet:
    from dataclasses import replace

    releases = flannel_releases()
    repo = f"{source.flannel_repository}/flannel"
    cni_repo = f"{source.flannel_repository}/flannel-cni-plugin"
    pinned = settings.flannel_tag
    try:
        tags = reg.tags(repo) if check else None
    except PodsecError:
        if pinned:
            raise
        tags = None
        if check:
            return replace(base, cni="bridge", notes=(*base.notes, _bridge_note(repo)))
    if check and not tags:
        if pinned:
            raise NotFoundError(
                _("flannel image {repo}:{tag} is not in the registry").format(repo=repo, tag=pinned)
            )
        return replace(base, cni="bridge", notes=(*base.notes, _bridge_note(repo)))
    known = sort_versions(releases)
    if pinned:
        tag = pinned
        if check and tags is not None and tag not in tags:
            raise NotFoundError(
                _("flannel image {repo}:{tag} is not in the registry; available: {tags}").format(
                    repo=repo, tag=tag, tags=", ".join(sort_versions(tags)[-8:])
                )
            )
    elif tags is not None:
        with_data = [t for t in tags if t in releases]
        tag = newest(with_data) or newest(tags) or known[-1]
    else:
        tag = known[-1]
    cni_tag = settings.flannel_cni_plugin_tag or (
        releases[tag].cni_plugin_tag if tag in releases else None
    )
    if check:
        cni_tags = reg.tags(cni_repo)
        if not cni_tags or (cni_tag is not None and cni_tag not in cni_tags):
            if settings.flannel_cni_plugin_tag or pinned:
                raise NotFoundError(
                    _("flannel CNI plugin image {repo}:{tag} is not in the registry").format(
                        repo=cni_repo, tag=cni_tag or "?"
                    )
                )
            return replace(base, cni="bridge", notes=(*base.notes, _bridge_note(cni_repo)))
        cni_tag = cni_tag or newest(cni_tags)
    if cni_tag is None:
        raise UsageError(
            _("no flannel-cni-plugin tag known for flannel {tag}").format(tag=tag),
            hint=_("set U7S_FLANNELCNIPLUGIN_TAG"),
        )
    flannel_image = f"{repo}:{tag}"
    cni_image = f"{cni_repo}:{cni_tag}"
    return replace(
        base,
        images=(*base.images, flannel_image, cni_image),
        flannel_image=flannel_image,
        flannel_cni_image=cni_image,
        flannel_tag=tag,
        flannel_cni_tag=cni_tag,
    )


def _bridge_note(repo: str) -> str:
    return _("flannel images are not available ({repo}); using the single-node bridge CNI").format(
        repo=repo
    )


def flannel_manifest(
    flannel_image: str, cni_plugin_image: str, pod_cidr: IPv4Network, tag: str | None = None
) -> str:
    """podsec's kube-flannel.yml with images on the chosen registry and our pod network.
    Write it outside kubelet's static-pod directory (the original did not, defect 37)."""
    release = flannel_releases().get(tag or split_ref(flannel_image)[1])
    nft = release.nftables if release else False
    text = resources.files("podsec").joinpath("data/u7s/flannel/kube-flannel.yml.in").read_text()
    return Template(text).substitute(
        flannel_image=flannel_image,
        cni_plugin_image=cni_plugin_image,
        pod_cidr=str(pod_cidr),
        net_conf_extra='\n      "EnableNFTables": false,' if nft else "",
    )
