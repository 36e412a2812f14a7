"""The node sandbox (tests/fixtures/sandbox.py): a leftover on the machine is not seen, an
absent path stays absent, writes stay in the sandbox, a nested sandbox sees the machine.

The "machine" with leftovers is made in a private mount namespace of the test's own (tmpfs
over /usr/libexec and /run there), so nothing is created on the real machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures import sandbox
from tests.fixtures.require import require_root, require_tool

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, os, subprocess, sys
from pathlib import Path
from tests.fixtures import sandbox

state = Path(sys.argv[1])
for d in ("/usr/libexec", "/run"):  # this namespace's "machine" gets leftovers
    subprocess.run(["mount", "-t", "tmpfs", "leftovers", d], check=True)
Path("/usr/libexec/kubernetes/kubelet-plugins/volume/exec").mkdir(parents=True)
os.chmod("/usr/libexec/kubernetes", 0o700)
Path("/usr/libexec/other-program").write_text("kept\n")
Path("/run/podsec/u7s").mkdir(parents=True)
Path("/run/podsec/u7s/supervisor.pid").write_text("1\n")
hosts = Path("/etc/hosts").read_text()
etc_kubernetes_before = os.path.lexists("/etc/kubernetes")

out = {}
with sandbox.sandbox(state) as sb:
    out["emptied"] = sb.emptied
    out["libexec_k8s"] = os.listdir("/usr/libexec/kubernetes")
    out["libexec_k8s_mode"] = oct(os.stat("/usr/libexec/kubernetes").st_mode & 0o777)
    out["run_podsec"] = os.listdir("/run/podsec")
    out["other_program"] = Path("/usr/libexec/other-program").read_text()
    out["etc_kubernetes"] = os.path.lexists("/etc/kubernetes")
    out["etc_kubernetes_before"] = etc_kubernetes_before
    out["hosts_kept"] = Path("/etc/hosts").read_text() == hosts
    out["home_fs"] = subprocess.run(
        ["stat", "-f", "-c", "%T", sandbox.U7S_HOME], capture_output=True, text=True
    ).stdout.strip()
    Path("/etc/kubernetes").mkdir()
    Path("/etc/kubernetes/admin.conf").write_text("x")
    out["upper_has_write"] = (sb.upper("/etc/kubernetes") / "admin.conf").exists()
    nested = subprocess.run(
        ["unshare", "--mount", "--propagation", "private",
         sys.executable, "-m", "tests.fixtures.sandbox", str(state / "nested"),
         f"--lower={sb.real}", "--",
         sys.executable, "-c",
         "import os, json; print(json.dumps([os.listdir('/usr/libexec/kubernetes'), "
         "os.path.exists('/etc/kubernetes/admin.conf')]))"],
        capture_output=True, text=True,
    )
    out["nested"] = json.loads(nested.stdout) if nested.returncode == 0 else nested.stderr
out["after_leftover"] = os.path.isdir("/usr/libexec/kubernetes/kubelet-plugins/volume/exec")
out["after_etc_kubernetes"] = os.path.lexists("/etc/kubernetes")
sandbox.restore_tun(state)
print(json.dumps(out))
"""


def test_sandbox_starts_node_state_empty_and_keeps_writes(tmp_path: Path) -> None:
    require_root()
    require_tool("unshare", "mount")
    r = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            sys.executable,
            "-c",
            SCRIPT,
            str(tmp_path / "state"),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # the leftovers are there on the "machine", and the node sees empty directories
    assert "/usr/libexec/kubernetes" in out["emptied"] and "/run/podsec" in out["emptied"]
    assert out["libexec_k8s"] == [] and out["run_podsec"] == []
    assert out["libexec_k8s_mode"] == "0o700"  # the real directory's owner and mode
    assert out["other_program"] == "kept\n"  # the rest of the tree shows through
    assert out["hosts_kept"]
    assert out["home_fs"] != "overlayfs"  # containerd's snapshots need a plain filesystem
    if not out["etc_kubernetes_before"]:
        assert "/etc/kubernetes" not in out["emptied"]
        assert out["etc_kubernetes"] is False  # absent stays absent
        assert out["after_etc_kubernetes"] is False  # the write stayed in the sandbox
    assert out["upper_has_write"]
    # a nested sandbox overlays the machine, not its parent's view: the leftover emptied
    # again, the parent node's admin.conf not there
    assert out["nested"] == [[], False], out["nested"]
    assert out["after_leftover"]  # the machine's own leftover untouched


def test_sandbox_refuses_the_machine_s_own_mount_namespace(tmp_path: Path) -> None:
    require_root()
    probe = []
    if sandbox.private_namespace():
        # scripts/test-env runs the suite in a private namespace: the nearest ancestor in
        # the machine's (make's, here) is where the command is tried
        machine, pid = sandbox._mntns(sandbox.machine_pid()), os.getpid()
        while sandbox._mntns(pid) != machine:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        probe = ["nsenter", f"--target={pid}", "--mount", "--"]
    r = subprocess.run(
        [*probe, sys.executable, "-m", "tests.fixtures.sandbox", str(tmp_path / "s"), "--", "true"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode != 0
    assert "refusing to mount over the machine's own mount namespace" in r.stderr
    assert not (tmp_path / "s").exists()
