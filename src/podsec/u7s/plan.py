"""The contract between deciding *what* a rootless node should be and *running* it.

``podsec u7s kubeadm init|join`` (flags, platform/registry choice, addresses, kubeadm
configuration for the detected API version) produces one frozen :class:`NodePlan`; the node
runtime (rootlesskit → CRI → kubelet, the supervisors, ``kubeadm`` inside the namespace)
consumes it and nothing else. The plan is persisted as JSON under ``/etc/podsec/u7s/`` so a
restart of the supervisor or ``podsec u7s run`` needs no re-computation.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Literal

Role = Literal["init", "join-worker", "join-control-plane"]
Cri = Literal["crio", "containerd"]
Cni = Literal["flannel", "calico", "bridge"]
Proto = Literal["tcp", "udp"]

PLAN_FILE = "/etc/podsec/u7s/node-plan.json"
ETCD_DATA_DIR = "/var/lib/podsec/u7s/etcd"
# FlexVolume drivers (kubelet --volume-plugin-dir, controller-manager --flex-volume-plugin-dir).
# The upstream default /usr/libexec/kubernetes/kubelet-plugins/volume/exec is a hostPath
# kubeadm gives the controller-manager as DirectoryOrCreate: the namespace's root (u7s-admin
# on the host) cannot create it under the host's /usr, so the static pod never started on a
# node where it did not exist already. A packaged node does not own /usr/libexec at run
# time either; the node's own /var/lib/kubelet (u7s-admin's persistent tree, bound into the
# namespace) is private, writable and survives restarts — the path Typhoon/Flatcar-style
# read-only-/usr distributions use as well.
VOLUME_PLUGIN_DIR = "/var/lib/kubelet/volumeplugins"


@dataclass(frozen=True)
class PortForward:
    """A rootlesskit port forward: host ``host_ip:host_port`` → namespace ``child_port``."""

    host_port: int
    child_port: int
    proto: Proto = "tcp"
    host_ip: str = "0.0.0.0"  # noqa: S104 - peers reach the node's forwarded ports

    def spec(self) -> str:
        """``rootlessctl add-ports`` notation: ``0.0.0.0:6443:6443/tcp``."""
        return f"{self.host_ip}:{self.host_port}:{self.child_port}/{self.proto}"


@dataclass(frozen=True)
class NodePlan:
    role: Role
    kube_version: str  # "v1.20.2"
    kubeadm_api: str  # "kubeadm.k8s.io/v1beta2" | v1beta3 | v1beta4
    node_name: str
    advertise_address: IPv4Address  # the host's own address, also put on lo in the namespace
    bind_port: int
    control_plane_endpoint: str  # "HOST:PORT" (VIP:8443 in HA setups)
    pod_cidr: IPv4Network
    service_cidr: IPv4Network
    cluster_ip: IPv4Address  # first address of the service CIDR (the kubernetes Service)
    cluster_dns: IPv4Address  # tenth address of the service CIDR
    slirp_cidr: IPv4Network  # slirp4netns' virtual network (--cidr), must not overlap anything
    image_repository: str  # "registry.local/p10"
    pause_image: str  # full reference
    images: tuple[str, ...]  # every image the node needs, full references
    cri: Cri
    cni: Cni
    ports: tuple[PortForward, ...]
    kubeadm_config: str  # the multi-document YAML given to the real kubeadm with --config
    kubeadm_args: tuple[
        str, ...
    ] = ()  # flags passed verbatim (-v, --dry-run, --ignore-preflight-errors ...)
    skip_phases: tuple[str, ...] = ()
    uid: int = 0  # u7s-admin's uid on the host
    env: dict[str, str] = field(default_factory=dict)  # U7S_* values for the original env file

    def to_json(self) -> str:
        def conv(value: Any) -> Any:
            if isinstance(value, IPv4Address | IPv4Network):
                return str(value)
            if isinstance(value, dict):
                return {k: conv(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [conv(v) for v in value]
            return value

        return json.dumps(conv(asdict(self)), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> NodePlan:
        raw = json.loads(text)
        raw["advertise_address"] = IPv4Address(raw["advertise_address"])
        for key in ("cluster_ip", "cluster_dns"):
            raw[key] = IPv4Address(raw[key])
        for key in ("pod_cidr", "service_cidr", "slirp_cidr"):
            raw[key] = IPv4Network(raw[key])
        raw["ports"] = tuple(PortForward(**p) for p in raw["ports"])
        for key in ("images", "kubeadm_args", "skip_phases"):
            raw[key] = tuple(raw[key])
        return cls(**raw)
