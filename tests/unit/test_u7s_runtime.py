"""The node runtime's pure parts: rootlesskit argv, the child spec, kubelet/kube-proxy, CNI,
CRI configs, systemd units from the one service description, the admission decision and the
rootlesskit API client (against a stand-in unix-socket server: the real rootlesskit API is
exercised by the e2e)."""

from __future__ import annotations

import http.server
import json
import socketserver
import threading
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from podsec.u7s import (
    admission,
    cni,
    containerd,
    crio,
    kubelet,
    rootlesskit_api,
    runtime,
    supervisor,
)
from podsec.u7s.layout import Layout
from podsec.u7s.plan import NodePlan, PortForward

LAYOUT = Layout("u7s-admin", 990, 990, Path("/var/lib/u7s-admin"))


def make_plan(**kw: object) -> NodePlan:
    base = NodePlan(
        role="init",
        kube_version="v1.20.2",
        kubeadm_api="kubeadm.k8s.io/v1beta2",
        node_name="n1",
        advertise_address=IPv4Address("192.0.2.2"),
        bind_port=6443,
        control_plane_endpoint="192.0.2.2:6443",
        pod_cidr=IPv4Network("10.244.0.0/16"),
        service_cidr=IPv4Network("10.96.0.0/12"),
        cluster_ip=IPv4Address("10.96.0.1"),
        cluster_dns=IPv4Address("10.96.0.10"),
        slirp_cidr=IPv4Network("10.0.2.0/24"),
        image_repository="registry.local/p10",
        pause_image="registry.local/p10/pause:3.2",
        images=("registry.local/p10/pause:3.2",),
        cri="containerd",
        cni="bridge",
        ports=(PortForward(6443, 6443), PortForward(10250, 10250)),
        kubeadm_config="",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_rootlesskit_argv() -> None:
    argv = runtime.rootlesskit_argv(make_plan(slirp_cidr=IPv4Network("10.99.0.0/24")), LAYOUT)
    assert argv[0] == "rootlesskit"
    for flag in (
        "--net=slirp4netns",
        "--port-driver=builtin",
        "--copy-up=/etc",
        "--copy-up=/run",
        "--copy-up=/var/lib",
        "--copy-up=/var/log",
        "--utsns",
        "--ipcns",
        "--propagation=rslave",
        "--cidr=10.99.0.0/24",
        "--state-dir=/run/user/990/usernetes/rootlesskit",
    ):
        assert flag in argv
    assert not any(a.startswith("-copy-up") for a in argv)  # the original's single-dash typo
    assert argv[-4:] == ["child", "--spec", str(LAYOUT.child_spec_file)][-3:] or "child" in argv


def test_child_spec_has_the_120_workarounds() -> None:
    spec = runtime.child_spec(make_plan(), LAYOUT)
    binds = {dst: src for src, dst in spec["binds"]}
    assert binds["/dev/kmsg"] == "/dev/null"
    for rel in ("kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory"):
        assert f"/proc/sys/{rel}" in binds
    assert "/var/lib/cni" in binds and "/var/log" in binds and "/var/lib/kubelet" in binds
    assert "/run/netns" in spec["private_dirs"]
    assert spec["node_ip"] == "192.0.2.2"
    assert spec["cri_argv"][0] == "containerd"
    assert spec["links"] == {"/run/containerd/containerd.sock": str(LAYOUT.cri_socket)}
    crio_spec = runtime.child_spec(make_plan(cri="crio"), LAYOUT)
    assert crio_spec["cri_argv"][0] == "crio"
    assert "/run/crio/crio.sock" in crio_spec["links"]


def test_sysctl_values_are_what_kubelet_wants() -> None:
    assert runtime.SYSCTL_OVERRIDES == {
        "kernel/panic": "10",
        "kernel/panic_on_oops": "1",
        "vm/overcommit_memory": "1",
    }


def test_kubelet_config_patch_120_and_122() -> None:
    text = yaml.safe_dump(
        {"kind": "KubeletConfiguration", "cgroupsPerQOS": True, "staticPodPath": "/x"}
    )
    patched = yaml.safe_load(kubelet.patch_config(text, make_plan()))
    assert patched["enforceNodeAllocatable"] == []
    assert patched["cgroupsPerQOS"] is False
    assert patched["failSwapOn"] is False
    assert patched["staticPodPath"] == "/x"
    assert patched["featureGates"]["LocalStorageCapacityIsolation"] is False
    assert "KubeletInUserNamespace" not in patched["featureGates"]
    assert kubelet.patch_config(
        kubelet.patch_config(text, make_plan()), make_plan()
    ) == kubelet.patch_config(text, make_plan())
    new = yaml.safe_load(kubelet.patch_config(text, make_plan(kube_version="v1.26.3")))
    assert new["featureGates"]["KubeletInUserNamespace"] is True


def test_kubelet_argv_keeps_kubeadm_flags_but_ours_win() -> None:
    env = 'KUBELET_KUBEADM_ARGS="--container-runtime=remote --container-runtime-endpoint=/run/containerd/containerd.sock --node-ip=1.2.3.4 --foo=bar"'
    argv = kubelet.argv(make_plan(), LAYOUT.cri_socket, env)
    assert f"--container-runtime-endpoint=unix://{LAYOUT.cri_socket}" in argv
    assert "--node-ip=192.0.2.2" in argv and "--node-ip=1.2.3.4" not in argv
    assert "--foo=bar" in argv
    assert "--container-runtime=remote" in argv
    assert not any(
        a.startswith("--container-runtime=")
        for a in kubelet.argv(make_plan(kube_version="v1.26.3"), LAYOUT.cri_socket)
    )


def test_kube_proxy_never_writes_conntrack() -> None:
    argv = kubelet.proxy_argv(make_plan())
    for flag in (
        "--conntrack-max-per-core=0",
        "--conntrack-min=0",
        "--conntrack-tcp-timeout-established=0",
        "--conntrack-tcp-timeout-close-wait=0",
    ):
        assert flag in argv


def test_cri_configs() -> None:
    c = containerd.render_config(make_plan(), LAYOUT)
    for line in (
        "disable_cgroup = true",
        "disable_apparmor = true",
        "restrict_oom_score_adj = true",
        'sandbox_image = "registry.local/p10/pause:3.2"',
        'address = "/run/user/990/usernetes/cri.sock"',
    ):
        assert line in c
    r = crio.render_config(make_plan(cri="crio"), LAYOUT)
    assert 'signature_policy = "/etc/containers/policy.json"' in r
    assert 'pause_image = "registry.local/p10/pause:3.2"' in r


def test_bridge_cni() -> None:
    conf = json.loads(cni.bridge_conflist(make_plan()))
    bridge = conf["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["ipMasq"] is True
    assert bridge["ipam"]["ranges"][0][0]["subnet"] == "10.244.0.0/24"
    worker = cni.node_subnet(
        make_plan(role="join-worker", advertise_address=IPv4Address("10.1.2.3"))
    )
    assert worker != IPv4Network("10.244.0.0/24") and worker.subnet_of(IPv4Network("10.244.0.0/16"))
    assert set(cni.net_conf_files(make_plan(cni="flannel"))) == {
        "10-flannel.conflist",
        "99-loopback.conf",
    }


def test_one_description_two_supervisors() -> None:
    units = supervisor.systemd_units(LAYOUT, make_plan())
    names = {Path(p).name for p in units}
    assert {
        "rootlesskit.service",
        "kubelet.service",
        "kube-proxy.service",
        "port-sync.service",
        "u7s.target",
        "u7s.service",
        "delegate.conf",
    } <= names
    dropins = [p for p in units if p.endswith("delegate.conf")]
    assert dropins == ["/etc/systemd/system/user@990.service.d/delegate.conf"]  # u7s-admin only
    for text in units.values():
        assert ">" not in text.replace("->", "") and "|" not in text  # no shell redirections
    kubelet_unit = units["/etc/systemd/user/kubelet.service"]
    assert "BindsTo=rootlesskit.service" in kubelet_unit
    # u7s.service stops the target: every service must go with it; a service restarted
    # alone must not restart the target (Requires= would: and PartOf= then restarts all)
    assert "Requires=" not in units["/etc/systemd/user/u7s.target"]
    assert "Wants=kubelet.service" in units["/etc/systemd/user/u7s.target"]
    for path, text in units.items():
        if path.startswith("/etc/systemd/user/") and path.endswith(".service"):
            assert "PartOf=u7s.target" in text, path
    assert "u7s service kubelet" in kubelet_unit
    assert {s.name for s in supervisor.services_for(make_plan(role="join-worker"))} == {
        "rootlesskit",
        "kubelet",
        "kube-proxy",
        "port-sync",  # NodePorts are forwarded on every node, workers included
    }
    assert "admission" in {s.name for s in supervisor.services_for(make_plan())}
    assert "admission" not in {s.name for s in supervisor.services_for(make_plan(cri="crio"))}
    # every API server asks the revocation webhook: every control-plane node runs one
    for plan in (make_plan(), make_plan(cri="crio"), make_plan(role="join-control-plane")):
        assert "authz" in {s.name for s in supervisor.services_for(plan)}
    authz_unit = units["/etc/systemd/user/authz.service"]
    assert "u7s service authz" in authz_unit and "BindsTo=rootlesskit.service" in authz_unit


def _review(images: list[str], bad: set[str]) -> dict[str, object]:
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": "u1",
            "kind": {"kind": "Pod"},
            "object": {
                "spec": {
                    "containers": [{"image": i} for i in images],
                    "initContainers": [{"image": "init:1"}],
                }
            },
        },
    }
    return admission.review(body, lambda i: (i not in bad, "no signature" if i in bad else "ok"))


def test_admission_review() -> None:
    ok = _review(["a:1", "b:1"], set())
    assert ok["response"] == {"uid": "u1", "allowed": True}  # type: ignore[index]
    refused = _review(["a:1", "b:1"], {"b:1"})["response"]
    assert refused["allowed"] is False  # type: ignore[index]
    assert "b:1" in refused["status"]["message"] and "no signature" in refused["status"]["message"]  # type: ignore[index]
    assert admission.pod_images(
        {
            "spec": {
                "initContainers": [{"image": "i"}],
                "containers": [{"image": "c"}, {"image": "i"}],
            }
        }
    ) == ["i", "c"]


def test_admission_registration_fails_closed_and_exempts_kube_system() -> None:
    reg = admission.registration("https://192.0.2.2:9443/validate", b"PEM")
    hook = reg["webhooks"][0]
    assert hook["failurePolicy"] == "Fail"
    assert hook["namespaceSelector"]["matchExpressions"][0]["key"] == admission.SKIP_LABEL
    assert hook["rules"][0]["resources"] == ["pods"]


def test_admission_certificates(tmp_path: Path) -> None:
    import os

    ca = admission.make_certificates(tmp_path, ["192.0.2.2"], os.getuid(), os.getgid())
    assert ca.startswith(b"-----BEGIN CERTIFICATE-----")
    assert (tmp_path / "tls.key").stat().st_mode & 0o777 == 0o600
    assert admission.make_certificates(tmp_path, ["192.0.2.2"], os.getuid(), os.getgid()) == ca


class _FakeRootlesskit(http.server.BaseHTTPRequestHandler):
    ports: ClassVar[list[dict[str, object]]] = []

    def log_message(self, *a: object) -> None:
        pass

    def address_string(self) -> str:
        return "x"

    def _send(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(200, self.ports)

    def do_POST(self) -> None:
        spec = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if spec["parentPort"] == 1:
            self._send(500, {"message": "listen tcp 0.0.0.0:1: bind: address already in use"})
            return
        self.ports.append({"id": len(self.ports) + 1, "spec": spec})
        self._send(200, {"id": len(self.ports)})

    def do_DELETE(self) -> None:
        pid = int(self.path.rsplit("/", 1)[1])
        type(self).ports = [p for p in self.ports if p["id"] != pid]
        self._send(200, {})


def test_plan_forwards_are_added_and_foreign_ones_kept(tmp_path: Path) -> None:
    sock = tmp_path / "api.sock"
    _FakeRootlesskit.ports = []
    server = socketserver.UnixStreamServer(str(sock), _FakeRootlesskit)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = rootlesskit_api.RootlesskitApi(sock)
        nodeport = api.add_port(PortForward(31000, 31000))  # made by port sync, not the plan
        wanted = (PortForward(6443, 6443), PortForward(8472, 8472, "udp"))
        assert len(rootlesskit_api.ensure_forwards(api, wanted)) == 2
        assert rootlesskit_api.ensure_forwards(api, wanted) == []
        held = {p.forward for p in api.list_ports()}
        assert held == {*wanted, nodeport.forward}
        with pytest.raises(rootlesskit_api.PortApiError, match="address already in use"):
            api.add_port(PortForward(1, 1))
    finally:
        server.shutdown()
        server.server_close()


def test_fault_port_taken() -> None:
    import socket

    from podsec.u7s import deploy

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        plan = make_plan(ports=(PortForward(port, 6443, host_ip="127.0.0.1"),))
        with pytest.raises(deploy.NodeError, match=f"port {port}/tcp is already in use"):
            deploy.check_ports(plan)


def test_fault_no_subuid_range(host_root: Path) -> None:
    from podsec.host.paths import Host

    (host_root / "etc/subuid").write_text("someone:100000:65536\n")
    (host_root / "etc/subgid").write_text("u7s-admin:100000:65536\n")
    with pytest.raises(runtime.NodeRuntimeError, match="no range in /etc/subuid"):
        runtime.check_subids(Host(host_root), LAYOUT)


def test_fault_userns_disabled(tmp_path: Path) -> None:
    from podsec.host.paths import Host

    proc = tmp_path / "proc"
    (proc / "sys/user").mkdir(parents=True)
    (proc / "sys/user/max_user_namespaces").write_text("0\n")
    with pytest.raises(runtime.NodeRuntimeError, match="user namespaces are disabled"):
        runtime.check_userns(Host(tmp_path, proc=proc))


def test_existing_state_is_found(host_root: Path) -> None:
    from podsec.host.paths import Host
    from podsec.u7s import deploy

    (host_root / "etc/kubernetes/pki").mkdir(parents=True)
    assert deploy.existing_state(Host(host_root)) == []
    (host_root / "etc/kubernetes/admin.conf").write_text("x")
    (host_root / "var/lib/podsec/u7s/etcd/member").mkdir(parents=True)
    found = deploy.existing_state(Host(host_root))
    assert "/etc/kubernetes/admin.conf" in found and "/var/lib/podsec/u7s/etcd/member" in found
    deploy.clean_kube_state(Host(host_root))
    assert deploy.existing_state(Host(host_root)) == []


def test_existing_state_is_what_reset_removes(host_root: Path) -> None:
    """One answer for "an earlier cluster is here": the prompt, the refusal and the cleanup
    see the same files (the refusal's copy missed pki/etcd/* and the CA's other files)."""
    from podsec.host.paths import Host
    from podsec.u7s import deploy

    host = Host(host_root)
    member = host_root / "var/lib/podsec/u7s/etcd/member"
    member.mkdir(parents=True)
    etcd_pki = host_root / "etc/kubernetes/pki/etcd"
    etcd_pki.mkdir(parents=True)
    (etcd_pki / "ca.key").write_text("k")
    (host_root / "etc/kubernetes/pki/sa.pub").write_text("p")
    (host_root / "etc/kubernetes/admin.conf").write_text("x")
    assert deploy.existing_state(host) == [
        "/var/lib/podsec/u7s/etcd/member",
        "/etc/kubernetes/admin.conf",
        "/etc/kubernetes/pki/sa.pub",
        "/etc/kubernetes/pki/etcd/ca.key",
    ]
    deploy.clean_kube_state(host)
    assert deploy.existing_state(host) == []


def test_the_docker_shim_ends_cadvisors_wait(tmp_path: Path) -> None:
    """kubelet < 1.24 waits 5 s for Docker at every start unless /info answers (issue 17)."""
    import http.client
    import socket
    import subprocess
    import sys
    import time

    sock = tmp_path / "docker.sock"
    started = time.monotonic()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "podsec.cli.daemon",
            "kubelet-docker-shim",
            f"socket={sock}",
            "seconds=3",
        ],
        capture_output=True,
        timeout=20,
    )
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - started < 2.5  # returns once listening; the child serves

    class Unix(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(str(sock))

    def get(target: str) -> tuple[int, dict[str, object]]:
        conn = Unix("docker")
        conn.request("GET", target)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())

    status, info = get("/v1.40/info")
    assert status == 200 and info["DockerRootDir"] and info["Driver"] == ""
    assert get("/v1.40/version")[1]["Version"] == "0.0.0"
    assert get("/v1.40/containers/json")[0] == 404
    deadline = time.monotonic() + 10
    while sock.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not sock.exists()  # gone after its time


def test_kubelet_argv_uses_the_docker_shim_before_124() -> None:
    shim = Path("/run/user/990/usernetes/kubelet-docker.sock")
    assert f"--docker=unix://{shim}" in kubelet.argv(make_plan(), Path("/c.sock"), "", shim)
    newer = make_plan(kube_version="v1.26.3")
    assert not any(
        a.startswith("--docker=") for a in kubelet.argv(newer, Path("/c.sock"), "", shim)
    )


def test_network_settings_come_from_netconf() -> None:
    """The tap MTU, the port driver and the pods' MTU are the measured ones (u7s/netconf.py,
    benchmarks/bench_u7s_network.py): rootlesskit and the bridge CNI use the same values."""
    from podsec.u7s import netconf

    argv = runtime.rootlesskit_argv(make_plan(), LAYOUT)
    assert f"--mtu={netconf.MTU}" in argv
    assert f"--port-driver={netconf.PORT_DRIVER}" in argv
    bridge = json.loads(cni.bridge_conflist(make_plan()))["plugins"][0]
    assert bridge["mtu"] == netconf.POD_MTU
    assert netconf.POD_MTU is not None and netconf.POD_MTU <= netconf.MTU


def test_prepare_makes_the_flexvolume_dir_in_the_nodes_tree(host_root: Path) -> None:
    # issue 12: what the node needs exists before kubeadm runs, owned by the node, and
    # nothing is made under the host's /usr
    from podsec.host.paths import Host
    from podsec.u7s.plan import VOLUME_PLUGIN_DIR

    (host_root / "etc/subuid").write_text("u7s-admin:100000:65536\n")
    (host_root / "etc/subgid").write_text("u7s-admin:100000:65536\n")
    layout = replace(LAYOUT, home=Path("/var/lib/u7s-admin"))
    runtime.prepare(Host(host_root), make_plan(role="join-worker"), layout)
    made = host_root / str(runtime.host_view(layout, VOLUME_PLUGIN_DIR)).lstrip("/")
    assert (
        made
        == host_root / "var/lib/u7s-admin/.local/share/usernetes/_var_lib_kubelet/volumeplugins"
    )
    assert made.is_dir() and (made.stat().st_uid, made.stat().st_gid) == (990, 990)
    assert not (host_root / "usr").exists()
    runtime.prepare(Host(host_root), make_plan(role="join-worker"), layout)  # idempotent
    assert made.is_dir()


def test_prepare_sets_up_the_revocation_webhook_on_control_plane_nodes(host_root: Path) -> None:
    # the API server's manifest (kubeadm_config) mounts this kubeconfig: it exists before
    # kubeadm runs, owned by the node's account like the webhook that reads its key
    from podsec.host.paths import Host
    from podsec.webhook import authz

    (host_root / "etc/subuid").write_text("u7s-admin:100000:65536\n")
    (host_root / "etc/subgid").write_text("u7s-admin:100000:65536\n")
    layout = replace(LAYOUT, home=Path("/var/lib/u7s-admin"))
    kc = host_root / "etc/kubernetes/podsec-authz/webhook.kubeconfig"
    runtime.prepare(Host(host_root), make_plan(role="join-worker"), layout)
    assert not kc.exists()  # a worker runs no API server
    runtime.prepare(Host(host_root), make_plan(cri="crio"), layout)
    target = authz.read_kubeconfig(kc)
    assert target.url == "https://127.0.0.1:9444/authorize"
    key = kc.with_name("tls.key")
    assert (key.stat().st_uid, key.stat().st_mode & 0o777) == (990, 0o600)
    assert (kc.parent.stat().st_uid, kc.parent.stat().st_mode & 0o777) == (990, 0o700)
