"""The cluster description: strict parsing, round trip, server edits."""

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from podsec.errors import ValidationError
from podsec.lb import cluster as cl

EXAMPLE = Path(__file__).resolve().parents[2] / "src/podsec/data/lb/cluster.example.yaml"

MINIMAL = """
vip: 10.150.0.160
control_plane:
  - {name: master01, address: 192.168.122.80}
"""


def test_example_parses_with_defaults() -> None:
    c = cl.parse(EXAMPLE.read_text(), "example")
    assert c.vip == IPv4Address("10.150.0.160")
    assert c.endpoint == "10.150.0.160:8443"
    assert [s.name for s in c.control_plane] == ["master01", "master02"]
    assert c.control_plane[0].port == 6443
    assert c.ingress_nodes[0] == cl.Server("node01", "192.168.122.90", 31000)
    assert c.vrrp.auth_pass == "k8s-ha"
    assert c.haproxy.chroot == "/var/lib/haproxy"


def test_minimal_defaults() -> None:
    c = cl.parse(MINIMAL)
    assert c.lb_port == 8443 and c.http_port == 80 and c.ingress_nodes == ()
    assert c.vrrp.auth_pass is None and c.vrrp.virtual_router_id == 51


def test_round_trip_through_yaml() -> None:
    c = cl.parse(EXAMPLE.read_text())
    assert cl.parse(cl.to_yaml(c)) == c


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("control_plane: [{name: a, address: 10.0.0.1}]", "missing key vip"),
        ("vip: 10.0.0.300\ncontrol_plane: [{name: a, address: 10.0.0.1}]", "cluster.vip"),
        ("vip: 10.0.0.9\ncontrol_plane: []", "at least one control-plane"),
        (
            "vip: 10.0.0.9\ncontrol_plane: [{name: a, address: 10.0.0.1}]\nbogus: 1",
            "unknown key bogus",
        ),
        (
            "vip: 10.0.0.9\ncontrol_plane: [{name: a, address: 10.0.0.1, port: 0}]",
            "control_plane[0].port",
        ),
        ("vip: 10.0.0.9\ncontrol_plane: [{name: 'a b', address: 10.0.0.1}]", "invalid server name"),
        ("vip: 10.0.0.9\ncontrol_plane: [{name: a, address: 'x;rm'}]", "invalid address"),
        (
            "vip: 10.0.0.9\ncontrol_plane: [{name: a, address: 10.0.0.1}, {name: a, address: 10.0.0.2}]",
            "duplicate server name a",
        ),
        ("vip: 10.0.0.1\ncontrol_plane: [{name: a, address: 10.0.0.1}]", "must differ"),
        (
            "vip: 10.0.0.9\ncontrol_plane: [{name: a, address: 10.0.0.1}]\nvrrp: {auth_pass: '123456789'}",
            "at most 8",
        ),
        (
            "vip: 10.0.0.9\ncontrol_plane: [{name: a, address: 10.0.0.1}]\nvrrp: {virtual_router_id: 256}",
            "virtual_router_id",
        ),
        ("vip: [1\n", "invalid YAML"),
        (
            "vip: 10.0.0.9\ncontrol_plane: [{name: a, address: 10.0.0.1}]\nhaproxy: {chroot: 'rel/path'}",
            "haproxy.chroot",
        ),
    ],
)
def test_invalid_descriptions_name_the_field(text: str, needle: str) -> None:
    with pytest.raises(ValidationError) as exc:
        cl.parse(text, "cluster")
    assert needle in exc.value.message


def test_dns_names_are_addresses() -> None:
    c = cl.parse("vip: 10.0.0.9\ncontrol_plane: [{name: m1, address: master01.example.org}]")
    assert c.control_plane[0].address == "master01.example.org"


def test_with_and_without_server() -> None:
    c = cl.parse(MINIMAL)
    c2 = c.with_server("master02", "192.168.122.81", None, ingress=False)
    assert c2.control_plane[1] == cl.Server("master02", "192.168.122.81", 6443)
    c3 = c2.with_server("node01", "192.168.122.90", None, ingress=True)
    assert c3.ingress_nodes == (cl.Server("node01", "192.168.122.90", 31000),)
    assert c3.without_server("node01").ingress_nodes == ()
    assert c3.without_server("master01").control_plane == (c2.control_plane[1],)
    with pytest.raises(ValidationError, match="no server named"):
        c3.without_server("ghost")
    with pytest.raises(ValidationError, match="last control-plane"):
        c.without_server("master01")
    with pytest.raises(ValidationError, match="duplicate"):
        c.with_server("master01", "10.1.1.1", None, ingress=False)
