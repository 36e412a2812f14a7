"""Crashes and hangs (issue 15): a directory, FIFO, socket, symlink loop, non-UTF-8 bytes or
nesting deep enough to exhaust a parser where a configuration or state file should be —
podsec.toml, policy.json, a registries.d entry, a cluster description, the stored
description beside haproxy.cfg, a kubeconfig, cursor.json, revoked.json, the ports state —
fed to every command that reads that file. Each answers at once (a FIFO must not block:
the harness would time out), with one line naming the file and the problem and nothing
changed; a Nagios plugin answers UNKNOWN (3) with the file on its status line, never
"internal error".
"""

from __future__ import annotations

import pytest

from tests.hostile.conftest import CLUSTER_READERS, PROBLEM, Sandbox, make_special

KINDS_JSON = ("dir", "fifo", "socket", "loop", "latin1", "deep-json")
KINDS_YAML = ("dir", "fifo", "socket", "loop", "latin1", "deep-yaml")
KINDS_TOML = ("dir", "fifo", "socket", "loop", "latin1", "deep-toml")

POLICY = '{"default": [{"type": "reject"}], "transports": {"docker": {}}}\n'


def _plugin(prog: str, *args: str) -> tuple[tuple[str, ...], str, int, str]:
    return (args, prog, 3, "stdout")


def _cmd(*args: str, code: int = 1) -> tuple[tuple[str, ...], str, int, str]:
    return (args, "podsec", code, "stderr")


# podsec.toml is read at start-up by every command: a bad one is a configuration error (2)
TOML_COMMANDS = {
    "doctor": _cmd("doctor", "--no-tools", code=2),
    "policy show": _cmd("policy", "show", code=2),
    "policy create": _cmd("policy", "create", "192.0.2.10", code=2),
    "lb haproxy --check": _cmd("lb", "haproxy", "--cluster", "/nonexistent", "--check", code=2),
    "rbac roles": _cmd("rbac", "roles", "alice", code=2),
    "u7s ports list": _cmd("u7s", "ports", "list", code=2),
    "podsec-create-policy": (("192.0.2.10",), "podsec-create-policy", 2, "stderr"),
    "podsec-inotify-check-policy": _plugin("podsec-inotify-check-policy"),
    "podsec-inotify-check-images": _plugin("podsec-inotify-check-images"),
}


def _check(sandbox: Sandbox, spec: tuple, shown: str, kind: str, **kw: object) -> None:
    args, prog, code, stream = spec
    needles = ("UNKNOWN", shown, PROBLEM[kind]) if stream == "stdout" else (shown, PROBLEM[kind])
    sandbox.refused(list(args), code, *needles, prog=prog, stream=stream, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", KINDS_TOML)
@pytest.mark.parametrize("command", sorted(TOML_COMMANDS))
def test_podsec_toml(sandbox: Sandbox, command: str, kind: str) -> None:
    make_special(sandbox.path("/etc/podsec/podsec.toml"), kind)
    _check(sandbox, TOML_COMMANDS[command], "podsec.toml", kind)


POLICY_COMMANDS = {
    "policy show": _cmd("policy", "show"),
    "policy explain": _cmd("policy", "explain", "registry.local/app:1"),
    "policy create": _cmd("policy", "create", "--registry-node", "192.0.2.10"),
    "podsec-create-policy": (
        ("--registry-node", "192.0.2.10"),
        "podsec-create-policy",
        1,
        "stderr",
    ),
    "podsec-inotify-check-policy": _plugin("podsec-inotify-check-policy"),
    "podsec-inotify-check-images": _plugin("podsec-inotify-check-images"),
    "monitor check-policy": _plugin("podsec", "monitor", "check-policy"),
}


@pytest.mark.parametrize("kind", KINDS_JSON)
@pytest.mark.parametrize("command", sorted(POLICY_COMMANDS))
def test_policy_json(sandbox: Sandbox, command: str, kind: str) -> None:
    make_special(sandbox.path("/etc/containers/policy.json"), kind)
    _check(sandbox, POLICY_COMMANDS[command], "policy.json", kind)


REGISTRIES_D_COMMANDS = {
    "policy show": _cmd("policy", "show"),
    "policy explain": _cmd("policy", "explain", "registry.local/app:1"),
    "policy create": _cmd("policy", "create", "--registry-node", "192.0.2.10"),
    "podsec-inotify-check-policy": _plugin("podsec-inotify-check-policy"),
    "podsec-inotify-check-images": _plugin("podsec-inotify-check-images"),
}


@pytest.mark.parametrize("kind", KINDS_YAML)
@pytest.mark.parametrize("command", sorted(REGISTRIES_D_COMMANDS))
def test_registries_d_entry(sandbox: Sandbox, command: str, kind: str) -> None:
    sandbox.write("/etc/containers/policy.json", POLICY)
    make_special(sandbox.path("/etc/containers/registries.d/default.yaml"), kind)
    _check(sandbox, REGISTRIES_D_COMMANDS[command], "default.yaml", kind)


CLUSTER_COMMANDS = {name: _cmd(*argv) for name, argv in CLUSTER_READERS.items()}


@pytest.mark.parametrize("kind", KINDS_YAML)
@pytest.mark.parametrize("command", sorted(CLUSTER_COMMANDS))
def test_cluster_file(sandbox: Sandbox, command: str, kind: str) -> None:
    path = sandbox.top / "cluster.yaml"
    make_special(path, kind)
    args, prog, code, stream = CLUSTER_COMMANDS[command]
    spec = (tuple(a.format(file=path, top=sandbox.top) for a in args), prog, code, stream)
    _check(sandbox, spec, "cluster.yaml", kind)


STORED_COMMANDS = {
    "lb add-server": _cmd("lb", "add-server", "master03", "192.0.2.13"),
    "lb remove-server": _cmd("lb", "remove-server", "master01"),
}


@pytest.mark.parametrize("kind", KINDS_YAML)
@pytest.mark.parametrize("command", sorted(STORED_COMMANDS))
def test_stored_cluster_description(sandbox: Sandbox, command: str, kind: str) -> None:
    from podsec.lb import haproxy

    sandbox.write("/etc/haproxy/haproxy.cfg", "# rendered by podsec\n")
    make_special(haproxy.description_path(sandbox.path("/etc/haproxy/haproxy.cfg")), kind)
    _check(sandbox, STORED_COMMANDS[command], haproxy.CLUSTER_FILE_NAME, kind)


KUBECONFIG_COMMANDS = {
    "rbac roles": _cmd("rbac", "roles", "alice", "--kubeconfig", "{file}"),
    "rbac who-can": _cmd("rbac", "who-can", "get", "pods", "--kubeconfig", "{file}"),
    "rbac create-kubeconfig": _cmd("rbac", "create-kubeconfig", "alice", "--kubeconfig", "{file}"),
    "rbac bind": _cmd(
        "rbac", "bind", "alice", "clusterrole", "view", "alice-view", "--kubeconfig", "{file}"
    ),
    "rbac unbind": _cmd(
        "rbac", "unbind", "alice", "clusterrole", "view", "alice-view", "--kubeconfig", "{file}"
    ),
}


@pytest.mark.parametrize("kind", KINDS_YAML)
@pytest.mark.parametrize("command", sorted(KUBECONFIG_COMMANDS))
def test_kubeconfig(sandbox: Sandbox, command: str, kind: str) -> None:
    with sandbox.path("/etc/passwd").open("a") as passwd:  # the user must exist first
        passwd.write("alice:x:1000:1000::/home/alice:/bin/sh\n")
    path = sandbox.top / "admin.conf"
    make_special(path, kind)
    args, prog, code, stream = KUBECONFIG_COMMANDS[command]
    spec = (tuple(a.format(file=path) for a in args), prog, code, stream)
    _check(sandbox, spec, "admin.conf", kind)


KUBEAPI_STATE = {
    "cursor.json": "/var/lib/podsec/u7s/log/kubeapi/cursor.json",
    "revoked.json": "/var/lib/podsec/rbac/revoked.json",
}
KUBEAPI_COMMANDS = {
    "monitor watch-kubeapi -d --once": (("monitor", "watch-kubeapi", "-d", "--once"), "podsec"),
    "podsec-inotify-check-kubeapi -d --once": (("-d", "--once"), "podsec-inotify-check-kubeapi"),
}


@pytest.mark.parametrize("kind", KINDS_JSON)
@pytest.mark.parametrize("state", sorted(KUBEAPI_STATE))
@pytest.mark.parametrize("command", sorted(KUBEAPI_COMMANDS))
def test_kubeapi_state_files(sandbox: Sandbox, command: str, state: str, kind: str) -> None:
    sandbox.write("/etc/kubernetes/audit/audit.log", "")
    make_special(sandbox.path(KUBEAPI_STATE[state]), kind)
    args, prog = KUBEAPI_COMMANDS[command]
    env = {"PODSEC_SYSLOG_SOCKET": str(sandbox.top / "no-syslog")}
    result = sandbox.run(*args, prog=prog, env=env)
    # the daemon keeps running on a broken state file; --once reports it: exit 1, one
    # Critical line naming the file (the syslog socket's absence is a warning of its own)
    lines = [s for s in result.stderr.splitlines() if "syslog" not in s and not s[:1].isspace()]
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert len(lines) == 1 and state in lines[0] and PROBLEM[kind] in lines[0], result.stderr


OUTPUTS = {
    "lb haproxy --output": ("lb", "haproxy", "--cluster", "{cluster}", "--output", "{out}"),
    "lb keepalived --output": (
        "lb",
        "keepalived",
        "--cluster",
        "{cluster}",
        "--state",
        "BACKUP",
        "--priority",
        "100",
        "--interface",
        "eth0",
        "--output",
        "{out}",
        "--no-check",
    ),
    "ingress prepare --output": ("ingress", "prepare", "{manifest}", "--output", "{out}"),
}
OUTPUT_PLACES = {
    "below-a-file": ("file/out.conf", ("cannot write", "is not a directory")),
    "deep-below-a-file": ("file/a/b/out.conf", ("cannot write", "is not a directory")),
    "a-directory": ("dir", ("is a directory",)),
}
CLUSTER_OK = """\
vip: 10.150.0.160
control_plane:
  - {name: master01, address: 192.168.122.80}
vrrp: {auth_pass: s3cret}
haproxy: {log: null, chroot: null, user: null, group: null, stats_socket: null}
"""


@pytest.mark.parametrize("place", sorted(OUTPUT_PLACES))
@pytest.mark.parametrize("command", sorted(OUTPUTS))
def test_output_where_no_file_can_be(sandbox: Sandbox, command: str, place: str) -> None:
    from pathlib import Path

    cluster = sandbox.write("cluster.yaml", CLUSTER_OK)
    data = (
        Path(__file__).resolve().parents[1] / "data/ingress-nginx-controller-v1.8.0-baremetal.yaml"
    )
    manifest = sandbox.write("deploy.yaml", data.read_bytes())
    sandbox.write("file", "a regular file\n")
    (sandbox.top / "dir").mkdir()
    where, problem = OUTPUT_PLACES[place]
    out = sandbox.top / where
    args = [a.format(cluster=cluster, manifest=manifest, out=out) for a in OUTPUTS[command]]
    sandbox.refused(args, 1, *problem)


NOT_JSON = {
    "html": b"<html><body>proxy login</body></html>",
    "latin1": b'{"kind": "caf\xe9"}',
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "truncated": b'{"kind": "APIVersions", "versions": [',
}
API_COMMANDS = {
    "rbac roles": ("rbac", "roles", "alice"),
    "rbac who-can": ("rbac", "who-can", "get", "pods"),
    "rbac create-kubeconfig": ("rbac", "create-kubeconfig", "alice"),
    "rbac bind": ("rbac", "bind", "alice", "clusterrole", "view", "alice-view", "--any-user"),
    "rbac unbind": ("rbac", "unbind", "alice", "clusterrole", "view", "alice-view", "--any-user"),
}


@pytest.mark.parametrize("body", sorted(NOT_JSON))
@pytest.mark.parametrize("command", sorted(API_COMMANDS))
def test_api_answers_200_with_a_non_json_body(
    sandbox: Sandbox, fake_kube: object, command: str, body: str
) -> None:
    from tests.fixtures.fake_kube import Reply

    with sandbox.path("/etc/passwd").open("a") as passwd:
        passwd.write("alice:x:1000:1000::/home/alice:/bin/sh\n")
    sandbox.path("/home/alice/.kube").mkdir(parents=True)
    config = fake_kube.kubeconfig(sandbox.top / "admin.conf")  # type: ignore[attr-defined]
    fake_kube.answer = lambda req: Reply(200, NOT_JSON[body])  # type: ignore[attr-defined]
    sandbox.refused([*API_COMMANDS[command], "--kubeconfig", str(config)], 1, "non-JSON body")


MALFORMED_PORTS = {
    "an-object": b'{"ports": []}',
    "bad-id": b'[{"id": "x", "spec": {"parentPort": 1, "childPort": 1}}]',
    "numbers": b"[1, 2]",
    "html": b"<html>not rootlesskit</html>",
}
PORTS_COMMANDS = {
    "list": ("u7s", "ports", "list"),
    "add": ("u7s", "ports", "add", "31000"),
    "remove": ("u7s", "ports", "remove", "31000"),
}


@pytest.mark.parametrize("answer", sorted(MALFORMED_PORTS))
@pytest.mark.parametrize("command", sorted(PORTS_COMMANDS))
def test_rootlesskit_answers_a_malformed_list(sandbox: Sandbox, command: str, answer: str) -> None:
    import http.server
    import socketserver
    import tempfile
    import threading

    body = MALFORMED_PORTS[answer]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def address_string(self) -> str:
            return "rootlesskit"

        def log_message(self, *args: object) -> None:
            pass

    with tempfile.TemporaryDirectory(prefix="rk", dir="/tmp") as short:
        sock = f"{short}/api.sock"
        server = socketserver.UnixStreamServer(sock, Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            state = sandbox.top / "usernetes" / "podsec-ports.json"
            args = [*PORTS_COMMANDS[command], "--socket", sock, "--state", str(state)]
            sandbox.refused(args, 1, "malformed document")
        finally:
            server.shutdown()
            server.server_close()
