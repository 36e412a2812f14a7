"""Addresses and ports of a rootless node, computed with :mod:`ipaddress` only.

* the host's external address: the address of the default route's interface whose network
  holds the gateway (``/proc/net/route`` + ``ip -j addr``), as the original's ``getExtIP``;
* the ``kubernetes`` Service address is the service CIDR's first host, cluster DNS its tenth
  (the original concatenated strings: ``.1`` → ``.10`` → ``.100``, defect 22);
* slirp4netns' virtual network is chosen so that it overlaps no host network, the pod CIDR
  or the service CIDR;
* the pod and service CIDRs are checked against every host network and each other (the
  original never checked the pod CIDR, defect 21);
* HA: the control-plane endpoint must not be the node's own advertise address (seed rule);
* the rootlesskit port forwards per role.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, ip_address

from podsec.errors import UsageError
from podsec.i18n import _
from podsec.u7s.plan import Cni, PortForward, Role

DEFAULT_POD_CIDR = {
    "flannel": IPv4Network("10.244.0.0/16"),
    "bridge": IPv4Network("10.244.0.0/16"),
    "calico": IPv4Network("192.168.0.0/16"),
}
DEFAULT_SERVICE_CIDR = IPv4Network("10.96.0.0/12")
DEFAULT_BIND_PORT = 6443
# slirp4netns' own default first; then private /24s rarely used by LANs
SLIRP_CANDIDATES = (
    IPv4Network("10.0.2.0/24"),
    *(IPv4Network(f"10.0.{n}.0/24") for n in range(3, 10)),
    *(IPv4Network(f"172.31.{n}.0/24") for n in range(250, 256)),
    *(IPv4Network(f"192.168.{n}.0/24") for n in range(250, 256)),
)
ETCD_PORTS = (2379, 2380)
KUBELET_PORT = 10250
KUBE_PROXY_HEALTH_PORT = 10256
FLANNEL_VXLAN_PORT = 8472
CALICO_PORTS = ((5473, "tcp"), (4789, "udp"), (51820, "udp"))


@dataclass(frozen=True)
class HostAddress:
    ifname: str
    interface: IPv4Interface  # address with its prefix


@dataclass(frozen=True)
class Route:
    ifname: str
    gateway: IPv4Address


def parse_proc_route(text: str) -> Route | None:
    """The default route with the lowest metric from ``/proc/net/route``."""
    best: tuple[int, Route] | None = None
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 8:
            continue
        try:
            dest, gateway, flags, metric = int(f[1], 16), int(f[2], 16), int(f[3], 16), int(f[6])
        except ValueError:
            continue
        if dest != 0 or not flags & 0x1 or not flags & 0x2:  # RTF_UP, RTF_GATEWAY
            continue
        # the kernel prints the address in host (little-endian) byte order
        gw = IPv4Address(int.from_bytes(gateway.to_bytes(4, "little"), "big"))
        if best is None or metric < best[0]:
            best = (metric, Route(f[0], gw))
    return best[1] if best else None


def parse_ip_addr_json(text: str) -> list[HostAddress]:
    """IPv4 addresses from ``ip -j addr``."""
    try:
        data = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise UsageError(_("cannot parse `ip -j addr` output: {err}").format(err=exc)) from exc
    out = []
    for link in data:
        for info in link.get("addr_info", []):
            if info.get("family") == "inet" and "local" in info:
                iface = IPv4Interface(f"{info['local']}/{info.get('prefixlen', 32)}")
                out.append(HostAddress(link.get("ifname", "?"), iface))
    return out


def external_address(addresses: Sequence[HostAddress], route: Route | None) -> HostAddress:
    """The address peers reach this node at (the original's getExtIP/getExtDev)."""
    if route is not None:
        for a in addresses:
            if a.ifname == route.ifname and route.gateway in a.interface.network:
                return a
        for a in addresses:
            if a.ifname == route.ifname and not a.interface.ip.is_link_local:
                return a
    candidates = [a for a in addresses if not a.interface.ip.is_loopback]
    if len(candidates) == 1:
        return candidates[0]
    raise UsageError(
        _("cannot tell this host's external address (no default route)"),
        hint=_("pass --apiserver-advertise-address"),
    )


def interface_of(addresses: Sequence[HostAddress], address: IPv4Address) -> str | None:
    for a in addresses:
        if a.interface.ip == address:
            return a.ifname
    return None


def service_addresses(service_cidr: IPv4Network) -> tuple[IPv4Address, IPv4Address]:
    """(kubernetes Service ClusterIP, cluster DNS) = the CIDR's 1st and 10th address."""
    if service_cidr.num_addresses < 16:
        raise UsageError(
            _("service CIDR {cidr} is too small (need at least /28)").format(cidr=service_cidr)
        )
    return service_cidr.network_address + 1, service_cidr.network_address + 10


def check_overlaps(
    pod_cidr: IPv4Network, service_cidr: IPv4Network, addresses: Iterable[HostAddress]
) -> None:
    """Refuse pod/service CIDRs that overlap each other or a host network (not loopback)."""
    for cidr in (pod_cidr, service_cidr):
        if cidr.is_loopback or cidr.is_multicast or cidr.is_link_local or cidr.is_unspecified:
            raise UsageError(
                _("network {cidr} cannot be used for pods or services").format(cidr=cidr)
            )
    if pod_cidr.overlaps(service_cidr):
        raise UsageError(
            _("pod network {pod} overlaps service network {svc}").format(
                pod=pod_cidr, svc=service_cidr
            ),
            hint=_("choose disjoint --pod-network-cidr and --service-cidr"),
        )
    for a in addresses:
        if a.interface.ip.is_loopback:
            continue
        net = a.interface.network
        for what, cidr, flag in (
            (_("pod network"), pod_cidr, "--pod-network-cidr"),
            (_("service network"), service_cidr, "--service-cidr"),
        ):
            if cidr.overlaps(net):
                raise UsageError(
                    _("{what} {cidr} overlaps network {net} of interface {ifname}").format(
                        what=what, cidr=cidr, net=net, ifname=a.ifname
                    ),
                    hint=_("choose another {flag}").format(flag=flag),
                )


def choose_slirp_cidr(avoid: Iterable[IPv4Network]) -> IPv4Network:
    taken = list(avoid)
    for cand in SLIRP_CANDIDATES:
        if not any(cand.overlaps(n) for n in taken):
            return cand
    raise UsageError(_("no free private /24 network left for slirp4netns"))


def check_endpoint_differs(endpoint_host: str, advertise: IPv4Address, *, joining: bool) -> None:
    """The seed's HA rule: the endpoint (load balancer / VIP) is not this node's own API
    address; a joining node must not name itself as the cluster to join."""
    try:
        host_ip = ip_address(endpoint_host)
    except ValueError:
        return  # a DNS name: nothing to compare without resolving it
    if host_ip == advertise:
        if joining:
            raise UsageError(
                _("kubeadm join: the endpoint {endpoint} is this node's own address").format(
                    endpoint=endpoint_host
                ),
                hint=_("give the address of an existing control plane or its load balancer"),
            )
        raise UsageError(
            _(
                "--control-plane-endpoint {endpoint} must differ from --apiserver-advertise-address {adv}"
            ).format(endpoint=endpoint_host, adv=advertise),
            hint=_(
                "give the load balancer (haproxy) its own address, e.g. an extra IP on this interface"
            ),
        )


def port_forwards(role: Role, cni: Cni, bind_port: int) -> tuple[PortForward, ...]:
    """rootlesskit forwards host → namespace. The kubelet's read-only port 10255 is off in
    kubeadm clusters, so unlike the original it is not forwarded."""
    ports: list[PortForward] = []
    if role != "join-worker":
        ports.append(PortForward(bind_port, bind_port))
        ports.extend(PortForward(p, p) for p in ETCD_PORTS)
    ports.append(PortForward(KUBELET_PORT, KUBELET_PORT))
    ports.append(PortForward(KUBE_PROXY_HEALTH_PORT, KUBE_PROXY_HEALTH_PORT))
    if cni == "flannel":
        ports.append(PortForward(FLANNEL_VXLAN_PORT, FLANNEL_VXLAN_PORT, "udp"))
    elif cni == "calico":
        ports.extend(PortForward(p, p, proto) for p, proto in CALICO_PORTS)  # type: ignore[arg-type]
    return tuple(ports)
