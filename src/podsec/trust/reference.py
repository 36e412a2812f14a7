"""Docker image references exactly as containers/image parses them (``docker/reference``).

The grammar, the normalisation (``busybox`` → ``docker.io/library/busybox``,
``index.docker.io`` → ``docker.io``) and the error cases follow containers/image's
``docker/reference`` package (a fork of docker/distribution's); ``tests/conformance`` holds
its test tables. :func:`parse` is ``ParseNormalizedNamed`` (plus an optional ``docker://``);
policy and registries.d scopes are matched against :meth:`DockerRef.identity` and then
:meth:`DockerRef.namespaces` (containers/image's ``PolicyConfigurationIdentity`` and
``PolicyConfigurationNamespaces``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from podsec.errors import UsageError
from podsec.i18n import _
from podsec.names import REGISTRY_HOST

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO = "library"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]*)"
_COMPONENT = rf"{_ALNUM}(?:(?:{_SEPARATOR}{_ALNUM})+)?"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
DOMAIN = rf"{_DOMAIN_COMPONENT}(?:(?:\.{_DOMAIN_COMPONENT})+)?(?::[0-9]+)?"
TAG = r"[\w][\w.-]{0,127}"
DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
NAME = rf"(?:{DOMAIN}/)?{_COMPONENT}(?:(?:/{_COMPONENT})+)?"

# Go's RE2 classes are ASCII-only and its ``$`` never matches before a final newline:
# re.ASCII and fullmatch() give the same answers.
_DOMAIN_RE = re.compile(DOMAIN, re.ASCII)
_TAG_RE = re.compile(TAG, re.ASCII)
_DIGEST_PAT_RE = re.compile(DIGEST, re.ASCII)
_NAME_RE = re.compile(NAME, re.ASCII)
_ANCHORED_NAME_RE = re.compile(rf"(?:({DOMAIN})/)?({_COMPONENT}(?:(?:/{_COMPONENT})+)?)", re.ASCII)
_REFERENCE_RE = re.compile(rf"({NAME})(?::({TAG}))?(?:@({DIGEST}))?", re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
_PATH_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*", re.ASCII)

# go-digest: the algorithms containers/image links in, and their hex lengths
DIGEST_ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}
_GO_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


class ReferenceError(UsageError):
    """Not a valid docker reference (the message is containers/image's reason)."""


def digest_problem(text: str) -> str | None:
    """None for a valid digest, else go-digest's reason (``Digest.Validate``)."""
    i = text.find(":")
    if i <= 0 or i + 1 == len(text):
        return "invalid checksum digest format"
    algorithm, encoded = text[:i], text[i + 1 :]
    if algorithm not in DIGEST_ALGORITHMS:
        if not _GO_DIGEST_RE.fullmatch(text):
            return "invalid checksum digest format"
        return "unsupported digest algorithm"
    if len(encoded) != DIGEST_ALGORITHMS[algorithm]:
        return "invalid checksum digest length"
    if not re.fullmatch(r"[a-f0-9]+", encoded, re.ASCII):
        return "invalid checksum digest format"
    return None


def is_valid_digest(text: str) -> bool:
    return digest_problem(text) is None


@dataclass(frozen=True)
class DockerRef:
    domain: str
    path: str  # repository path without the domain
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The repository: ``domain/path`` (``Named.Name()``)."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def name_only(self) -> bool:
        """Neither a tag nor a digest (``reference.IsNameOnly``)."""
        return self.tag is None and self.digest is None

    def identity(self) -> str:
        """The policy identity: the name with its tag or digest (``:latest`` when neither)."""
        if self.digest and not self.tag:
            return f"{self.name}@{self.digest}"
        if self.digest:
            return f"{self.name}:{self.tag}@{self.digest}"
        return f"{self.name}:{self.tag or DEFAULT_TAG}"

    def __str__(self) -> str:
        if not self.path and self.digest:  # a digest-only reference (ParseAnyReference)
            return self.digest
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def namespaces(self) -> list[str]:
        """Parent scopes, most specific first: repo, its namespaces, host, ``*.`` wildcards
        (``PolicyConfigurationNamespaces`` of the docker transport)."""
        out = []
        name = self.name
        while True:
            out.append(name)
            slash = name.rfind("/")
            if slash == -1:
                break
            name = name[:slash]
        host = name.split(":", 1)[0]
        while "." in host:
            host = host[host.index(".") + 1 :]
            out.append("*." + host)
        return out

    def familiar(self) -> str:
        """The short form docker prints (``busybox:latest``)."""
        path = self.path
        if self.domain == DEFAULT_DOMAIN:
            parts = path.split("/")
            if len(parts) == 2 and parts[0] == OFFICIAL_REPO:
                path = parts[1]
            out = path
        else:
            out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def with_tag_only(self) -> DockerRef:
        """``TagNameOnly``: ``:latest`` added to a name-only reference."""
        return DockerRef(self.domain, self.path, DEFAULT_TAG, None) if self.name_only else self


def _bad(reason: str) -> ReferenceError:
    return ReferenceError(reason)


def parse_plain(text: str) -> DockerRef:
    """``reference.Parse``: no normalisation (the domain may be empty)."""
    m = _REFERENCE_RE.fullmatch(text)
    if m is None:
        if text == "":
            raise _bad("repository name must have at least one component")
        if _REFERENCE_RE.fullmatch(text.lower()):
            raise _bad("repository name must be lowercase")
        raise _bad("invalid reference format")
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise _bad(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    nm = _ANCHORED_NAME_RE.fullmatch(name)
    domain, path = (nm.group(1) or "", nm.group(2)) if nm else ("", name)
    if digest is not None:
        problem = digest_problem(digest)
        if problem is not None:
            raise _bad(problem)
    return DockerRef(domain, path, tag, digest)


def _split_docker_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    if i == -1 or (not any(c in name[:i] for c in ".:") and name[:i] != "localhost"):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = name[:i], name[i + 1 :]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = f"{OFFICIAL_REPO}/{remainder}"
    return domain, remainder


def parse_normalized(text: str) -> DockerRef:
    """``reference.ParseNormalizedNamed``: the reason is containers/image's on failure."""
    if _IDENTIFIER_RE.fullmatch(text):
        raise _bad(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(text)
    tag_sep = remainder.find(":")
    remote = remainder[:tag_sep] if tag_sep > -1 else remainder
    if remote.lower() != remote:
        raise _bad("invalid reference format: repository name must be lowercase")
    ref = parse_plain(f"{domain}/{remainder}")
    if not ref.path:
        raise _bad("invalid reference format")
    return ref


def parse_named(text: str) -> DockerRef:
    """``reference.ParseNamed``: the text must already be in canonical form."""
    ref = parse_normalized(text)
    if str(ref) != text:
        raise _bad("repository name must be canonical")
    return ref


def parse_any(text: str) -> DockerRef:
    """``reference.ParseAnyReference``: a 64-hex image ID or a digest alone is a
    digest-only reference (no name); anything else is parsed normalised."""
    if _IDENTIFIER_RE.fullmatch(text):
        return DockerRef("", "", None, f"sha256:{text}")
    if is_valid_digest(text):
        return DockerRef("", "", None, text)
    return parse_normalized(text)


def parse_docker_ref(text: str) -> DockerRef:
    """``reference.ParseDockerRef``: normalised; a tag is dropped when a digest is there,
    ``:latest`` added when neither is (what a container runtime pulls)."""
    ref = parse_normalized(text)
    if ref.tag is not None and ref.digest is not None:
        return DockerRef(ref.domain, ref.path, None, ref.digest)
    return ref.with_tag_only()


def parse(text: str) -> DockerRef:
    """Parse and normalise a docker reference (with or without ``docker://``)."""
    ref = text.removeprefix("docker://")
    try:
        return parse_normalized(ref)
    except ReferenceError as exc:
        raise ReferenceError(
            _("{ref!r}: not a valid image reference ({reason})").format(
                ref=text, reason=exc.message
            )
        ) from exc


def valid_domain(text: str) -> bool:
    return bool(_DOMAIN_RE.fullmatch(text))


def valid_name(text: str) -> bool:
    """``^NameRegexp$`` (an optional domain, then path components)."""
    return bool(_NAME_RE.fullmatch(text))


def is_valid_repo_path(path: str) -> bool:
    """A repository path (namespaces/name, no host, tag or digest)."""
    return len(path) <= NAME_TOTAL_LENGTH_MAX and bool(_PATH_RE.fullmatch(path))


def plain_http(host: str) -> bool:
    """Whether registry ``host`` (``name[:port]``, ``[v6]:port``) is spoken to over plain
    HTTP: podsec's own ``registry.local``, ``localhost``, and loopback or private address
    literals (a registry on the LAN, as the original used it). Any other name or a public
    address gets HTTPS."""
    name = host
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    if name in (REGISTRY_HOST, "localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_private
