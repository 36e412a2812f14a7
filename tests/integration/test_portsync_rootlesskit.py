"""Port forwarding out of a real RootlessKit namespace: the API client, `ports add|remove|list`,
reconciliation, and the port-sync controller following Services of a real control plane."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fixtures.kube import ControlPlane
from tests.integration import lb_env
from tests.integration.lb_env import Rootlesskit, free_node_port, read_marker, wait_until

from podsec.u7s import portsync
from podsec.u7s.plan import PortForward
from podsec.u7s.rootlesskit_api import PortApiError, RootlesskitApi

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rootlesskit]:
    with lb_env.rootlesskit(tmp_path_factory.mktemp("rootlesskit")) as kit:
        yield kit


@pytest.fixture
def api(rk: Rootlesskit) -> Iterator[RootlesskitApi]:
    client = RootlesskitApi(rk.socket)
    yield client
    for port in client.list_ports():  # every test starts from an empty forward table
        client.remove_port(port.id)


def test_api_client_add_list_remove(rk: Rootlesskit, api: RootlesskitApi, tmp_path: Path) -> None:
    info = api.info()
    assert info["portDriver"]["driver"] == "builtin"
    port = free_node_port()
    rk.listen(port, "inside", tmp_path)
    assert read_marker("127.0.0.1", port) is None  # still only inside the namespace

    added = api.add_port(PortForward(port, port))
    assert [p.forward for p in api.list_ports()] == [PortForward(port, port, "tcp", "0.0.0.0")]
    assert read_marker("127.0.0.1", port) == b"inside"

    with pytest.raises(PortApiError, match="conflict"):
        api.add_port(PortForward(port, port))
    api.remove_port(added.id)
    assert api.list_ports() == []
    assert read_marker("127.0.0.1", port) is None
    with pytest.raises(PortApiError, match="unknown id"):
        api.remove_port(added.id)


def test_unreachable_socket_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PortApiError, match="cannot reach RootlessKit's API"):
        RootlesskitApi(tmp_path / "nothing.sock").list_ports()


def test_ports_cli_add_list_remove(rk: Rootlesskit, api: RootlesskitApi, tmp_path: Path) -> None:
    port = free_node_port()
    rk.listen(port, "cli", tmp_path)
    state = tmp_path / "podsec-ports.json"
    common = ["--socket", str(rk.socket), "--state", str(state)]
    r = lb_env.ports_cli("add", f"0.0.0.0:{port}:{port}/tcp", *common)
    assert r.returncode == 0, r.stderr
    assert read_marker("127.0.0.1", port) == b"cli"

    r = lb_env.ports_cli("list", "--json", *common)
    assert r.returncode == 0, r.stderr
    entries = json.loads(r.stdout)
    assert [(e["hostPort"], e["childPort"], e["owner"]) for e in entries] == [
        (port, port, "manual")
    ]

    r = lb_env.ports_cli("add", "not-a-port", *common)
    assert r.returncode == 2 and "invalid port spec" in r.stderr

    r = lb_env.ports_cli("remove", str(port), *common)
    assert r.returncode == 0, r.stderr
    assert api.list_ports() == [] and read_marker("127.0.0.1", port) is None
    assert json.loads(state.read_text())["forwards"] == {}

    r = lb_env.ports_cli("remove", str(port), *common)
    assert r.returncode == 1 and "no forward" in r.stderr


def test_reconcile_touches_only_what_podsec_owns(api: RootlesskitApi, tmp_path: Path) -> None:
    static = api.add_port(PortForward(free_node_port(), 6443))  # the runtime's own forward
    path = tmp_path / "state.json"
    p1, p2, manual_port = free_node_port(), free_node_port(), free_node_port()
    svc1, svc2 = PortForward(p1, p1), PortForward(p2, p2, "udp")
    manual = portsync.add(api, path, PortForward(manual_port, manual_port))

    def reconcile(want: dict[PortForward, str]) -> list[portsync.Change]:
        with portsync.State.locked(path) as state:
            return portsync.reconcile(api, want, state)

    changes = reconcile({svc1: "ns/a", svc2: "ns/b"})
    assert {(c.action, c.forward) for c in changes} == {("add", svc1), ("add", svc2)}
    assert reconcile({svc1: "ns/a", svc2: "ns/b"}) == []  # idempotent

    # ns/b goes away; the manual forward is lost (a RootlessKit restart): put back, b removed
    api.remove_port(manual.id)
    changes = reconcile({svc1: "ns/a"})
    assert {(c.action, c.forward) for c in changes} == {
        ("remove", svc2),
        ("add", manual.forward),
    }
    forwards = {p.forward for p in api.list_ports()}
    assert forwards == {static.forward, svc1, manual.forward}
    entries = {e.forward: e.owner for e in portsync.list_ports(api, path)}
    assert entries == {static.forward: "", svc1: "ns/a", manual.forward: "manual"}

    # a wanted host port held by someone else is reported, never stolen
    clash = PortForward(static.forward.host_port, static.forward.host_port)
    changes = reconcile({svc1: "ns/a", clash: "ns/c"})
    assert [(c.action, c.forward) for c in changes] == [("failed", clash)]
    assert static.forward in {p.forward for p in api.list_ports()}


@pytest.mark.cluster
def test_controller_follows_services(
    control_plane: ControlPlane, rk: Rootlesskit, api: RootlesskitApi, tmp_path: Path
) -> None:
    node_port, lb_node_port, lb_port = free_node_port(), free_node_port(), free_node_port()
    rk.listen(node_port, "web", tmp_path)
    rk.listen(lb_node_port, "lb", tmp_path)
    ns = f"portsync-{tmp_path.name[-12:].lower().strip('_-')}".replace("_", "-")
    control_plane.kubectl("create", "namespace", ns)
    state = tmp_path / "podsec-ports.json"
    log = tmp_path / "controller.log"

    def service(name: str, type_: str, port: int, node: int) -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "type": type_,
                    "selector": {"app": name},
                    "ports": [{"port": port, "targetPort": 8080, "nodePort": node}],
                },
            }
        )

    def forwards() -> set[PortForward]:
        return {p.forward for p in api.list_ports()}

    proc = lb_env.controller(rk.socket, state, control_plane.kubeconfig, log)
    try:
        control_plane.kubectl("apply", "-f", "-", input=service("web", "NodePort", 80, node_port))
        web = PortForward(node_port, node_port)
        assert wait_until(lambda: web in forwards()), log.read_text()
        # reachable on the host without any manual port command
        assert read_marker("127.0.0.1", node_port) == b"web"
        owners = json.loads(state.read_text())["forwards"]
        assert owners == {web.spec(): f"{ns}/web"}

        # LoadBalancer: the node port and the service port on the host
        control_plane.kubectl(
            "apply", "-f", "-", input=service("lb", "LoadBalancer", lb_port, lb_node_port)
        )
        lb_fwds = {PortForward(lb_node_port, lb_node_port), PortForward(lb_port, lb_node_port)}
        assert wait_until(lambda: lb_fwds <= forwards()), log.read_text()
        assert read_marker("127.0.0.1", lb_port) == b"lb"

        control_plane.kubectl("delete", "service", "web", "-n", ns)
        assert wait_until(lambda: web not in forwards()), log.read_text()
        assert read_marker("127.0.0.1", node_port) is None
        assert wait_until(lambda: "removed" in log.read_text()), log.read_text()
        assert f"forwarded {web.spec()} ({ns}/web)" in log.read_text()
    finally:
        lb_env.stop(proc)

    # while the controller is down: a Service appears and RootlessKit loses a forward
    control_plane.kubectl("apply", "-f", "-", input=service("web", "NodePort", 80, node_port))
    lost = next(p for p in api.list_ports() if p.forward == PortForward(lb_port, lb_node_port))
    api.remove_port(lost.id)
    proc = lb_env.controller(rk.socket, state, control_plane.kubeconfig, log)
    try:
        want = {PortForward(node_port, node_port), *lb_fwds}
        assert wait_until(lambda: want <= forwards()), log.read_text()
        assert read_marker("127.0.0.1", node_port) == b"web"
    finally:
        lb_env.stop(proc)
        control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.mark.cluster
def test_sync_once_json(
    control_plane: ControlPlane, rk: Rootlesskit, api: RootlesskitApi, tmp_path: Path
) -> None:
    node_port = free_node_port()
    ns = f"once-{os.getpid()}"
    control_plane.kubectl("create", "namespace", ns)
    try:
        control_plane.kubectl(
            "create",
            "service",
            "nodeport",
            "once",
            "--tcp=80:8080",
            f"--node-port={node_port}",
            "-n",
            ns,
        )
        r = lb_env.ports_cli(
            "sync",
            "--once",
            "--json",
            "--socket",
            str(rk.socket),
            "--state",
            str(tmp_path / "state.json"),
            "--kubeconfig",
            str(control_plane.kubeconfig),
        )
        assert r.returncode == 0, r.stderr
        assert {
            "action": "add",
            "spec": f"0.0.0.0:{node_port}:{node_port}/tcp",
            "owner": f"{ns}/once",
            "detail": "",
        } in json.loads(r.stdout)
        assert PortForward(node_port, node_port) in {p.forward for p in api.list_ports()}
    finally:
        control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    from tests.fixtures.require import require_tool

    require_tool("systemd-analyze")
    podsec_bin = Path(sys.executable).with_name("podsec")
    unit = portsync.unit(str(podsec_bin), kubeconfig="/var/lib/u7s-admin/.kube/config")
    path = tmp_path / unit.name
    path.write_text(unit.render())
    # system mode: the user manager cannot run here; the unit syntax checks are the same
    done = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert str(path) not in done.stderr and unit.name not in done.stderr, done.stderr


def test_state_written_by_root_stays_the_users(tmp_path: Path) -> None:
    """root's `ports add` must not lock u7s-admin's controller out of its own state file."""
    from tests.fixtures.require import require_root

    require_root()
    runtime = tmp_path / "usernetes"
    runtime.mkdir()
    os.chown(runtime, 65534, 65534)
    path = runtime / "podsec-ports.json"
    with portsync.State.locked(path) as state:
        state.owners["0.0.0.0:31000:31000/tcp"] = portsync.MANUAL
    for f in (path, path.with_name(path.name + ".lock")):
        assert (f.stat().st_uid, f.stat().st_gid) == (65534, 65534), f
