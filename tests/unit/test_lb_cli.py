"""`podsec lb`, `podsec ingress` and `podsec u7s ports` command lines: errors, exit codes,
Russian messages, pure paths (no haproxy/keepalived/RootlessKit needed)."""

import json
import os
import subprocess
import sys
from pathlib import Path

MANIFEST = (
    Path(__file__).resolve().parents[1] / "data/ingress-nginx-controller-v1.8.0-baremetal.yaml"
)


def run(
    *args: str, env: dict[str, str] | None = None, module: str = "podsec.cli"
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("LANG", "LC_", "PODSEC"))}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=full, timeout=60
    )


def test_missing_cluster_file(tmp_path: Path) -> None:
    r = run("lb", "haproxy", "--cluster", str(tmp_path / "nope.yaml"))
    assert r.returncode == 1
    assert r.stderr.strip() == f"podsec: cluster file {tmp_path / 'nope.yaml'} does not exist"


def test_invalid_cluster_one_line_in_russian(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("vip: 10.0.0.9\ncontrol_plane: [{name: a, address: 10.0.0.1}]\nextra: 1\n")
    r = run("lb", "haproxy", "--cluster", str(bad), env={"LANG": "ru_RU.UTF-8"})
    assert r.returncode == 1
    assert r.stderr.strip() == f"podsec: {bad}: неизвестный ключ extra"


def test_check_apiserver_needs_a_target() -> None:
    r = run("lb", "check-apiserver")
    assert r.returncode == 2 and "--cluster FILE or --vip ADDR" in r.stderr


def test_keepalived_bad_state_is_a_usage_error(tmp_path: Path) -> None:
    r = run(
        "lb",
        "keepalived",
        "--cluster",
        "x",
        "--state",
        "SLAVE",
        "--priority",
        "1",
        "--interface",
        "eth0",
    )
    assert r.returncode == 2 and "SLAVE" in r.stderr


def test_ingress_prepare_in_place_with_backup_and_json(tmp_path: Path) -> None:
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(MANIFEST.read_text())
    r = run("ingress", "prepare", str(manifest), "--node-port", "31080", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["nodePort"] == 31080 and len(data["commands"]) == 4
    assert "nodePort: 31080" in manifest.read_text()
    assert (tmp_path / "deploy.yaml.podsec-bak").read_text() == MANIFEST.read_text()
    again = run("ingress", "prepare", str(manifest), "--node-port", "31080")
    assert again.returncode == 0 and "up to date" in again.stderr


def test_ingress_prepare_errors(tmp_path: Path) -> None:
    r = run("ingress", "prepare", str(tmp_path / "missing.yaml"))
    assert r.returncode == 1 and "does not exist" in r.stderr
    r = run("ingress", "prepare", str(MANIFEST), "--node-port", "80", "--output", "-")
    assert r.returncode == 2 and "30000" in r.stderr


def test_ports_group_standalone_errors(tmp_path: Path) -> None:
    r = run("add", "70000", "--socket", str(tmp_path / "s"), module="podsec.cli.u7s_ports")
    assert r.returncode == 2 and "out of range" in r.stderr
    r = run("list", "--socket", str(tmp_path / "none.sock"), module="podsec.cli.u7s_ports")
    assert r.returncode == 1 and "cannot reach RootlessKit's API" in r.stderr
    assert "Traceback" not in r.stderr
