"""Every command example of README.md is run by a test (issue 16).

The commands are extracted from the README's ``sh``/``console`` blocks. Those that work on a
node's files run here, in order, in a sandbox root (``--root``) with the real shadow tools,
gpg and haproxy/keepalived, as the README shows them (the substitutions a sandbox needs are
listed in SANDBOX next to each). The others need a live cluster, a registry, systemd or the
network: each names the test that runs it, and that test must exist. A README command in
neither table fails this test — a new example must be run somewhere.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.fixtures.require import require_root, require_tool

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# README command → test that runs it (file::function); prefixes match whole words
COVERED = {
    "make demo": "scripts/demo.py::main",
    "make test": "Makefile::test",
    "make deb": "tests/packaging/test_deb.py::test_units_and_conffiles",
    "apt-get install": "tests/packaging/test_deb_install.py::",
    "man podsec-create-policy": "tests/packaging/test_manpages.py::",
    "podsec-create-policy <Tab><Tab>": "tests/packaging/test_manpages.py::",
    "podsec services create": "tests/integration/test_trust_services.py::",
    "podsec services run": "tests/integration/test_trust_services.py::test_services_run_supervises",
    "podsec services status": "tests/integration/test_trust_services.py::",
    "podman push --sign-by": "tests/e2e/test_trust_e2e.py::test_podman_root",
    "podsec policy create 192.168.1.10 --trust": "tests/integration/test_trust_setup.py::test_client_node_installs_only_pinned",
    "podsec users create-imagemaker --sigstore": "tests/integration/test_trust_sigstore.py::",
    "podsec images sign": "tests/integration/test_trust_sigstore.py::",
    "podsec images load-sign --sigstore": "tests/integration/test_trust_sigstore.py::",
    "podsec policy explain": "tests/e2e/test_trust_e2e.py::test_explain",
    "podsec users rotate-key": "tests/integration/test_trust_sigstore.py::",
    "podsec images resign": "tests/integration/test_trust_sigstore.py::",
    "U7S_KUBEVERSION=v1.26.9 U7S_FLANNEL_TAG=v0.25.1 podsec images save-k8s": "tests/integration/test_archive_save_k8s.py::test_readme_save_k8s_line_names_the_seeds_images",
    "podsec images save": "tests/integration/test_archive_roundtrip.py::",
    "podsec images load-sign": "tests/integration/test_archive_roundtrip.py::",
    "kubeadm": "tests/e2e/test_u7s_cluster.py::test_init_prints_the_join_commands",
    "U7S_REGISTRY= kubeadm init": "tests/unit/test_u7s_wrapper.py::",
    "U7S_KUBEVERSION=v1.20.1 U7S_SETAVAILABLEIMAGES=yes kubeadm init": "tests/integration/test_u7s_config_real.py::",
    "export PATH=/usr/libexec/podsec/u7s/bin/:$PATH": "tests/e2e/test_u7s_cluster.py::",
    "podsec u7s status": "tests/unit/test_cli.py::test_u7s_status_says_where_kube_proxy_runs",
    "nsenter_u7s": "tests/e2e/test_u7s_cluster.py::test_nsenter_sees_the_runtime",
    "rootlessctl": "tests/integration/test_portsync_rootlesskit.py::",
    "podsec u7s pull": "tests/e2e/test_u7s_cluster.py::",
    "podsec u7s stop": "tests/e2e/test_u7s_cluster.py::test_reset_stops_everything_and_removes_podsec_state",
    "podsec u7s kubeadm init": "tests/e2e/test_lb_u7s.py::test_rootless_ha_control_plane_behind_haproxy",
    "podsec lb add-server": "tests/integration/test_lb_haproxy.py::test_add_and_remove_server",
    "podsec lb check-apiserver": "tests/integration/test_lb_haproxy.py::",
    "podsec u7s ports": "tests/integration/test_portsync_rootlesskit.py::",
    "curl -o ingress-nginx-deploy.yaml": "tests/data/ingress-nginx-controller-v1.8.0-baremetal.yaml::",
    "podman tag": "tests/integration/test_ingress_push.py::test_prepare_push_tags_signs_and_pushes",
    "podsec ingress prepare ingress-nginx-deploy.yaml --push": "tests/integration/test_ingress_push.py::test_prepare_push_tags_signs_and_pushes",
    "kubectl": "tests/e2e/test_rbac_flow.py::test_rbac_walkthrough",
    "podsec rbac": "tests/e2e/test_rbac_flow.py::test_rbac_walkthrough",
    "podsec-k8s-rbac-bindrole": "tests/integration/test_rbac_cluster.py::",
    "podsec rbac enforce-revocation": "tests/e2e/test_rbac_revocation.py::",
    "podsec monitor check-authz": "tests/e2e/test_rbac_revocation.py::",
    "podsec monitor check-vuln": "tests/integration/test_monitor_vuln.py::test_trivy_server_unit_serves_the_clients",
    "podsec monitor watch-containers": "tests/integration/test_seed_node.py::test_node_set_up_by_podsec_is_ok_in_its_monitor",
    "podsec monitor check-certs": "tests/integration/test_rbac_cluster.py::",
    "podsec monitor check-keys": "tests/integration/test_monitor_keys.py::",
    "podsec monitor check-drift": "tests/integration/test_policy_drift.py::test_drift_states_and_sync",
    "podsec policy sync": "tests/integration/test_policy_drift.py::test_drift_states_and_sync",
    "podsec monitor watch-kubeapi -d": "tests/integration/test_monitor_kubeapi.py::test_daemon_follows_the_live_log",
    "podsec monitor watch-kubeapi -m": "tests/integration/test_monitor_kubeapi.py::test_forbidden_requests_reported_and_mailed",
    "podsec monitor watch-kubeapi --install": "tests/unit/test_monitor_audit.py::",
}

# README command → (argv as run in the sandbox, exit codes accepted, why it differs if it does)
SANDBOX: list[tuple[str, list[str], tuple[int, ...]]] = [
    # the sandbox's 192.168.1.10 is not one of this machine's addresses: --registry-node
    (
        "podsec policy create 192.168.1.10",
        ["policy", "create", "192.168.1.10", "--registry-node"],
        (0,),
    ),
    (
        "podsec users create-imagemaker alice@k8s-p10",
        ["users", "create-imagemaker", "alice@k8s-p10"],
        (0,),
    ),
    ("podsec users create-podman bob", ["users", "create-podman", "bob"], (0,)),
    ("podsec u7s install", ["u7s", "install"], (0,)),
    (
        "podsec lb haproxy --cluster cluster.yaml --reload",
        ["lb", "haproxy", "--cluster", "{cluster}", "--reload"],
        (0,),
    ),
    (
        "podsec lb keepalived --cluster cluster.yaml --state MASTER --priority 101 --interface br0",
        [  # br0 does not exist here: this machine's own interface
            *("lb", "keepalived", "--cluster", "{cluster}", "--state", "MASTER"),
            *("--priority", "101", "--interface", "{interface}"),
        ],
        (0,),
    ),
    (
        "podsec ingress prepare ingress-nginx-deploy.yaml --node-port 31000",
        ["ingress", "prepare", "{ingress}", "--node-port", "31000"],
        (0,),
    ),
    (
        "podsec-inotify-check-policy -w 1 -c 100",
        ["@podsec-inotify-check-policy", "-w", "1", "-c", "100"],
        (0, 1, 2),
    ),
    (
        "podsec monitor check-images -vv -M security@example.org",
        ["monitor", "check-images", "-vv"],  # no mail server in the sandbox: no -M
        (0,),
    ),
    ("podsec monitor install --enable", ["monitor", "install", "--enable"], (0,)),
]


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    out = []
    for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S):
        if lang not in ("sh", "console"):
            continue
        for line in body.splitlines():
            cmd = line.strip()
            if cmd.startswith(("# ", "$ ")):
                cmd = cmd[2:]
            cmd = re.split(r"\s{2,}#\s", cmd)[0].rstrip(" \\").strip()
            first = cmd.split(" ", 1)[0] if cmd else ""
            if not first or not re.match(
                r"^(podsec|kubeadm|kubectl|podman|nsenter_u7s|rootlessctl|make|apt-get|man|curl|export|U7S_)",
                first,
            ):
                continue  # output shown, or prose in a comment
            out.append(cmd)
    return out


def _matches(cmd: str, prefix: str) -> bool:
    return cmd == prefix or cmd.startswith(prefix + " ")


def test_every_readme_command_is_run_somewhere() -> None:
    sandboxed = [c for c, _a, _r in SANDBOX]
    unplaced = [
        c
        for c in readme_commands()
        if not any(_matches(c, s) for s in sandboxed) and not any(_matches(c, p) for p in COVERED)
    ]
    assert unplaced == [], "README commands no test runs: add them to SANDBOX or COVERED"
    for where in set(COVERED.values()):
        path, _sep, func = where.partition("::")
        assert (REPO / path).exists(), where
        if func and path.endswith(".py"):
            assert re.search(rf"^def {func}\b", (REPO / path).read_text(), re.M), where


@pytest.fixture
def node(host_root: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    require_root()
    require_tool("groupadd", "useradd", "gpg", "chattr", "haproxy", "keepalived")
    yield host_root
    subprocess.run(["chattr", "-R", "-i", str(host_root / "home")], capture_output=True)


def test_sandboxed_readme_commands_run_as_shown(node: Path, tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text((REPO / "src/podsec/data/lb/cluster.example.yaml").read_text())
    ingress = tmp_path / "ingress-nginx-deploy.yaml"
    ingress.write_text(
        (REPO / "tests/data/ingress-nginx-controller-v1.8.0-baremetal.yaml").read_text()
    )
    nics = sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name != "lo")
    fill = {"cluster": str(cluster), "ingress": str(ingress), "interface": nics[0]}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PODSEC", "U7S_", "LC_"))}
    env.update(LANG="C", PODSEC_SYSLOG_SOCKET=str(tmp_path / "no-syslog"))
    readme = readme_commands()
    for shown, args, codes in SANDBOX:
        assert shown in readme or any(_matches(c, shown) for c in readme), shown
        argv = [a.format(**fill) for a in args]
        if argv[0].startswith("@"):  # an original program name
            full = [str(BIN / argv[0][1:]), *argv[1:]]
            run_env = {**env, "PODSEC_ROOT": str(node)}
        else:
            full = [str(BIN / "podsec"), "--root", str(node), *argv]
            run_env = env
        if "--enable" in argv and shutil.which("systemctl") is None:
            continue
        r = subprocess.run(full, env=run_env, capture_output=True, text=True, timeout=300)
        assert r.returncode in codes, (shown, r.returncode, r.stdout[-400:], r.stderr[-800:])
        assert "Traceback" not in r.stderr, shown
