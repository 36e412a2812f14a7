"""haproxy.cfg and keepalived.conf renderings (the real tools check them in integration)."""

from pathlib import Path

import pytest

from podsec.errors import UsageError, ValidationError
from podsec.lb import cluster as cl
from podsec.lb import haproxy, keepalived

EXAMPLE = Path(__file__).resolve().parents[2] / "src/podsec/data/lb/cluster.example.yaml"


@pytest.fixture
def cluster() -> cl.Cluster:
    return cl.parse(EXAMPLE.read_text())


def _section(text: str, header: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(header)
    out = []
    for line in lines[start + 1 :]:
        if not line.startswith(" "):
            break
        out.append(line.strip())
    return out


def test_haproxy_frontend_and_backend_as_the_seed(cluster: cl.Cluster) -> None:
    text = haproxy.render(cluster)
    main = _section(text, "frontend main")
    assert "bind *:8443" in main and "mode tcp" in main and "default_backend apiserver" in main
    api = _section(text, "backend apiserver")
    assert "option httpchk GET /healthz" in api
    assert "http-check expect status 200" in api
    assert "balance roundrobin" in api
    # the seed's ssl-hello-chk would replace the /healthz check: the check speaks TLS itself
    assert "option ssl-hello-chk" not in api
    assert [line for line in api if line.startswith("server ")] == [
        "server master01 192.168.122.80:6443 check check-ssl verify none",
        "server master02 192.168.122.81:6443 check check-ssl verify none",
    ]
    assert "bind *:80" in _section(text, "frontend http")
    assert "server node01 192.168.122.90:31000 check" in _section(text, "backend http")


def test_haproxy_without_ingress_nodes_has_no_http_frontend() -> None:
    c = cl.parse("vip: 10.0.0.9\ncontrol_plane: [{name: a, address: 10.0.0.1}]")
    text = haproxy.render(c)
    assert "frontend http" not in text and "backend http" not in text


def test_haproxy_sandbox_globals_can_be_left_out() -> None:
    c = cl.parse(
        "vip: 10.0.0.9\ncontrol_plane: [{name: a, address: 10.0.0.1}]\n"
        "haproxy: {bind: 127.0.0.5, log: null, chroot: null, user: null, group: null,"
        " stats_socket: null}"
    )
    text = haproxy.render(c)
    glob = _section(text, "global")
    assert glob == ["daemon"]
    assert "bind 127.0.0.5:8443" in _section(text, "frontend main")


def test_keepalived_config_as_the_seed(cluster: cl.Cluster) -> None:
    node = keepalived.check_node("master", 101, "br0")
    text = keepalived.render_config(cluster, node)
    for line in (
        "router_id LVS_K8S",
        'script "/etc/keepalived/check_apiserver.sh"',
        "interval 3",
        "weight -2",
        "fall 10",
        "rise 2",
        "state MASTER",
        "interface br0",
        "virtual_router_id 51",
        "priority 101",
        "auth_type PASS",
        "auth_pass k8s-ha",
        "10.150.0.160",
        "check_apiserver",
        "enable_script_security",
    ):
        assert line in [x.strip() for x in text.splitlines()], line
    assert text.count("{") == text.count("}")


def test_keepalived_needs_auth_pass() -> None:
    c = cl.parse("vip: 10.0.0.9\ncontrol_plane: [{name: a, address: 10.0.0.1}]")
    with pytest.raises(ValidationError, match="auth_pass"):
        keepalived.render_config(c, keepalived.check_node("BACKUP", 100, "eth0"))


@pytest.mark.parametrize(
    ("state", "priority", "iface"),
    [
        ("SLAVE", 100, "eth0"),
        ("BACKUP", 0, "eth0"),
        ("BACKUP", 255, "eth0"),
        ("MASTER", 101, "a b"),
    ],
)
def test_keepalived_node_validation(state: str, priority: int, iface: str) -> None:
    with pytest.raises(UsageError):
        keepalived.check_node(state, priority, iface)


def test_check_script_values(cluster: cl.Cluster) -> None:
    text = keepalived.render_script(cluster)
    assert text.startswith("#!/bin/sh\n")
    assert "APISERVER_DEST_PORT=8443" in text
    assert "APISERVER_VIP=10.150.0.160" in text
    assert "LOCAL_ADDRESS=127.0.0.1" in text
    assert "@" not in text.replace("$@", "")
    # no bashisms a dash would choke on
    for bashism in ("[[", "function ", "==", "$(<", "&>"):
        assert bashism not in text
