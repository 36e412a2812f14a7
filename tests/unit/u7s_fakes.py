"""A fake host for the u7s planning tests: every fact build_plan asks the probe for."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface

from podsec.registry.client import RegistryUnavailable
from podsec.u7s.network import HostAddress, Route

# what `kubeadm config images list` prints per minor (companion image tags)
COMPANIONS = {
    (1, 20): ("3.2", "3.4.13-0", "1.7.0"),
    (1, 26): ("3.9", "3.5.6-0", "v1.9.3"),
    (1, 31): ("3.10", "3.5.15-0", "v1.11.3"),
}
KUBE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")


def kubeadm_images(version: str, repo: str) -> list[str]:
    major, minor = (int(x) for x in version.lstrip("v").split(".")[:2])
    pause, etcd, coredns = COMPANIONS[(major, minor)]
    out = [f"{repo}/{name}:{version}" for name in KUBE]
    out += [f"{repo}/pause:{pause}", f"{repo}/etcd:{etcd}", f"{repo}/coredns:{coredns}"]
    return out


def registry_with(
    repo: str,
    versions: tuple[str, ...] = ("v1.20.2",),
    flannel: str | None = "v0.25.1",
    cni: str | None = "v1.4.0-flannel1",
    flannel_repo: str | None = None,
) -> dict[str, list[str]]:
    """A registry holding the images of ``versions`` (and flannel) under ``repo``."""
    tags: dict[str, list[str]] = {}
    for v in versions:
        for ref in kubeadm_images(v, repo):
            name, _c, tag = ref.rpartition(":")
            tags.setdefault(name, []).append(tag)
    frepo = flannel_repo or repo
    if flannel:
        tags[f"{frepo}/flannel"] = [flannel, "latest"]
    if cni:
        tags[f"{frepo}/flannel-cni-plugin"] = [cni]
    return tags


@dataclass
class FakeProbe:
    version: str = "v1.20.2"
    registry: dict[str, list[str]] = field(default_factory=dict)
    unreachable: bool = False
    addrs: list[HostAddress] = field(
        default_factory=lambda: [
            HostAddress("lo", IPv4Interface("127.0.0.1/8")),
            HostAddress("eth0", IPv4Interface("192.168.122.57/24")),
        ]
    )
    route: Route | None = field(default_factory=lambda: Route("eth0", IPv4Address("192.168.122.1")))
    programs: set[str] = field(default_factory=set)
    host_name: str = "node1"
    uids: dict[str, int] = field(default_factory=lambda: {"u7s-admin": 990})
    asked: list[str] = field(default_factory=list)

    def kubeadm_version(self) -> str:
        return self.version

    def images_list(self, version: str, repository: str) -> list[str]:
        return kubeadm_images(version, repository)

    def registry_tags(self, repository: str) -> list[str] | None:
        self.asked.append(repository)
        if self.unreachable:
            raise RegistryUnavailable(
                f"http://{repository.split('/', maxsplit=1)[0]}/v2/: connection refused"
            )
        return self.registry.get(repository)

    def addresses(self) -> list[HostAddress]:
        return list(self.addrs)

    def default_route(self) -> Route | None:
        return self.route

    def which(self, program: str) -> str | None:
        return f"/usr/bin/{program}" if program in self.programs else None

    def hostname(self) -> str:
        return self.host_name

    def uid(self, user: str) -> int | None:
        return self.uids.get(user)
