"""Names: architectures, image references, transports, platforms and load targets.

The original scripts built these with string concatenation; here each rule is one small,
tested function (reference §3.8, §3.9, §10.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from podsec.errors import UsageError
from podsec.i18n import _
from podsec.names import REGISTRY_HOST

ARCHES: tuple[str, ...] = ("amd64", "arm64", "arm", "ppc64le", "386")
_ARCH_ALIASES = {"x86_64": "amd64", "aarch64": "arm64", "i386": "386", "i686": "386"}

# docker/distribution reference grammar, reduced to what we accept on the command line
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_HOST_RE = re.compile(r"^(?:localhost|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+|[A-Za-z0-9.-]+:\d+)$")


def parse_arches(text: str) -> tuple[str, ...]:
    """``all`` or a comma list; every element validated (the original checked only one)."""
    text = text.strip()
    if text == "all":
        return ARCHES
    result: list[str] = []
    items = text.split(",")
    for raw in items:
        arch = _ARCH_ALIASES.get(raw.strip(), raw.strip())
        if arch == "all":
            continue  # an unknown item is named first; "all" in a list is refused below
        if arch not in ARCHES:
            raise UsageError(
                _("unknown architecture {arch!r}").format(arch=raw),
                hint=_("expected all or a comma list of: {choices}").format(
                    choices=", ".join(ARCHES)
                ),
            )
        if arch not in result:
            result.append(arch)
    if any(raw.strip() == "all" for raw in items):
        raise UsageError(
            _("{text!r}: 'all' cannot be combined with other architectures").format(text=text),
            hint=_("give all, or a comma list of: {choices}").format(choices=", ".join(ARCHES)),
        )
    return tuple(result)


def check_arch(arch: str) -> str:
    """One architecture (load-sign): neither ``all`` nor a comma list is accepted, and the
    hint does not offer them."""
    name = _ARCH_ALIASES.get(arch.strip(), arch.strip())
    if name not in ARCHES:
        raise UsageError(
            _("expected one architecture, got {arch!r}").format(arch=arch),
            hint=_("one of: {choices}").format(choices=", ".join(ARCHES)),
        )
    return name


@dataclass(frozen=True)
class Reference:
    """``[host/]repo[:tag][@digest]``; ``host`` is empty when the name has none."""

    host: str
    repo: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.host}/{self.repo}" if self.host else self.repo

    @property
    def suffix(self) -> str:
        text = f":{self.tag}" if self.tag else ""
        return text + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name + self.suffix

    def without_host(self) -> str:
        return self.repo + self.suffix

    def with_repo(self, host: str, repo: str) -> Reference:
        return Reference(host, repo, self.tag, self.digest)


def parse_reference(text: str) -> Reference:
    """Parse an image reference; the first component is a host when it looks like one."""
    rest = text.strip()
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise UsageError(_("invalid image digest in {ref!r}").format(ref=text))
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not _TAG_RE.match(tag):
            raise UsageError(_("invalid image tag in {ref!r}").format(ref=text))
    host = ""
    first, sep, remainder = rest.partition("/")
    if sep and _HOST_RE.match(first):
        host, rest = first, remainder
    if not rest or not _REPO_RE.match(rest):
        raise UsageError(
            _("invalid image name {ref!r}").format(ref=text),
            hint=_("expected [REGISTRY/]PATH/NAME[:TAG], lower case"),
        )
    return Reference(host, rest, tag, digest)


@dataclass(frozen=True)
class Source:
    """Where ``save`` reads an image: a skopeo transport prefix plus the image name."""

    transport: str  # "docker://", "containers-storage:", "containers-storage:[...]", "oci:PATH"
    image: str
    save_as: str | None = None  # the name to store (U7S_SETAVAILABLEIMAGES re-tagging)

    @property
    def skopeo(self) -> str:
        if self.transport.startswith("oci:"):
            return f"{self.transport}:{self.image}"
        return f"{self.transport}{self.image}"


_STORAGE_RE = re.compile(r"^containers-storage:(\[[^\]]+\])?$")


def is_transport(arg: str) -> bool:
    """True for a bare transport argument (the optional third argument of ``save``)."""
    if arg in ("docker://", "docker:", "containers-storage:"):
        return True
    if _STORAGE_RE.match(arg):
        return True
    return arg.startswith("oci:") and Path(arg[4:]).is_dir()


def normalise_transport(arg: str) -> str:
    if arg in ("docker:", "docker"):
        return "docker://"
    return arg


def parse_sources(args: tuple[str, ...] | list[str]) -> tuple[Source, ...]:
    """``save``'s ``[TRANSPORT] IMAGE...``: the optional leading transport applies to every
    image that names none; each image must be a valid reference."""
    transport = "docker://"
    images = list(args)
    if images and is_transport(images[0]):
        transport = normalise_transport(images.pop(0))
    if not images:
        raise UsageError(_("no images given after the transport"))
    sources = tuple(split_source(i, transport) for i in images)
    for source in sources:
        parse_reference(source.image)
    return sources


def check_transport(arg: str) -> str:
    """The transport given as ``--source``, normalised."""
    if not is_transport(arg):
        raise UsageError(_("--source {source}: not a transport").format(source=arg))
    return normalise_transport(arg)


def split_source(arg: str, default_transport: str) -> Source:
    """An IMAGE argument, which may carry its own transport."""
    for prefix in ("docker://", "containers-storage:"):
        if arg.startswith(prefix) and len(arg) > len(prefix):
            image = arg[len(prefix) :]
            if prefix == "containers-storage:" and image.startswith("["):
                store, _sep, image = image.partition("]")
                return Source(f"{prefix}{store}]", image)
            return Source(prefix, image)
    if arg.startswith("oci:"):
        # like containers/image: the path ends at the first colon
        path, sep, ref = arg[4:].partition(":")
        if sep and ref and Path(path).is_dir():
            return Source(f"oci:{path}", ref)
    return Source(default_transport, arg)


def stored_name(image: str) -> str:
    """The OCI ref name kept in the archive: the image without its registry host (as the
    original stored ``c10f/kube-apiserver:v1.30.x``)."""
    return parse_reference(image).without_host()


def target_for(ref_name: str, archive_platform: str, target: Reference | None) -> Reference:
    """Where ``load-sign`` pushes archive ref ``ref_name`` (reference §3.9 step 6).

    Refs under the archive's platform go below the target path (default
    ``registry.local/<platform>``); any other ref goes to ``registry.local/<ref>``.
    """
    ref = parse_reference(ref_name)
    base = archive_platform + "/"
    if target is None:
        target = Reference(REGISTRY_HOST, archive_platform)
    if ref.repo.startswith(base):
        return ref.with_repo(target.host, f"{target.repo}/{ref.repo[len(base) :]}")
    return ref.with_repo(target.host, ref.repo)


def parse_target(text: str) -> Reference:
    """``REGISTRY/PATH`` of load-sign: a host with a dot and at least one path component."""
    first, sep, rest = text.strip().strip("/").partition("/")
    if not sep or not rest:
        raise UsageError(
            _("{target!r}: missing path after the registry").format(target=text),
            hint=_("expected REGISTRY/PATH, e.g. registry.local/c10f"),
        )
    if "." not in first and ":" not in first and first != "localhost":
        raise UsageError(
            _("{target!r}: the first component must be a registry host name").format(target=text),
            hint=_("expected REGISTRY/PATH, e.g. registry.local/c10f"),
        ).as_original(5)  # podsec-load-sign-oci's exit code
    if not _REPO_RE.match(rest) or len(f"{first}/{rest}") > 255:  # distribution's limit
        raise UsageError(
            _("{target!r}: invalid repository path").format(
                target=text if len(text) <= 80 else text[:77] + "..."
            )
        )
    return Reference(first, rest)


def platform_of(ref_name: str) -> str:
    """The first path component of an archive ref (the original's platform check)."""
    return parse_reference(ref_name).repo.split("/", 1)[0]
