"""keepalived.conf + check_apiserver.sh rendered and checked by the real `keepalived -t`."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from tests.fixtures.require import require_tool
from tests.integration.lb_env import podsec

from podsec.errors import ValidationError
from podsec.lb import cluster as cl
from podsec.lb import keepalived

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "src/podsec/data/lb/cluster.example.yaml"


@pytest.fixture(autouse=True)
def _keepalived() -> None:
    require_tool("keepalived", "dash")


def _iface() -> str:
    """A real non-loopback interface (VRRP refuses lo)."""
    names = sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name != "lo")
    if not names:
        pytest.skip("no network interface besides lo")
    return names[0]


def _keepalived_t(conf: Path, script: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Check the pair as written: the config names the script by its path on the target."""
    text = conf.read_text().replace(keepalived.SCRIPT, str(script))
    probe = tmp_path / "probe.conf"
    probe.write_text(text)
    return subprocess.run(
        ["keepalived", "-t", "-f", str(probe)], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(("state", "priority"), [("MASTER", 101), ("backup", 100)])
def test_render_pair_keepalived_accepts(
    host_root: Path, tmp_path: Path, state: str, priority: int
) -> None:
    r = podsec(
        "--root",
        str(host_root),
        "lb",
        "keepalived",
        "--cluster",
        str(EXAMPLE),
        "--state",
        state,
        "--priority",
        str(priority),
        "--interface",
        _iface(),
    )
    assert r.returncode == 0, r.stderr
    conf = host_root / "etc/keepalived/keepalived.conf"
    script = host_root / "etc/keepalived/check_apiserver.sh"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert f"state {state.upper()}" in conf.read_text()
    assert f'script "{keepalived.SCRIPT}"' in conf.read_text()
    done = _keepalived_t(conf, script, tmp_path)
    assert done.returncode == 0, done.stderr
    for shell in ("dash", "sh"):
        assert subprocess.run([shell, "-n", str(script)], check=False).returncode == 0


def test_foreign_interface_is_syntax_checked_under_root(host_root: Path) -> None:
    r = podsec(
        "--root",
        str(host_root),
        "lb",
        "keepalived",
        "--cluster",
        str(EXAMPLE),
        "--state",
        "BACKUP",
        "--priority",
        "100",
        "--interface",
        "br-nothere0",
    )
    assert r.returncode == 0, r.stderr
    assert "interface br-nothere0" in (host_root / "etc/keepalived/keepalived.conf").read_text()


def test_live_check_refuses_a_missing_interface() -> None:
    c = cl.parse(EXAMPLE.read_text())
    node = keepalived.check_node("MASTER", 101, "br-nothere0")
    conf, script = keepalived.render_config(c, node), keepalived.render_script(c)
    with pytest.raises(ValidationError, match="keepalived rejects"):
        keepalived.check(conf, script, node, live=True)


def test_check_only_and_errors(host_root: Path, tmp_path: Path) -> None:
    base = ["--root", str(host_root), "lb", "keepalived", "--cluster"]
    r = podsec(
        *base,
        str(EXAMPLE),
        "--state",
        "MASTER",
        "--priority",
        "101",
        "--interface",
        _iface(),
        "--check",
    )
    assert r.returncode == 0 and "vrrp_instance VI_1" in r.stdout
    assert not (host_root / "etc/keepalived").exists()

    r = podsec(
        *base, str(EXAMPLE), "--state", "MASTER", "--priority", "300", "--interface", _iface()
    )
    assert r.returncode == 2 and "--priority must be 1–254" in r.stderr
    no_pass = tmp_path / "c.yaml"
    no_pass.write_text("vip: 10.0.0.9\ncontrol_plane: [{name: a, address: 10.0.0.1}]\n")
    r = podsec(
        *base, str(no_pass), "--state", "MASTER", "--priority", "101", "--interface", _iface()
    )
    assert r.returncode == 1 and "vrrp.auth_pass" in r.stderr
    assert not (host_root / "etc/keepalived").exists()
    r = podsec(
        *base,
        str(tmp_path / "missing.yaml"),
        "--state",
        "MASTER",
        "--priority",
        "1",
        "--interface",
        _iface(),
    )
    assert r.returncode == 1 and "does not exist" in r.stderr


def test_broken_config_is_rejected() -> None:
    node = keepalived.check_node("MASTER", 101, _iface())
    with pytest.raises(ValidationError, match="keepalived rejects"):
        keepalived.check(
            "vrrp_instance VI_1 {\n  state MASTER\n  interface " + _iface() + "\n}\n",
            "#!/bin/sh\n",
            node,
        )
