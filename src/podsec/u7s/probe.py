"""Every host fact the node plan depends on, behind one interface so tests can fake it.

:class:`HostProbe` asks the real machine: the real ``kubeadm`` binary (never podsec's own
wrapper in ``/usr/libexec/podsec/u7s/bin``), ``ip -j addr``, ``/proc/net/route``, the
registry's ``/v2/<repo>/tags/list``, PATH, the hostname and the u7s-admin account.
"""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Protocol

from podsec.errors import CommandError, NotFoundError
from podsec.host import accounts, files, run
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.u7s import network
from podsec.u7s.plan import U7S_BIN

REGISTRY_TIMEOUT = 15.0
KUBEADM_ENV = "PODSEC_KUBEADM"  # the real kubeadm, when it is not on PATH


class RegistryUnavailable(Exception):
    """The registry could not be asked (network, TLS, HTTP error other than 404)."""


class Probe(Protocol):
    def kubeadm_version(self) -> str:
        """The real kubeadm's version, "v1.20.2"."""
        ...

    def images_list(self, version: str, repository: str) -> list[str]:
        """``kubeadm config images list --kubernetes-version V --image-repository R``."""
        ...

    def registry_tags(self, repository: str) -> list[str] | None:
        """Tags of ``host/path/name``; None when the repository does not exist (404);
        RegistryUnavailable when the registry cannot be asked."""
        ...

    def addresses(self) -> list[network.HostAddress]: ...

    def default_route(self) -> network.Route | None: ...

    def which(self, program: str) -> str | None: ...

    def hostname(self) -> str: ...

    def uid(self, user: str) -> int | None: ...


def real_kubeadm(path: str | None = None) -> str:
    """The upstream kubeadm: ``$PODSEC_KUBEADM``, else the first ``kubeadm`` on PATH outside
    podsec's wrapper directory."""
    explicit = os.environ.get(KUBEADM_ENV)
    if explicit:
        return explicit
    search = path if path is not None else os.environ.get("PATH", "")
    dirs = [d for d in search.split(os.pathsep) if d and Path(d).resolve() != Path(U7S_BIN)]
    found = run.which("kubeadm", path=os.pathsep.join(dirs))
    if found is None:
        raise NotFoundError(
            _("the real kubeadm is not installed"),
            hint=_("install kubernetes-kubeadm (or set {var})").format(var=KUBEADM_ENV),
        )
    return found


def _scheme(host: str) -> str:
    """registry.local and literal/loopback addresses speak plain HTTP (the original did)."""
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    if name in ("registry.local", "localhost"):
        return "http"
    if re.fullmatch(r"[0-9.]+", name):
        return "http"
    return "https"


def _bearer_token(challenge: str, timeout: float) -> str | None:
    """Anonymous token for a ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``."""
    if not challenge.lower().startswith("bearer "):
        return None
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.pop("realm", None)
    if not realm:
        return None
    url = realm + "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - https realm
        data = json.loads(resp.read().decode())
    token = data.get("token") or data.get("access_token")
    return str(token) if token else None


def fetch_tags(repository: str, timeout: float = REGISTRY_TIMEOUT) -> list[str] | None:
    """``GET /v2/<path>/tags/list`` with stdlib urllib (anonymous bearer tokens handled)."""
    host, _sep, path = repository.partition("/")
    if host == "docker.io":
        host = "registry-1.docker.io"
    url = f"{_scheme(host)}://{host}/v2/{path}/tags/list"
    req = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
                body = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code != 401:
                raise
            token = _bearer_token(exc.headers.get("WWW-Authenticate", ""), timeout)
            if token is None:
                raise
            req.add_header("Authorization", f"Bearer {token}")
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
                body = resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise RegistryUnavailable(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RegistryUnavailable(f"{url}: {reason}") from exc
    try:
        tags = json.loads(body.decode()).get("tags") or []
    except (ValueError, AttributeError) as exc:
        raise RegistryUnavailable(f"{url}: not a registry answer") from exc
    return [str(t) for t in tags]


class HostProbe:
    """The real machine (``host`` gives /proc and the --root tree)."""

    def __init__(self, host: Host, kubeadm: str | None = None) -> None:
        self.host = host
        self._kubeadm = kubeadm
        self._version: str | None = None

    @property
    def kubeadm(self) -> str:
        if self._kubeadm is None:
            self._kubeadm = real_kubeadm()
        return self._kubeadm

    def kubeadm_version(self) -> str:
        if self._version is None:
            out = run.run([self.kubeadm, "version", "-o", "short"], timeout=30).stdout.strip()
            if not re.fullmatch(r"v\d+\.\d+\.\d+\S*", out):
                raise CommandError(
                    _("kubeadm version printed {out!r}").format(out=out[:80]),
                    argv=[self.kubeadm, "version"],
                    returncode=0,
                )
            self._version = out
        return self._version

    def images_list(self, version: str, repository: str) -> list[str]:
        argv = [self.kubeadm, "config", "images", "list", "--kubernetes-version", version]
        argv += ["--image-repository", repository]
        out = run.run(argv, timeout=60).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def registry_tags(self, repository: str) -> list[str] | None:
        return fetch_tags(repository)

    def addresses(self) -> list[network.HostAddress]:
        return network.parse_ip_addr_json(run.run(["ip", "-j", "addr"], timeout=15).stdout)

    def default_route(self) -> network.Route | None:
        text = files.read_text(self.host.proc / "net" / "route")
        return network.parse_proc_route(text or "")

    def which(self, program: str) -> str | None:
        return run.which(program)

    def hostname(self) -> str:
        text = files.read_text(self.host.path("/etc/hostname"))
        name = (text or "").strip() if not self.host.is_live else socket.gethostname()
        return (name or socket.gethostname()).split(".")[0].lower()

    def uid(self, user: str) -> int | None:
        entry = accounts.get_user(self.host, user)
        return entry.uid if entry else None


def oci_layout_refs(layout: Path) -> list[str]:
    """The image names an OCI layout holds (``org.opencontainers.image.ref.name``)."""
    try:
        index = json.loads((layout / "index.json").read_text())
    except (OSError, ValueError) as exc:
        raise NotFoundError(_("{path}: not an OCI image layout").format(path=layout)) from exc
    refs = []
    for manifest in index.get("manifests", []):
        name = (manifest.get("annotations") or {}).get("org.opencontainers.image.ref.name")
        if name and "/" in name and ":" in name.rsplit("/", 1)[-1]:
            refs.append(str(name))
    return refs


class LocalImagesProbe:
    """A probe whose "registry" is a fixed set of image names (an OCI layout the node imports
    instead of pulling); every other fact comes from ``base``."""

    def __init__(self, base: Probe, refs: list[str]) -> None:
        self.base = base
        self.tags: dict[str, list[str]] = {}
        for ref in refs:
            repo, _sep, tag = ref.rpartition(":")
            self.tags.setdefault(repo, []).append(tag)

    def kubeadm_version(self) -> str:
        return self.base.kubeadm_version()

    def images_list(self, version: str, repository: str) -> list[str]:
        return self.base.images_list(version, repository)

    def registry_tags(self, repository: str) -> list[str] | None:
        return self.tags.get(repository)

    def addresses(self) -> list[network.HostAddress]:
        return self.base.addresses()

    def default_route(self) -> network.Route | None:
        return self.base.default_route()

    def which(self, program: str) -> str | None:
        return self.base.which(program)

    def hostname(self) -> str:
        return self.base.hostname()

    def uid(self, user: str) -> int | None:
        return self.base.uid(user)
