"""Refused, and nothing changed (issue 15): commands that write validate everything first —
``check-kubeapi --install`` the apiserver manifest before the audit policy, ``lb add-server``
the new server against the installed cluster before haproxy.cfg, ``u7s ports add/remove``
the state file before the lock beside it — so a refusal leaves the tree byte-identical.
"""

from __future__ import annotations

import pytest

from tests.hostile.conftest import PROBLEM, Sandbox, make_special

MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
INSTALL = {
    "monitor watch-kubeapi --install": (("monitor", "watch-kubeapi", "--install"), "podsec"),
    "podsec-inotify-check-kubeapi --install": (("--install",), "podsec-inotify-check-kubeapi"),
}
# what is where the manifest should be → exit code, what the message says
MANIFESTS: dict[str, tuple[str | None, int, str]] = {
    "missing": (None, 1, "does not exist"),
    "invalid-yaml": ("spec: [unclosed\n", 1, "invalid YAML"),
    "a-list": ("- a\n- b\n", 1, "no kube-apiserver container"),
    "no-apiserver": (
        "spec:\n  containers:\n  - name: etcd\n    command: [etcd]\n",
        1,
        "no kube-apiserver container",
    ),
    "containers-not-mappings": ("spec:\n  containers: [a, b]\n", 1, "no kube-apiserver"),
    "command-a-string": (
        "spec:\n  containers:\n  - name: kube-apiserver\n    command: kube-apiserver\n",
        1,
        "no kube-apiserver container",
    ),
    "fifo": ("fifo", 1, PROBLEM["fifo"]),
    "dir": ("dir", 1, PROBLEM["dir"]),
    "loop": ("loop", 1, PROBLEM["loop"]),
    "latin1": ("latin1", 1, PROBLEM["latin1"]),
    "deep-yaml": ("deep-yaml", 1, PROBLEM["deep-yaml"]),
}


@pytest.mark.parametrize("manifest", sorted(MANIFESTS))
@pytest.mark.parametrize("command", sorted(INSTALL))
def test_audit_install_writes_nothing_before_the_manifest_is_good(
    sandbox: Sandbox, command: str, manifest: str
) -> None:
    content, code, problem = MANIFESTS[manifest]
    path = sandbox.path(MANIFEST)
    if content in PROBLEM:
        make_special(path, content)
    elif content is not None:
        sandbox.write(MANIFEST, content)
    else:
        path.parent.mkdir(parents=True)
    args, prog = INSTALL[command]
    sandbox.refused(args, code, problem, prog=prog)
    assert not sandbox.path("/etc/kubernetes/audit/policy.yaml").exists()


CLUSTER = """\
vip: 10.150.0.160
lb_port: 8443
control_plane:
  - {name: master01, address: 192.168.122.80}
  - {name: master02, address: 192.168.122.81}
ingress:
  node_port: 31000
  nodes:
    - {name: node01, address: 192.168.122.90}
haproxy: {log: null, chroot: null, user: null, group: null, stats_socket: null}
"""

# add-server arguments → what the message names (every one exit 2: they are arguments)
ADD_SERVER = {
    "same-address-as-master01": (("master03", "192.168.122.80"), "same address"),
    "same-address-and-port": (("master03", "192.168.122.81", "--port", "6443"), "same address"),
    "same-ingress-address": (("node02", "192.168.122.90", "--ingress"), "same address"),
    "same-name": (("master01", "192.168.122.99"), "already exists"),
    "same-name-as-ingress": (("node01", "192.168.122.99"), "already exists"),
    "invalid-ipv4": (("master03", "999.1.1.1"), "invalid address"),
    "address-with-space": (("master03", "a b"), "invalid address"),
    "name-with-semicolon": (("a;b", "192.168.122.99"), "invalid server name"),
    "port-zero": (("master03", "192.168.122.99", "--port", "0"), "--port"),
    "port-too-big": (("master03", "192.168.122.99", "--port", "70000"), "--port"),
}


@pytest.fixture
def installed(sandbox: Sandbox) -> Sandbox:
    from podsec.host.paths import Host
    from podsec.lb import cluster, haproxy

    haproxy.install(Host(sandbox.root), cluster.parse(CLUSTER))
    return sandbox


@pytest.mark.parametrize("case", sorted(ADD_SERVER))
def test_add_server_refuses_before_rewriting(installed: Sandbox, case: str) -> None:
    args, problem = ADD_SERVER[case]
    installed.refused(("lb", "add-server", *args), 2, problem)


def test_add_server_still_adds_a_new_server(installed: Sandbox) -> None:
    result = installed.run("lb", "add-server", "master03", "192.168.122.82")
    assert result.returncode == 0, result.stderr
    assert "192.168.122.82:6443" in installed.path("/etc/haproxy/haproxy.cfg").read_text()


STATES = {
    "not-json": ("{not json", "invalid JSON"),
    "a-list": ("[1, 2]", 'expected an object with a "forwards" mapping'),
    "forwards-a-list": ('{"forwards": ["0.0.0.0:1:1/tcp"]}', "forwards"),
    "fifo": ("fifo", PROBLEM["fifo"]),
    "dir": ("dir", PROBLEM["dir"]),
    "loop": ("loop", PROBLEM["loop"]),
    "latin1": ("latin1", PROBLEM["latin1"]),
    "deep-json": ("deep-json", PROBLEM["deep-json"]),
}
PORTS = {
    "add": ("u7s", "ports", "add", "31000"),
    "remove": ("u7s", "ports", "remove", "31000"),
    "list": ("u7s", "ports", "list"),
}


@pytest.mark.parametrize("state", sorted(STATES))
@pytest.mark.parametrize("command", sorted(PORTS))
def test_ports_refuse_a_garbage_state_file(sandbox: Sandbox, command: str, state: str) -> None:
    content, problem = STATES[state]
    path = sandbox.top / "usernetes" / "podsec-ports.json"
    if content in PROBLEM:
        make_special(path, content)
    else:
        sandbox.write("usernetes/podsec-ports.json", content)
    args = (*PORTS[command], "--state", str(path), "--socket", str(sandbox.top / "api.sock"))
    sandbox.refused(args, 1, str(path), problem)
