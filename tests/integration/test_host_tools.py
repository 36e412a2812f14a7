"""The host layer against the real programs it drives."""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.fixtures.require import require_root, require_tool

from podsec.errors import CommandError
from podsec.host import accounts, run, systemd
from podsec.host.paths import Host

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_runner_carries_stderr_tail_and_status() -> None:
    with pytest.raises(CommandError) as err:
        run.run(["sh", "-c", "echo first >&2; echo 'the real reason' >&2; exit 3"])
    assert err.value.returncode == 3
    assert "the real reason" in err.value.message
    assert err.value.argv[0] == "sh"


def test_runner_timeout_and_missing_program() -> None:
    with pytest.raises(CommandError, match="did not finish"):
        run.run(["sleep", "5"], timeout=0.5)
    with pytest.raises(CommandError, match="not found"):
        run.run(["/nonexistent/podsec-no-such-program"])


def test_runner_as_user_sets_identity() -> None:
    require_root()
    r = run.run(["sh", "-c", 'echo "$(id -u) $HOME"'], as_user="nobody")
    assert r.stdout.split() == ["65534", "/nonexistent"]


def test_accounts_with_real_shadow_tools(host_root: Path) -> None:
    require_root()
    require_tool("useradd", "groupadd", "usermod")
    host = Host(host_root)
    assert accounts.ensure_group(host, "podman")
    assert not accounts.ensure_group(host, "podman")
    assert accounts.ensure_group(host, "podman_dev")
    assert accounts.ensure_user(
        host, "alice", primary_group="podman", supplementary=("podman_dev",)
    )
    alice = accounts.get_user(host, "alice")
    assert alice is not None and (host_root / "home/alice").is_dir()
    assert accounts.user_groups(host, "alice") == {"podman", "podman_dev"}
    # existing user: only the missing group is added
    accounts.ensure_group(host, "k8s")
    assert accounts.ensure_user(host, "alice", supplementary=("podman_dev", "k8s"))
    assert accounts.user_groups(host, "alice") == {"podman", "podman_dev", "k8s"}
    assert not accounts.ensure_user(host, "alice", supplementary=("k8s",))
    # the machine's real accounts are untouched
    assert "alice" not in Path("/etc/passwd").read_text().split(":")[0::6]


def test_systemd_unit_renders_and_verifies(tmp_path: Path) -> None:
    require_tool("systemd-analyze", "systemctl")
    unit = systemd.unit(
        "podsec-test.service",
        Unit=[("Description", "podsec test unit")],
        Service=[("Type", "simple"), ("ExecStart", "/bin/sleep 1"), ("NoNewPrivileges", "yes")],
        Install=[("WantedBy", "multi-user.target")],
    )
    host = Host(tmp_path)
    assert systemd.install(host, unit)
    path = tmp_path / "etc/systemd/system/podsec-test.service"
    result = systemd.verify([path])
    assert result.returncode == 0, result.stderr
    systemd.enable(host, "podsec-test.service")
    assert (
        tmp_path / "etc/systemd/system/multi-user.target.wants/podsec-test.service"
    ).is_symlink()
    bad = systemd.unit("podsec-bad.service", Service=[("ExecStart", "relative/path")])
    systemd.install(host, bad)
    assert systemd.verify([tmp_path / "etc/systemd/system/podsec-bad.service"]).returncode != 0


def test_layer_contract_fails_when_core_imports_cli(tmp_path: Path) -> None:
    require_tool("lint-imports")
    copy = tmp_path / "proj"
    shutil.copytree(ROOT / "src", copy / "src")
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    ok = subprocess.run(
        ["lint-imports"],
        cwd=copy,
        capture_output=True,
        text=True,
        env={
            "PYTHONPATH": str(copy / "src"),
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        },
    )
    assert ok.returncode == 0, ok.stdout
    bad = copy / "src/podsec/host/sneaky.py"
    bad.write_text(
        textwrap.dedent("""
        from podsec.cli import output  # a core module must never do this
    """)
    )
    broken = subprocess.run(
        ["lint-imports"],
        cwd=copy,
        capture_output=True,
        text=True,
        env={
            "PYTHONPATH": str(copy / "src"),
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        },
    )
    assert broken.returncode != 0
    assert "podsec.host.sneaky" in broken.stdout
