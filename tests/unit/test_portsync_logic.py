"""Port-sync: specs, the Services → forwards mapping, the state file."""

import json
import threading
from pathlib import Path

import pytest
import yaml
from tests.fixtures.fake_kube import FakeKube, Reply

from podsec.errors import UsageError
from podsec.kube.client import Client
from podsec.readers import FileFormatError
from podsec.u7s import portsync
from podsec.u7s.plan import PortForward
from podsec.u7s.portsync import ServiceInfo, ServicePort
from podsec.u7s.rootlesskit_api import Port


@pytest.mark.parametrize(
    ("text", "fwd"),
    [
        ("31000", PortForward(31000, 31000, "tcp", "0.0.0.0")),
        ("31000/udp", PortForward(31000, 31000, "udp", "0.0.0.0")),
        ("8080:80/tcp", PortForward(8080, 80, "tcp", "0.0.0.0")),
        ("0.0.0.0:31280:31280/tcp", PortForward(31280, 31280, "tcp", "0.0.0.0")),
        ("10.0.0.5:6053:53/udp", PortForward(6053, 53, "udp", "10.0.0.5")),
    ],
)
def test_parse_spec(text: str, fwd: PortForward) -> None:
    assert portsync.parse_spec(text) == fwd
    assert portsync.parse_spec(fwd.spec()) == fwd


@pytest.mark.parametrize("text", ["", "abc", "0", "70000", "1:2:3:4", "80/sctp", "1.2.3.4:"])
def test_parse_spec_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        portsync.parse_spec(text)


def _svc(
    name: str, type_: str, *ports: tuple[int, int | None, str], ns: str = "default"
) -> ServiceInfo:
    return ServiceInfo(ns, name, type_, tuple(ServicePort(p, n, proto) for p, n, proto in ports))


def test_desired_node_ports_and_load_balancers() -> None:
    services = [
        _svc("web", "NodePort", (80, 31080, "TCP"), (53, 31053, "UDP")),
        _svc("internal", "ClusterIP", (80, None, "TCP")),
        _svc("lb", "LoadBalancer", (8080, 31888, "TCP")),
        _svc("sctp", "NodePort", (9, 31999, "SCTP")),
        _svc("lb-no-nodeport", "LoadBalancer", (8081, None, "TCP")),
    ]
    assert portsync.desired(services) == {
        PortForward(31080, 31080, "tcp"): "default/web",
        PortForward(31053, 31053, "udp"): "default/web",
        PortForward(31888, 31888, "tcp"): "default/lb",
        PortForward(8080, 31888, "tcp"): "default/lb",
    }


def test_desired_load_balancer_port_claimed_once() -> None:
    services = [
        _svc("b", "LoadBalancer", (8080, 31002, "TCP")),
        _svc("a", "LoadBalancer", (8080, 31001, "TCP")),
    ]
    want = portsync.desired(services, "10.0.0.5")
    assert want[PortForward(8080, 31001, "tcp", "10.0.0.5")] == "default/a"
    assert PortForward(8080, 31002, "tcp", "10.0.0.5") not in want
    assert len(want) == 3


def test_service_info_from_dict() -> None:
    obj = {
        "metadata": {"namespace": "n", "name": "s"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]},
    }
    assert ServiceInfo.from_api(obj) == _svc("s", "NodePort", (80, 30080, "TCP"), ns="n")


def test_state_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "usernetes" / "podsec-ports.json"
    st = portsync.State.load(path)
    assert st.owners == {}
    st.owners["0.0.0.0:31000:31000/tcp"] = "manual"
    st.save()
    assert json.loads(path.read_text())["forwards"] == {"0.0.0.0:31000:31000/tcp": "manual"}
    assert portsync.State.load(path).forwards() == {PortForward(31000, 31000): "manual"}
    path.write_text("{not json")  # refused, never replaced (issue 15)
    with pytest.raises(FileFormatError, match="invalid JSON"):
        portsync.State.load(path)
    path.write_text('{"forwards": {"garbage": "x", "0.0.0.0:31001:31001/udp": "ns/a"}}')
    assert portsync.State.load(path).forwards() == {PortForward(31001, 31001, "udp"): "ns/a"}


def test_default_state_path_is_beside_rootlesskit_state() -> None:
    sock = Path("/run/user/1001/usernetes/rootlesskit/api.sock")
    assert portsync.default_state_path(sock) == Path("/run/user/1001/usernetes/podsec-ports.json")


def test_unit_runs_the_controller() -> None:
    u = portsync.unit("/usr/bin/podsec", kubeconfig="/var/lib/u7s-admin/.kube/config")
    assert u.name == "podsec-u7s-ports.service"
    assert u.get("Service", "ExecStart") == ["/usr/bin/podsec u7s ports sync"]
    assert u.get("Service", "Restart") == ["always"]
    assert u.get("Service", "Environment") == ["KUBECONFIG=/var/lib/u7s-admin/.kube/config"]
    assert "rootlesskit.service" in u.get("Unit", "After")[0]
    assert portsync.command(["python3", "-m", "podsec.cli"], kubeconfig=Path("/k")) == [
        "python3",
        "-m",
        "podsec.cli",
        "u7s",
        "ports",
        "sync",
        "--kubeconfig",
        "/k",
    ]
    assert portsync.command("podsec", socket=Path("/s")) == [
        "podsec",
        "u7s",
        "ports",
        "sync",
        "--socket",
        "/s",
    ]


KUBELET_CONF = """apiVersion: v1
kind: Config
clusters:
- cluster: {certificate-authority-data: AAAA, server: https://10.0.0.100:8443}
  name: default-cluster
contexts:
- context: {cluster: default-cluster, namespace: default, user: default-auth}
  name: default-context
current-context: default-context
users:
- name: default-auth
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
"""


def test_kubeconfig_source_order(
    host_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from podsec.host.paths import Host

    host = Host(host_root)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("PODSEC_U7S_USER", raising=False)
    with pytest.raises(portsync.PodsecError, match="no kubeconfig"):
        portsync.load_kubeconfig(host)
    explicit = tmp_path / "x.conf"
    explicit.write_text(KUBELET_CONF)
    assert portsync.load_kubeconfig(host, explicit).sources == (str(explicit),)

    # a worker: the node's identity from kubelet.conf, namespace paths mapped to the host
    with (host_root / "etc/passwd").open("a") as f:
        f.write("u7s-admin:x:990:990::/var/lib/u7s-admin:/bin/sh\n")
    kube = host_root / "etc/kubernetes"
    kube.mkdir()
    (kube / "kubelet.conf").write_text(KUBELET_CONF)
    pki = host_root / "var/lib/u7s-admin/.local/share/usernetes/_var_lib_kubelet/pki"
    pki.mkdir(parents=True)
    (pki / "kubelet-client-2026-11-29.pem").write_text("cert")
    (pki / "kubelet-client-current.pem").symlink_to(
        "/var/lib/kubelet/pki/kubelet-client-2026-11-29.pem"
    )
    data = portsync.load_kubeconfig(host).config
    assert isinstance(data, dict)
    user = data["users"][0]["user"]
    assert (
        user["client-certificate"]
        == user["client-key"]
        == str(pki / "kubelet-client-2026-11-29.pem")
    )
    assert data["clusters"][0]["cluster"]["server"] == "https://10.0.0.100:8443"

    # a control plane's admin.conf wins over the node identity; $KUBECONFIG over both
    (kube / "admin.conf").write_text(KUBELET_CONF)
    assert portsync.load_kubeconfig(host).sources == (str(kube / "admin.conf"),)
    mine = tmp_path / "mine.conf"
    mine.write_text(KUBELET_CONF)
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'absent'}:{mine}")
    assert portsync.load_kubeconfig(host).sources == (str(mine),)


def _kubeconfig(path: Path, *, server: str, context: str, current: bool) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
    }
    if current:
        doc["current-context"] = context
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("home_config", [False, True])
def test_rbac_and_ports_sync_reach_the_same_cluster(
    host_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home_config: bool
) -> None:
    """The same environment, the same cluster. Ports sync took the *first* existing file of
    $KUBECONFIG (+ ~/.kube/config + admin.conf) while rbac merged every $KUBECONFIG entry like
    kubectl: with a first file that sets no current-context ports sync failed, and with no
    listed file present it went to ~/.kube/config where kubectl (and rbac) do not."""
    from podsec.host.paths import Host
    from podsec.kube import kubeconfig

    host = Host(host_root)
    kube = host_root / "etc/kubernetes"
    kube.mkdir()
    _kubeconfig(kube / "admin.conf", server="https://admin:6443", context="a", current=True)
    home = tmp_path / "home"
    if home_config:
        (home / ".kube").mkdir(parents=True)
        _kubeconfig(home / ".kube/config", server="https://home:6443", context="h", current=True)
        monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'absent'}")
    else:
        first = _kubeconfig(tmp_path / "1", server="https://one:6443", context="x", current=False)
        second = _kubeconfig(tmp_path / "2", server="https://two:6443", context="x", current=True)
        monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    monkeypatch.setenv("HOME", str(home))
    rbac = kubeconfig.admin_connection(None, host)
    ports = portsync.connection(portsync.Options(socket=Path("/s"), state=Path("/st"), host=host))
    assert (ports.server, ports.context_name) == (rbac.server, rbac.context_name)
    # kubectl's answer: the merged files (context x of the first file), or — none of the
    # listed files existing — no ~/.kube/config: podsec's admin.conf fallback
    assert rbac.server == ("https://admin:6443" if home_config else "https://one:6443")


class _FakeRootlesskit:
    """RootlessKit's port API as a dict (what portsync reconciles against)."""

    def __init__(self) -> None:
        self.ports: dict[int, PortForward] = {}

    def list_ports(self) -> list[Port]:
        return [Port(i, f) for i, f in sorted(self.ports.items())]

    def add_port(self, forward: PortForward) -> Port:
        port_id = max(self.ports, default=0) + 1
        self.ports[port_id] = forward
        return Port(port_id, forward)

    def remove_port(self, port_id: int) -> None:
        del self.ports[port_id]


def _service(name: str, uid: str, type_: str, port: int, node_port: int) -> dict[str, object]:
    return {
        "metadata": {"namespace": "default", "name": name, "uid": uid},
        "spec": {"type": type_, "ports": [{"port": port, "nodePort": node_port}]},
    }


def test_controller_lists_then_follows_the_watch(fake_kube: FakeKube, tmp_path: Path) -> None:
    """One list + watch cycle against a fake API server: the list's Services are forwarded,
    the watch's ADDED/DELETED change the forwards, bookmarks change nothing."""
    web = _service("web", "u1", "NodePort", 80, 31000)
    lb = _service("lb", "u2", "LoadBalancer", 8080, 31001)
    fake_kube.on(
        "GET",
        "/api/v1/services",
        lambda req: (
            Reply(body={"items": [web], "metadata": {"resourceVersion": "5"}})
            if "watch" not in req.query
            else Reply(
                body=[
                    {"type": "ADDED", "object": lb},
                    {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}},
                    {"type": "DELETED", "object": web},
                ],
                watch=True,
            )
        ),
    )
    rootlesskit = _FakeRootlesskit()
    opts = portsync.Options(socket=tmp_path / "api.sock", state=tmp_path / "state.json")
    passes: list[list[portsync.Change]] = []
    with Client(fake_kube.connection()) as kube:
        portsync._cycle(kube, opts, rootlesskit, threading.Event(), passes.append)  # type: ignore[arg-type]
    assert [[(c.action, c.forward.spec()) for c in p] for p in passes] == [
        [("add", "0.0.0.0:31000:31000/tcp")],
        [("add", "0.0.0.0:31001:31001/tcp"), ("add", "0.0.0.0:8080:31001/tcp")],
        [("remove", "0.0.0.0:31000:31000/tcp")],
    ]
    assert sorted(f.spec() for f in rootlesskit.ports.values()) == [
        "0.0.0.0:31001:31001/tcp",
        "0.0.0.0:8080:31001/tcp",
    ]
    watch = fake_kube.requests[1]
    assert watch.query["resourceVersion"] == "5" and watch.query["allowWatchBookmarks"] == "true"
