"""Addresses with ipaddress: external IP, service IPs, overlaps, slirp network, HA, ports."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from podsec.errors import UsageError
from podsec.u7s import network
from podsec.u7s.network import HostAddress, Route

# /proc/net/route: default via 192.168.122.1 on eth0 (metric 100) and via 10.1.0.1 on wg0 (600)
PROC_ROUTE = """Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	0000A8C0	00000000	0001	0	0	100	00FFFFFF	0	0	0
wg0	00000000	0100010A	0003	0	0	600	00000000	0	0	0
eth0	00000000	017AA8C0	0003	0	0	100	00000000	0	0	0
"""

IP_ADDR = json.dumps(
    [
        {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
        {
            "ifname": "eth0",
            "addr_info": [
                {"family": "inet", "local": "192.168.122.57", "prefixlen": 24},
                {"family": "inet6", "local": "fe80::1", "prefixlen": 64},
            ],
        },
        {
            "ifname": "docker0",
            "addr_info": [{"family": "inet", "local": "172.17.0.1", "prefixlen": 16}],
        },
    ]
)


def test_proc_route_picks_lowest_metric_default() -> None:
    route = network.parse_proc_route(PROC_ROUTE)
    assert route == Route("eth0", IPv4Address("192.168.122.1"))
    assert network.parse_proc_route("Iface\tDestination\n") is None


def test_ip_j_addr_ipv4_only() -> None:
    addrs = network.parse_ip_addr_json(IP_ADDR)
    assert [(a.ifname, str(a.interface)) for a in addrs] == [
        ("lo", "127.0.0.1/8"),
        ("eth0", "192.168.122.57/24"),
        ("docker0", "172.17.0.1/16"),
    ]


def test_external_address_is_the_gateway_network_address() -> None:
    addrs = network.parse_ip_addr_json(IP_ADDR)
    ext = network.external_address(addrs, network.parse_proc_route(PROC_ROUTE))
    assert ext.ifname == "eth0" and ext.interface.ip == IPv4Address("192.168.122.57")


def test_external_address_without_route() -> None:
    one = [
        HostAddress("lo", IPv4Interface("127.0.0.1/8")),
        HostAddress("eth0", IPv4Interface("10.0.0.5/8")),
    ]
    assert network.external_address(one, None).ifname == "eth0"
    two = [*one, HostAddress("eth1", IPv4Interface("10.9.0.5/24"))]
    with pytest.raises(UsageError, match="external address") as exc:
        network.external_address(two, None)
    assert exc.value.hint and "--apiserver-advertise-address" in exc.value.hint


@pytest.mark.parametrize(
    ("cidr", "ip", "dns"),
    [
        ("10.96.0.0/12", "10.96.0.1", "10.96.0.10"),
        # not x.y.z.0-aligned in the last octet: string concatenation got these wrong
        ("10.100.64.0/18", "10.100.64.1", "10.100.64.10"),
        ("172.20.0.240/28", "172.20.0.241", "172.20.0.250"),
    ],
)
def test_service_addresses(cidr: str, ip: str, dns: str) -> None:
    assert network.service_addresses(IPv4Network(cidr)) == (IPv4Address(ip), IPv4Address(dns))


def test_tiny_service_cidr_refused() -> None:
    with pytest.raises(UsageError, match="too small"):
        network.service_addresses(IPv4Network("10.96.0.0/29"))


def test_overlaps_checked_for_pod_and_service_networks() -> None:
    addrs = network.parse_ip_addr_json(IP_ADDR)
    network.check_overlaps(IPv4Network("10.244.0.0/16"), IPv4Network("10.96.0.0/12"), addrs)
    with pytest.raises(
        UsageError,
        match=r"pod network 192\.168\.0\.0/16 overlaps network 192\.168\.122\.0/24 of interface eth0",
    ):
        network.check_overlaps(IPv4Network("192.168.0.0/16"), IPv4Network("10.96.0.0/12"), addrs)
    with pytest.raises(UsageError, match=r"service network .* docker0"):
        network.check_overlaps(IPv4Network("10.244.0.0/16"), IPv4Network("172.16.0.0/12"), addrs)
    with pytest.raises(UsageError, match="overlaps service network"):
        network.check_overlaps(IPv4Network("10.96.0.0/16"), IPv4Network("10.96.0.0/12"), addrs)
    with pytest.raises(UsageError, match="cannot be used"):
        network.check_overlaps(IPv4Network("127.0.0.0/16"), IPv4Network("10.96.0.0/12"), [])
    with pytest.raises(UsageError, match="cannot be used"):
        network.check_overlaps(IPv4Network("10.244.0.0/16"), IPv4Network("224.0.0.0/12"), [])


def test_slirp_network_avoids_everything() -> None:
    assert network.choose_slirp_cidr([IPv4Network("192.168.122.0/24")]) == IPv4Network(
        "10.0.2.0/24"
    )
    busy = [IPv4Network("10.0.0.0/8")]
    assert network.choose_slirp_cidr(busy) == IPv4Network("172.31.250.0/24")
    with pytest.raises(UsageError):
        network.choose_slirp_cidr([IPv4Network("0.0.0.0/0")])


def test_ha_endpoint_must_differ_from_advertise_address() -> None:
    adv = IPv4Address("192.168.122.80")
    network.check_endpoint_differs("192.168.122.90", adv, joining=False)
    network.check_endpoint_differs("lb.example", adv, joining=False)
    with pytest.raises(UsageError, match="must differ from --apiserver-advertise-address") as exc:
        network.check_endpoint_differs("192.168.122.80", adv, joining=False)
    assert exc.value.hint and "haproxy" in exc.value.hint
    with pytest.raises(UsageError, match="own address"):
        network.check_endpoint_differs("192.168.122.80", adv, joining=True)


def test_ports_per_role() -> None:
    cp = {p.spec() for p in network.port_forwards("init", "flannel", 6443)}
    assert cp == {
        "0.0.0.0:6443:6443/tcp",
        "0.0.0.0:2379:2379/tcp",
        "0.0.0.0:2380:2380/tcp",
        "0.0.0.0:10250:10250/tcp",
        "0.0.0.0:10256:10256/tcp",
        "0.0.0.0:8472:8472/udp",
    }
    worker = {p.spec() for p in network.port_forwards("join-worker", "flannel", 6443)}
    assert worker == {"0.0.0.0:10250:10250/tcp", "0.0.0.0:10256:10256/tcp", "0.0.0.0:8472:8472/udp"}
    custom = {p.spec() for p in network.port_forwards("join-control-plane", "bridge", 7443)}
    assert "0.0.0.0:7443:7443/tcp" in custom and not any("8472" in s for s in custom)
    calico = {p.spec() for p in network.port_forwards("join-worker", "calico", 6443)}
    assert "0.0.0.0:4789:4789/udp" in calico
