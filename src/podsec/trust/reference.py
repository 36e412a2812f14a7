"""Docker image references as containers/image sees them (docker/distribution rules).

``busybox`` → ``docker.io/library/busybox:latest``; a first component with a ``.`` or ``:``
or equal to ``localhost`` is a registry host. Policy and registries.d scopes are matched
against :meth:`DockerRef.identity` and then :meth:`DockerRef.namespaces`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from podsec.errors import UsageError
from podsec.i18n import _

DEFAULT_DOMAIN = "docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(r"^(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class DockerRef:
    domain: str
    path: str  # repository path without the domain
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The repository: ``domain/path``."""
        return f"{self.domain}/{self.path}"

    def identity(self) -> str:
        """The policy identity: the name with its tag or digest (``:latest`` when neither)."""
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag or 'latest'}"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def namespaces(self) -> list[str]:
        """Parent scopes, most specific first: repo, its namespaces, host, ``*.`` wildcards."""
        out = [self.name]
        parts = self.path.split("/")
        for i in range(len(parts) - 1, 0, -1):
            out.append(f"{self.domain}/{'/'.join(parts[:i])}")
        out.append(self.domain)
        host = self.domain.split(":", 1)[0]
        labels = host.split(".")
        for i in range(1, len(labels)):
            out.append("*." + ".".join(labels[i:]))
        return out


def parse(text: str) -> DockerRef:
    """Parse and normalise a docker reference (with or without ``docker://``)."""
    ref = text.removeprefix("docker://").removeprefix("//")
    bad = UsageError(_("{ref!r}: not a valid image reference").format(ref=text))
    if not ref or ref != ref.strip():
        raise bad
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise bad
    tag = None
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        ref, tag = ref[:colon], ref[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise bad
    first, sep, rest = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
        if not _DOMAIN_RE.match(domain):
            raise bad
    else:
        domain, path = DEFAULT_DOMAIN, ref
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    if not _PATH_RE.match(path):
        raise bad
    return DockerRef(domain, path, tag, digest)


def is_valid_repo_path(path: str) -> bool:
    """A repository path (namespaces/name, no host, tag or digest)."""
    return bool(_PATH_RE.match(path))
