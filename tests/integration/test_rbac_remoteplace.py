"""create-remoteplace for real: a throw-away sshd (Debian's openssh-server) on a free loopback
port with its own host key, key-only login; scp copies a user's kubeconfig; kubectl then works
with the merged workstation kubeconfig against the real control plane.

The fixture creates /run/sshd if missing (sshd's privilege separation directory; empty, harmless)
and logs in as the current user (root) with an authorized_keys file in the tmp dir, so no
account is created and ~/.ssh is never read or written (UserKnownHostsFile, -F-free options).
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from tests.fixtures.kube import ControlPlane
from tests.fixtures.require import free_port, require_root, require_tool

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

SSHD = Path("/usr/sbin/sshd")
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Sshd:
    port: int
    identity: Path
    known_hosts: Path

    def options(self) -> list[str]:
        return [
            "--port",
            str(self.port),
            "--identity",
            str(self.identity),
            "--ssh-option",
            f"UserKnownHostsFile={self.known_hosts}",
            "--ssh-option",
            "GlobalKnownHostsFile=/dev/null",
            "--ssh-option",
            "StrictHostKeyChecking=yes",
        ]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    require_root()
    if not SSHD.is_file():
        from tests.fixtures.require import missing

        missing("sshd (Debian package openssh-server) is not installed")
    require_tool("ssh-keygen", "scp", "ssh")
    d = tmp_path_factory.mktemp("sshd")
    keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", ""]
    subprocess.run([*keygen, "-f", str(d / "host_key")], check=True)
    subprocess.run([*keygen, "-f", str(d / "id")], check=True)
    (d / "authorized_keys").write_text((d / "id.pub").read_text())
    port = free_port()
    (d / "sshd_config").write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d / "host_key"}
PidFile {d / "sshd.pid"}
AuthorizedKeysFile {d / "authorized_keys"}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
LogLevel ERROR
"""
    )
    host_pub = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = (d / "sshd.log").open("wb")
    proc = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(d / "sshd_config")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                pytest.fail(f"sshd exited: {(d / 'sshd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("sshd did not listen in time")
                time.sleep(0.1)
        yield Sshd(port, d / "id", d / "known_hosts")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def _run(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "PODSEC"))}
    env.update(HOME=str(home), LANG="C.UTF-8")
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)


def test_remoteplace_copies_points_and_merges(
    sshd: Sshd, control_plane: ControlPlane, tmp_path: Path
) -> None:
    cluster_side = tmp_path / "cluster"
    cluster_side.mkdir()
    remote = control_plane.kubeconfig_for(cluster_side, f"wsuser{os.getpid()}", ["k8s"])
    # what create-kubeconfig writes names the API by an address the workstation may not
    # reach; remoteplace must point it at the address given
    doc = yaml.safe_load(remote.read_text())
    port = control_plane.server.rsplit(":", 1)[1]
    doc["clusters"][0]["cluster"]["server"] = f"https://localhost:{port}"
    remote.write_text(yaml.safe_dump(doc))

    ws = tmp_path / "workstation"
    (ws / ".kube").mkdir(parents=True)
    (ws / ".kube/config").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "lab", "cluster": {"server": "https://10.1.1.1:6443"}}],
                "users": [{"name": "me", "user": {"token": "t"}}],
                "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "me"}}],
                "current-context": "lab",
            }
        )
    )
    r = _run(
        [
            str(BIN / "podsec"),
            "rbac",
            "create-remoteplace",
            "127.0.0.1",
            "--user",
            "root",
            "--remote-path",
            str(remote),
            *sshd.options(),
            "--json",
        ],
        ws,
    )
    assert r.returncode == 0, r.stderr
    cfg = ws / ".kube/config"
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert stat.S_IMODE((ws / ".kube").stat().st_mode) == 0o700
    merged = yaml.safe_load(cfg.read_text())
    assert {c["name"] for c in merged["contexts"]} >= {"lab", doc["current-context"]}
    assert merged["current-context"] == doc["current-context"]
    server = next(c for c in merged["clusters"] if c["name"] == doc["clusters"][0]["name"])
    assert server["cluster"]["server"] == f"https://127.0.0.1:{port}"
    assert not list((ws / ".kube").glob(".config.remote-*")), "the temp copy must be gone"
    out = control_plane.kubectl("auth", "can-i", "get", "pods", kubeconfig=cfg, check=False)
    assert out.stdout.strip() == "no", out.stderr  # authenticated through the copied config


def test_remoteplace_failure_leaves_local_config_alone(sshd: Sshd, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / ".kube").mkdir(parents=True)
    (ws / ".kube/config").write_text("current-context: lab\n")
    r = _run(
        [
            str(BIN / "podsec-k8s-rbac-create-remoteplace"),
            "127.0.0.1",
            "--user",
            "root",
            "--remote-path",
            str(tmp_path / "absent"),
            *sshd.options(),
        ],
        ws,
    )
    # under its original name an error line starts with the program's name (issue 16)
    assert r.returncode == 1 and r.stderr.startswith(
        "podsec-k8s-rbac-create-remoteplace: scp failed"
    ), r.stderr
    assert (ws / ".kube/config").read_text() == "current-context: lab\n"
    assert not list((ws / ".kube").glob(".config.remote-*"))
