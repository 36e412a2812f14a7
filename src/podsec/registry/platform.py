"""Where Kubernetes images come from: ``U7S_PLATFORM`` and ``U7S_REGISTRY`` (SPEC.md).

The one home of these rules: ``podsec u7s kubeadm init|join`` (the node's images) and
``podsec images save-k8s`` (the archive of them) both ask :func:`choose`, so they agree on the
platform, the registry and the repository.

Platform: ``U7S_PLATFORM`` if set, else ``/etc/os-release`` (under ``--root``; else
``/usr/lib/os-release``): ``ALT_BRANCH_ID`` (``c10f*`` → ``c10f``), else an ALT ``CPE_NAME``
(vendor ``alt``) field 4/5 (``spserver`` → ``c10f``, ``sisyphus`` → ``sisyphus``, otherwise
``p<major>``). Another vendor's CPE names no ALT platform (RHEL 9 is not ``p9``; the
original took any vendor's). A system with neither (Debian, Ubuntu ...) gets
:data:`DEFAULT_PLATFORM` ``p10`` for the node, the prefix the seed documents for
non-certified systems and the one ``scripts/build-images`` pushes to registry.local; the
archive builder asks for a platform instead (:func:`detected_platform` is None).

Registry:

* ``U7S_REGISTRY`` set but empty → ``registry.k8s.io``, no platform (upstream names);
* set to a value → honoured as given (the original overwrote it). A value with a path
  (``registry.local/k8s-c10f1``, as the seed shows) is the whole image repository; a bare host
  gets ``/<platform>`` appended, except the upstream registries (``registry.k8s.io``,
  ``k8s.gcr.io``) whose names carry no platform;
* unset → ``registry.local`` when ``/etc/hosts`` names it, else ``registry.altlinux.org``,
  with the seed's repository path (:func:`seed_path`): ``k8s-c10f1`` on a certified system
  (``CPE_NAME`` with spserver: platform c10f), else ``k8s-p10`` — so
  ``registry.local/k8s-c10f1``, ``registry.local/k8s-p10``, ``registry.altlinux.org/k8s-…``
  exactly as the seed names them (:func:`default_repository`). The archive builder passes
  ``default_registry=ALT_REGISTRY``: the original's ``podsec-k8s-save-oci`` always built
  from registry.altlinux.org when U7S_REGISTRY was unset.

Platform names in both spellings are accepted everywhere (``c10f`` and ``k8s-c10f1``, ``p10``
and ``k8s-p10``): :func:`same_platform` compares them.

Flannel images live next to the Kubernetes images (``<repository>/flannel:<tag>``,
``<repository>/flannel-cni-plugin:<tag>``); with upstream Kubernetes images they come from
``docker.io/flannel`` (fixing the original's ``docker.io/flannel//flannel`` and its tag lookup
on registry.k8s.io).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass

from podsec.config import Settings
from podsec.errors import UsageError
from podsec.host import etc_hosts, files
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.names import REGISTRY_HOST

DEFAULT_PLATFORM = "p10"
ALT_REGISTRY = "registry.altlinux.org"
UPSTREAM_REGISTRY = "registry.k8s.io"
UPSTREAM_REGISTRIES = frozenset({UPSTREAM_REGISTRY, "k8s.gcr.io"})
UPSTREAM_FLANNEL = "docker.io/flannel"


@dataclass(frozen=True)
class ImageSource:
    """The chosen registry and image repository (``U7S_REGISTRY_PLATFORM``)."""

    registry: str  # host[:port]: "registry.local"
    platform: str | None  # "p10"; None for upstream names or an explicit repository path
    repository: str  # "registry.local/p10"
    flannel_repository: str  # "registry.local/p10" or "docker.io/flannel"
    explicit: bool  # U7S_REGISTRY was given (set, even if empty)

    @property
    def path(self) -> str:
        """The repository without the registry host: "p10" (may be "")."""
        return self.repository.partition("/")[2]

    def without_registry(self, ref: str) -> str:
        """An image reference without its registry host (U7S_IMAGES notation)."""
        head, _sep, tail = ref.partition("/")
        return tail if head == self.registry and tail else ref


def os_release(host: Host) -> dict[str, str]:
    """``/etc/os-release`` (or ``/usr/lib/os-release``) as a dict, shell quoting removed."""
    for name in ("/etc/os-release", "/usr/lib/os-release"):
        text = files.read_text(host.path(name))
        if text is None:
            continue
        out: dict[str, str] = {}
        for line in text.splitlines():
            key, eq, value = line.strip().partition("=")
            if not eq or key.startswith("#"):
                continue
            try:
                parts = shlex.split(value)
            except ValueError:
                parts = [value.strip("\"'")]
            out[key] = parts[0] if parts else ""
        return out
    return {}


def platform_from_os_release(info: dict[str, str]) -> str | None:
    """The ALT platform name for an os-release, or None when it names no ALT system."""
    branch = info.get("ALT_BRANCH_ID", "").strip()
    if branch:
        return "c10f" if branch.startswith("c10f") else branch
    cpe = info.get("CPE_NAME", "").strip()
    fields = cpe.split(":")
    if len(fields) >= 5 and fields[2] == "alt":
        product, version = fields[3], fields[4]
        if product == "spserver":
            return "c10f"
        if product == "sisyphus":
            return "sisyphus"
        major = version.split(".")[0]
        if major.isdigit():
            return f"p{major}"
    return None


def detected_platform(settings: Settings, host: Host) -> str | None:
    """``U7S_PLATFORM``, else the ALT platform of os-release; None when neither names one."""
    return settings.platform or platform_from_os_release(os_release(host))


def detect_platform(settings: Settings, host: Host) -> str:
    """:func:`detected_platform`, :data:`DEFAULT_PLATFORM` when it is None."""
    return detected_platform(settings, host) or DEFAULT_PLATFORM


def seed_path(platform: str) -> str:
    """The seed's repository path of a platform: ``c10f`` → ``k8s-c10f1``, ``p10`` →
    ``k8s-p10`` (``k8s-<platform>`` for the others); a ``k8s-…`` name is kept as given."""
    if platform.startswith("k8s-"):
        return platform
    return "k8s-c10f1" if platform == "c10f" else f"k8s-{platform}"


def bare_platform(name: str) -> str:
    """``k8s-c10f1`` / ``k8s-c10f2`` → ``c10f``, ``k8s-p10`` → ``p10``; others unchanged."""
    if name.startswith("k8s-"):
        name = name[4:]
        return "c10f" if name.startswith("c10f") else name
    return name


def same_platform(a: str, b: str) -> bool:
    """Whether two platform names (either spelling) name one platform."""
    return bare_platform(a) == bare_platform(b)


def default_repository(registry: str, platform: str) -> str:
    """The repository of a registry chosen without U7S_REGISTRY: ``<registry>/<seed path>``."""
    return f"{registry}/{seed_path(platform)}"


def choose(
    settings: Settings,
    host: Host,
    *,
    platform: str | None = None,
    default_registry: str | None = None,
) -> ImageSource:
    """Apply the U7S_REGISTRY / U7S_PLATFORM rules above. ``platform`` overrides the
    detected one (save-k8s' PLATFORM argument); ``default_registry`` replaces the
    registry.local-or-altlinux choice when U7S_REGISTRY is unset."""
    value = settings.registry
    if value == "":
        return ImageSource(
            UPSTREAM_REGISTRY, None, UPSTREAM_REGISTRY, UPSTREAM_FLANNEL, explicit=True
        )
    platform = platform or detect_platform(settings, host)
    if value:
        registry, sep, _path = value.partition("/")
        if sep:
            repository, plat = value.rstrip("/"), None
        elif registry in UPSTREAM_REGISTRIES:
            repository, plat = registry, None
        else:  # a bare host: podsec's own form, <host>/<platform> as the platform is named
            repository, plat = f"{registry}/{platform}", platform
        flannel = UPSTREAM_FLANNEL if registry in UPSTREAM_REGISTRIES else repository
        return ImageSource(registry, plat, repository, flannel, explicit=True)
    registry = default_registry or (
        REGISTRY_HOST if etc_hosts.lookup(host, REGISTRY_HOST) else ALT_REGISTRY
    )
    repository = default_repository(registry, platform)
    return ImageSource(registry, platform, repository, repository, explicit=False)


def from_repository(repository: str) -> ImageSource:
    """An image source for an explicit ``--image-repository`` (it wins over U7S_REGISTRY)."""
    registry = repository.rstrip("/").partition("/")[0]
    flannel = UPSTREAM_FLANNEL if registry in UPSTREAM_REGISTRIES else repository.rstrip("/")
    return ImageSource(registry, None, repository.rstrip("/"), flannel, explicit=True)


def for_archive(
    settings: Settings, host: Host, platform: str | None, *, confirm: Callable[[str], bool]
) -> str:
    """The platform an image set is saved for: ``platform``, else this system's
    (:func:`detect_platform`: p10 where none is named, as for the node); one that differs
    from this system's needs ``confirm`` (``k8s-c10f1`` and ``c10f`` are one platform)."""
    detected = detected_platform(settings, host)
    if platform is None:
        # as the node: a system naming no ALT platform (Debian) uses p10
        return detected or DEFAULT_PLATFORM
    if detected and not same_platform(platform, detected):
        question = _("platform {platform} differs from this system's {detected}; continue?").format(
            platform=platform, detected=detected
        )
        if not confirm(question):
            raise UsageError(
                _("platform {platform} differs from this system's {detected}").format(
                    platform=platform, detected=detected
                ),
                hint=_("pass --yes to save it anyway"),
            )
    return platform
