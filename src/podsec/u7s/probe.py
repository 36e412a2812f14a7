"""Every host fact the node plan depends on, behind one interface so tests can fake it.

:class:`HostProbe` asks the real machine: the real ``kubeadm`` binary
(:func:`podsec.registry.k8s_images.real_kubeadm`, never podsec's own wrapper), ``ip -j addr``, ``/proc/net/route``, the
registry's ``/v2/<repo>/tags/list``, PATH, the hostname and the u7s-admin account.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Protocol

from podsec.errors import NotFoundError
from podsec.host import accounts, files, run
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.registry import client, k8s_images
from podsec.u7s import network

REGISTRY_TIMEOUT = 15.0


class Probe(Protocol):
    def kubeadm_version(self) -> str:
        """The real kubeadm's version, "v1.20.2"."""
        ...

    def images_list(self, version: str, repository: str) -> list[str]:
        """``kubeadm config images list --kubernetes-version V --image-repository R``."""
        ...

    def registry_tags(self, repository: str) -> list[str] | None:
        """Tags of ``host/path/name``; None when the repository does not exist (404);
        :class:`podsec.registry.client.RegistryUnavailable` when the registry cannot be asked."""
        ...

    def addresses(self) -> list[network.HostAddress]: ...

    def default_route(self) -> network.Route | None: ...

    def which(self, program: str) -> str | None: ...

    def hostname(self) -> str: ...

    def uid(self, user: str) -> int | None: ...


class HostProbe:
    """The real machine (``host`` gives /proc and the --root tree)."""

    def __init__(self, host: Host, kubeadm: str | None = None) -> None:
        self.host = host
        self._kubeadm = kubeadm
        self._version: str | None = None

    @property
    def kubeadm(self) -> str:
        if self._kubeadm is None:
            self._kubeadm = k8s_images.real_kubeadm()
        return self._kubeadm

    def kubeadm_version(self) -> str:
        if self._version is None:
            self._version = k8s_images.kubeadm_version(self.kubeadm)
        return self._version

    def images_list(self, version: str, repository: str) -> list[str]:
        return k8s_images.kubeadm_images(self.kubeadm, version, repository)

    def registry_tags(self, repository: str) -> list[str] | None:
        return client.tags(repository, timeout=REGISTRY_TIMEOUT)

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
