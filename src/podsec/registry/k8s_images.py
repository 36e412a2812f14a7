"""The Kubernetes image set of ``save-k8s`` (reference §4.1 getKuberImages, §4.3, §10.3).

``kubeadm config images list --kubernetes-version V --image-repository <registry>/<platform>``
(the real kubeadm binary), plus flannel and flannel-cni-plugin named as the original did,
plus any extra images.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from podsec.config import Settings
from podsec.errors import CommandError, NotFoundError, PodsecError, UsageError
from podsec.host import run
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.registry import naming

ALT_REGISTRY = "registry.altlinux.org"
UPSTREAM_REGISTRY = "registry.k8s.io"
LOCAL_REGISTRY = "registry.local"
_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


@dataclass(frozen=True)
class ImageSet:
    registry: str  # where the images are fetched from (with the platform path)
    images: tuple[str, ...]  # full references
    kube_version: str


def registry_for(settings: Settings) -> str:
    """U7S_REGISTRY: unset → registry.altlinux.org (the original's archive builder forced
    it); set but empty → upstream registry.k8s.io; anything else as given."""
    if settings.registry is None:
        return ALT_REGISTRY
    return settings.registry or UPSTREAM_REGISTRY


def repository(registry: str, platform: str) -> str:
    """``<registry>/<platform>``; upstream has no platform path."""
    return registry if registry == UPSTREAM_REGISTRY else f"{registry}/{platform}"


def kubeadm_binary() -> str:
    path = run.which("kubeadm")
    if path is None:
        raise NotFoundError(
            _("program kubeadm not found"),
            hint=_("install the kubernetes kubeadm package of the wanted version"),
        )
    return path


def kubeadm_version(kubeadm: str) -> str:
    try:
        out = run.run([kubeadm, "version", "-o", "short"], timeout=60).stdout.strip()
    except CommandError as exc:
        raise PodsecError(_("kubeadm version failed: {err}").format(err=exc.message)) from exc
    if not re.match(r"^v\d+\.\d+\.\d+", out):
        raise PodsecError(_("kubeadm printed an unexpected version {out!r}").format(out=out))
    return out.split("-", 1)[0].split("+", 1)[0]


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
    registry: str, platform: str, flannel_tag: str | None, cni_tag: str | None, host: Host
) -> list[str]:
    """flannel and flannel-cni-plugin references (reference §4.1 step 5-6)."""
    if registry in (ALT_REGISTRY, LOCAL_REGISTRY):
        base = f"{registry}/{platform}"
    else:
        base = "docker.io/flannel"
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
    except OSError:
        return None
    found = re.search(r"image:\s*\S*flannel-cni-plugin:(\S+)", text)
    return found.group(1) if found else None


def image_set(
    settings: Settings,
    host: Host,
    platform: str,
    *,
    kube_version: str | None = None,
    flannel: bool = True,
    flannel_tag: str | None = None,
    cni_tag: str | None = None,
    extra: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
) -> ImageSet:
    if platform.startswith("k8s-"):
        raise UsageError(
            _("the platform name {platform} is no longer supported").format(platform=platform),
            hint=_("use the current name, e.g. c10f, p10, p11"),
        )
    kubeadm = kubeadm_binary()
    version = kube_version or settings.kube_version or kubeadm_version(kubeadm)
    registry = registry_for(settings)
    repo = repository(registry, platform)
    images = kubeadm_images(kubeadm, version, repo)
    if flannel:
        images += flannel_images(
            registry,
            platform,
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


def _version_key(tag: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", tag))


def available_tags(image: str, tls_verify: bool | None) -> list[str]:
    """Tags of the image's repository in its registry (``skopeo list-tags``)."""
    ref = naming.parse_reference(image)
    argv = ["skopeo", "list-tags"]
    if tls_verify is not None:
        argv.append(f"--tls-verify={'true' if tls_verify else 'false'}")
    argv.append(f"docker://{ref.name}")
    try:
        out = run.run(argv, timeout=120).stdout
    except CommandError as exc:
        raise PodsecError(
            _("cannot list the tags of {repo}: {err}").format(repo=ref.name, err=exc.message)
        ) from exc
    tags = json.loads(out).get("Tags") or []
    return [str(t) for t in tags]


def resolve_tags(
    images: tuple[str, ...], *, set_available: bool, tls_verify: bool | None = None
) -> list[naming.Source]:
    """docker:// sources for the images; a missing tag is an error naming what exists, or
    (U7S_SETAVAILABLEIMAGES) the newest tag of the same minor for kube-* images (any newest
    tag for the others) is fetched and stored under the expected name (reference §4.1)."""
    sources: list[naming.Source] = []
    for image in images:
        ref = naming.parse_reference(image)
        tags = available_tags(image, tls_verify)
        if ref.tag is None or ref.tag in tags:
            sources.append(naming.Source("docker://", image))
            continue
        short = ref.repo.rsplit("/", 1)[-1]
        candidates = tags
        if short.startswith("kube-"):
            minor = ".".join(ref.tag.split(".")[:2]) + "."
            candidates = [t for t in tags if t.startswith(minor)]
        candidates = sorted((t for t in candidates if re.search(r"\d", t)), key=_version_key)
        if not set_available or not candidates:
            raise NotFoundError(
                _("{image} does not exist; available tags: {tags}").format(
                    image=image, tags=", ".join(sorted(tags, key=_version_key)[-8:]) or "-"
                ),
                hint=_(
                    "choose an existing version (export U7S_KUBEVERSION=...) or set "
                    "U7S_SETAVAILABLEIMAGES=yes to use the newest tag of the same minor"
                ),
            )
        sources.append(naming.Source("docker://", f"{ref.name}:{candidates[-1]}", save_as=image))
    return sources


def _short(image: str) -> str:
    """``registry.local/p10/kube-apiserver:v1.20.2`` → ``kube-apiserver``."""
    return naming.parse_reference(image).repo.rsplit("/", 1)[-1]
