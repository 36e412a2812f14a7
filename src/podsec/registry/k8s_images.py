"""The Kubernetes image set: the real kubeadm, its image list, and save-k8s' archive set.

``kubeadm config images list --kubernetes-version V --image-repository <repository>`` (the
real kubeadm binary, never podsec's own wrapper: :func:`real_kubeadm`), plus flannel and
flannel-cni-plugin, plus any extra images (reference §4.1 getKuberImages, §4.3, §10.3). The
repository comes from :func:`podsec.registry.platform.choose`, the rule the node uses too;
save-k8s keeps the original's registry.altlinux.org default when U7S_REGISTRY is unset.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from podsec.config import Settings
from podsec.errors import CommandError, NotFoundError, PodsecError, UsageError
from podsec.host import run
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.names import U7S_BIN
from podsec.registry import client, naming, platform, versions

KUBEADM_ENV = "PODSEC_KUBEADM"  # the real kubeadm, when it is not on PATH
_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


WRAPPER_ENTRY = "podsec-u7s-kubeadm"  # the entry point U7S_BIN/kubeadm links to


def _identity(path: str | Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file ``path`` finally names (symlinks followed)."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def wrapper_identities() -> set[tuple[int, int]]:
    """The files that are podsec's own kubeadm wrapper, by identity: the entry point beside
    this interpreter and on PATH, the running program, and U7S_BIN/kubeadm. A path string
    would miss the wrapper installed under another root (``--root``), through a symlinked
    directory or a bind mount — and the wrapper would then run itself forever."""
    import sys

    candidates: list[str | Path] = [
        Path(sys.executable).parent / WRAPPER_ENTRY,
        f"{U7S_BIN}/kubeadm",
    ]
    entry = run.which(WRAPPER_ENTRY)
    if entry:
        candidates.append(entry)
    if sys.argv and sys.argv[0] and Path(sys.argv[0]).name in (WRAPPER_ENTRY, "kubeadm"):
        candidates.append(sys.argv[0])
    return {i for i in map(_identity, candidates) if i is not None}


def _is_wrapper(path: str, wrappers: set[tuple[int, int]]) -> bool:
    if _identity(path) in wrappers:
        return True
    try:  # a copied entry-point script (not a link) still names podsec's wrapper module
        with Path(path).open("rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.startswith(b"#!") and b"podsec.cli" in head and b"kubeadm" in head


def real_kubeadm(path: str | None = None, *, explicit: str | None = None) -> str:
    """The upstream kubeadm: ``explicit`` (``Settings.kubeadm``: ``$PODSEC_KUBEADM``), else the
    first ``kubeadm`` on ``path`` (default PATH) that is
    not podsec's own wrapper (on a u7s node the wrapper directory :data:`U7S_BIN` comes first
    on PATH). The wrapper is recognised by file identity (device and inode), wherever it is
    installed; when only the wrapper is found this is an error, never a call to itself."""
    wrappers = wrapper_identities()
    if explicit:
        if _is_wrapper(explicit, wrappers):
            raise NotFoundError(
                _("{var}={path} is podsec's own kubeadm wrapper, not the real kubeadm").format(
                    var=KUBEADM_ENV, path=explicit
                ),
                hint=_("point {var} at the upstream kubeadm binary").format(var=KUBEADM_ENV),
            )
        return explicit
    search = path if path is not None else os.environ.get("PATH", "")
    skipped: list[str] = []
    for d in search.split(os.pathsep):
        if not d:
            continue
        found = run.which("kubeadm", path=d)
        if found is None:
            continue
        if _is_wrapper(found, wrappers):
            skipped.append(found)
            continue
        return found
    if skipped:
        raise NotFoundError(
            _(
                "the real kubeadm is not installed: only podsec's own wrapper was found ({path})"
            ).format(path=", ".join(dict.fromkeys(skipped))),
            hint=_("install kubernetes-kubeadm (or set {var})").format(var=KUBEADM_ENV),
        )
    raise NotFoundError(
        _("the real kubeadm is not installed"),
        hint=_("install kubernetes-kubeadm (or set {var})").format(var=KUBEADM_ENV),
    )


def kubeadm_version(kubeadm: str) -> str:
    """``kubeadm version -o short``: "v1.20.2" (a pre-release or build suffix kept)."""
    try:
        out = run.run([kubeadm, "version", "-o", "short"], timeout=60).stdout.strip()
    except CommandError as exc:
        raise PodsecError(_("kubeadm version failed: {err}").format(err=exc.message)) from exc
    if not re.fullmatch(r"v\d+\.\d+\.\d+\S*", out):
        raise PodsecError(_("kubeadm printed an unexpected version {out!r}").format(out=out[:80]))
    return out


def release_of(version: str) -> str:
    """ "v1.30.0-rc.1+abc" → "v1.30.0"."""
    return version.split("-", 1)[0].split("+", 1)[0]


@dataclass(frozen=True)
class ImageSet:
    registry: str  # where the images are fetched from (with the platform path)
    images: tuple[str, ...]  # full references
    kube_version: str

    def as_dict(self) -> dict[str, object]:
        """``save-k8s --dry-run --json``."""
        return {"kubernetes": self.kube_version, "images": self.images}


def kubeadm_images(kubeadm: str, version: str, repo: str) -> list[str]:
    try:
        out = run.run(
            [
                kubeadm,
                "config",
                "images",
                "list",
                "--kubernetes-version",
                version,
                "--image-repository",
                repo,
            ],
            timeout=60,
        ).stdout
    except CommandError as exc:
        raise PodsecError(
            _("kubeadm cannot list the images of {version}: {err}").format(
                version=version, err=exc.message
            )
        ) from exc
    images = [line.strip() for line in out.splitlines() if line.strip() and "/" in line]
    if not images:
        raise PodsecError(
            _("Kubernetes version {version} is not supported by this kubeadm").format(
                version=version
            )
        )
    return images


def flannel_images(
    flannel_repository: str, flannel_tag: str | None, cni_tag: str | None, host: Host
) -> list[str]:
    """flannel and flannel-cni-plugin references (reference §4.1 step 5-6) in
    ``flannel_repository`` (:attr:`ImageSource.flannel_repository`: next to the Kubernetes
    images, ``docker.io/flannel`` for upstream ones)."""
    if not flannel_tag:
        raise UsageError(
            _("the flannel tag is not known"),
            hint=_("set U7S_FLANNEL_TAG or --flannel-tag (or --no-flannel)"),
        )
    cni = cni_tag or cni_tag_from_manifest(host, flannel_tag)
    if not cni:
        raise UsageError(
            _("the flannel-cni-plugin tag for flannel {tag} is not known").format(tag=flannel_tag),
            hint=_("set U7S_FLANNELCNIPLUGIN_TAG or --flannel-cni-plugin-tag"),
        )
    base = flannel_repository
    return [f"{base}/flannel:{flannel_tag}", f"{base}/flannel-cni-plugin:{cni}"]


def cni_tag_from_manifest(host: Host, flannel_tag: str) -> str | None:
    """The init container's tag in the shipped kube-flannel.yml of that flannel version."""
    match = _SEMVER.match(flannel_tag)
    if not match:
        return None
    path: Path = host.path(
        "/etc/podsec/u7s/manifests/kube-flannel/{}/{}/{}/kube-flannel.yml".format(*match.groups())
    )
    try:
        text = path.read_text()
    except OSError:  # no manifest installed: the tag podsec's shipped data knows
        return versions.flannel_cni_tag(flannel_tag)
    found = re.search(r"image:\s*\S*flannel-cni-plugin:(\S+)", text)
    return found.group(1) if found else versions.flannel_cni_tag(flannel_tag)


def image_set(
    settings: Settings,
    host: Host,
    platform_name: str,
    *,
    kube_version: str | None = None,
    flannel: bool = True,
    flannel_tag: str | None = None,
    cni_tag: str | None = None,
    extra: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    default_registry: str = platform.ALT_REGISTRY,
) -> ImageSet:
    """save-k8s' image set for ``platform_name``; with U7S_REGISTRY unset the images come
    from ``default_registry`` (the original's archive builder forced registry.altlinux.org)."""
    kubeadm = real_kubeadm(explicit=settings.kubeadm)
    version = kube_version or settings.kube_version or release_of(kubeadm_version(kubeadm))
    source = platform.choose(
        settings, host, platform=platform_name, default_registry=default_registry
    )
    repo = source.repository
    images = kubeadm_images(kubeadm, version, repo)
    if flannel:
        images += flannel_images(
            source.flannel_repository,
            flannel_tag or settings.flannel_tag,
            cni_tag or settings.flannel_cni_plugin_tag,
            host,
        )
    for image in extra:
        naming.parse_reference(image)
        images.append(image)
    dropped = set(exclude)
    unknown = dropped - {_short(i) for i in images}
    if unknown:
        raise UsageError(
            _("--exclude {names}: not in the image set").format(names=", ".join(sorted(unknown)))
        )
    kept = [i for i in images if _short(i) not in dropped]
    return ImageSet(repo, tuple(dict.fromkeys(kept)), version)


TagLister = Callable[[str], "list[str] | None"]


def resolve_tags(
    images: tuple[str, ...],
    *,
    set_available: bool,
    tls_verify: bool | None = None,
    list_tags: TagLister | None = None,
) -> list[naming.Source]:
    """docker:// sources for the images; a missing tag is an error naming what exists, or
    (U7S_SETAVAILABLEIMAGES) the newest tag of the same minor for kube-* images (the newest
    tag for the others; a release before any release candidate) is fetched and stored under
    the expected name (reference §4.1). ``list_tags`` defaults to :func:`client.tags`."""

    def registry_tags(repo: str) -> list[str] | None:
        return client.tags(repo, timeout=120, tls_verify=tls_verify is not False)

    lister = list_tags or registry_tags
    sources: list[naming.Source] = []
    for image in images:
        ref = naming.parse_reference(image)
        try:
            tags = lister(ref.name) or []
        except client.RegistryError as exc:
            raise PodsecError(
                _("cannot list the tags of {repo}: {err}").format(repo=ref.name, err=exc.message)
            ) from exc
        if ref.tag is None or ref.tag in tags:
            sources.append(naming.Source("docker://", image))
            continue
        short = ref.repo.rsplit("/", 1)[-1]
        minor = None
        if short.startswith("kube-") and versions.version_key(ref.tag) is not None:
            minor = versions.minor_of(ref.tag)
        pick = versions.newest(tags, minor)
        if not set_available or pick is None:
            raise NotFoundError(
                _("{image} does not exist; available tags: {tags}").format(
                    image=image, tags=", ".join(versions.sort_versions(tags)[-8:]) or "-"
                ),
                hint=_(
                    "choose an existing version (export U7S_KUBEVERSION=...) or set "
                    "U7S_SETAVAILABLEIMAGES=yes to use the newest tag of the same minor"
                ),
            )
        sources.append(naming.Source("docker://", f"{ref.name}:{pick}", save_as=image))
    return sources


def _short(image: str) -> str:
    """``registry.local/p10/kube-apiserver:v1.20.2`` → ``kube-apiserver``."""
    return naming.parse_reference(image).repo.rsplit("/", 1)[-1]


def sources(
    images: ImageSet,
    transport: str,
    *,
    set_available: bool,
    tls_verify: bool | None = None,
) -> tuple[naming.Source, ...]:
    """Where save-k8s reads ``images``: from a registry (docker://) each tag is checked
    (:func:`resolve_tags`); any other transport is taken as it names them."""
    if transport == "docker://":
        return tuple(
            resolve_tags(images.images, set_available=set_available, tls_verify=tls_verify)
        )
    return tuple(naming.Source(transport, i) for i in images.images)
