"""haproxy.cfg rendered, checked by the real `haproxy -c`, edited safely, and a real haproxy in
front of a real kube-apiserver (plus a dead one) doing the /healthz checks."""

from __future__ import annotations

import csv
import io
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.fixtures.kube import ControlPlane
from tests.fixtures.require import free_port, require_tool
from tests.integration import lb_env
from tests.integration.lb_env import podsec, wait_until

from podsec.errors import ValidationError
from podsec.host.paths import Host
from podsec.lb import cluster as cl
from podsec.lb import haproxy, keepalived

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "src/podsec/data/lb/cluster.example.yaml"


@pytest.fixture(autouse=True)
def _haproxy() -> None:
    require_tool("haproxy")


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, check=False
    )


def test_render_writes_a_config_haproxy_accepts(host_root: Path) -> None:
    r = podsec("--root", str(host_root), "lb", "haproxy", "--cluster", str(EXAMPLE))
    assert r.returncode == 0, r.stderr
    cfg = host_root / "etc/haproxy/haproxy.cfg"
    desc = host_root / "etc/haproxy/podsec-cluster.yaml"
    assert _check(cfg).returncode == 0
    assert "server master02 192.168.122.81:6443 check" in cfg.read_text()
    assert stat.S_IMODE(desc.stat().st_mode) == 0o600  # holds the VRRP password
    assert cl.parse(desc.read_text()) == cl.parse(EXAMPLE.read_text())

    again = podsec("--root", str(host_root), "lb", "haproxy", "--cluster", str(EXAMPLE))
    assert again.returncode == 0 and "up to date" in again.stderr
    assert not (host_root / "etc/haproxy/haproxy.cfg.podsec-bak").exists()


def test_check_only_prints_and_writes_nothing(host_root: Path) -> None:
    r = podsec("--root", str(host_root), "lb", "haproxy", "--cluster", str(EXAMPLE), "--check")
    assert r.returncode == 0, r.stderr
    assert "backend apiserver" in r.stdout and "valid" in r.stderr
    assert not (host_root / "etc/haproxy").exists()


def test_rejected_config_leaves_the_live_file_alone(host_root: Path, tmp_path: Path) -> None:
    live = host_root / "etc/haproxy/haproxy.cfg"
    live.parent.mkdir(parents=True)
    live.write_text("# the admin's working config\n")
    data = yaml.safe_load(EXAMPLE.read_text())
    data["haproxy"] = {"user": f"nosuchuser{tmp_path.name[-6:]}"}
    bad = tmp_path / "cluster.yaml"
    bad.write_text(yaml.safe_dump(data))
    r = podsec("--root", str(host_root), "lb", "haproxy", "--cluster", str(bad))
    assert r.returncode == 1
    assert "haproxy rejects the configuration" in r.stderr and "cannot find user" in r.stderr
    assert live.read_text() == "# the admin's working config\n"
    assert sorted(p.name for p in live.parent.iterdir()) == ["haproxy.cfg"]

    bad.write_text("vip: 10.0.0.1\ncontrol_plane: [{name: m, address: 10.0.0.1}]\n")
    r = podsec("--root", str(host_root), "lb", "haproxy", "--cluster", str(bad))
    assert (
        r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "must differ" in r.stderr
    )


def test_add_and_remove_server(host_root: Path) -> None:
    root = ["--root", str(host_root)]
    assert podsec(*root, "lb", "haproxy", "--cluster", str(EXAMPLE)).returncode == 0
    cfg = host_root / "etc/haproxy/haproxy.cfg"

    r = podsec(*root, "lb", "add-server", "master03", "192.168.122.82")
    assert r.returncode == 0, r.stderr
    r = podsec(*root, "lb", "add-server", "node02", "192.168.122.91", "--ingress")
    assert r.returncode == 0, r.stderr
    text = cfg.read_text()
    assert "server master03 192.168.122.82:6443 check check-ssl verify none" in text
    assert "server node02 192.168.122.91:31000 check" in text
    assert _check(cfg).returncode == 0
    assert (host_root / "etc/haproxy/haproxy.cfg.podsec-bak").exists()

    r = podsec(*root, "lb", "add-server", "master03", "192.168.122.83")
    assert r.returncode == 2 and "already exists" in r.stderr  # bad arguments exit 2 (issue 15)
    r = podsec(*root, "lb", "add-server", "bad name", "192.168.122.83")
    assert r.returncode == 2 and "invalid server name" in r.stderr

    r = podsec(*root, "lb", "remove-server", "master01")
    assert r.returncode == 0, r.stderr
    assert "master01" not in cfg.read_text() and _check(cfg).returncode == 0
    r = podsec(*root, "lb", "remove-server", "ghost")
    assert r.returncode == 1 and "no server named ghost" in r.stderr

    # a hand edit is never silently lost
    cfg.write_text(cfg.read_text() + "# tuned by hand\n")
    r = podsec(*root, "lb", "remove-server", "master02")
    assert r.returncode == 1 and "changed since podsec rendered it" in r.stderr
    assert "# tuned by hand" in cfg.read_text()
    r = podsec(*root, "lb", "remove-server", "master02", "--force")
    assert r.returncode == 0 and "master02" not in cfg.read_text()


def test_add_server_needs_a_podsec_config(host_root: Path) -> None:
    r = podsec("--root", str(host_root), "lb", "add-server", "m", "10.0.0.1")
    assert r.returncode == 2 and "was not rendered by podsec" in r.stderr


def _show_stat(sock: Path) -> dict[str, str]:
    """server name → status from haproxy's stats socket."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock))
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
    return {r["svname"]: r["status"] for r in rows if r["pxname"] == "apiserver"}


@pytest.fixture
def sandbox_haproxy(
    control_plane: ControlPlane, tmp_path: Path
) -> Iterator[tuple[cl.Cluster, Path]]:
    """haproxy (no chroot, no user switch, stats socket in tmp) on a free port in front of the
    real apiserver and of a port where nothing listens."""
    lb_port, dead = free_port(), free_port()
    c = cl.parse_data(
        {
            "vip": "10.255.255.254",  # not on this machine: only the local check runs
            "lb_port": lb_port,
            "control_plane": [
                {"name": "master01", "address": "127.0.0.1", "port": control_plane.port},
                {"name": "master02", "address": "127.0.0.1", "port": dead},
            ],
            "vrrp": {"auth_pass": "test"},
            "haproxy": {
                "bind": "127.0.0.1",
                "log": None,
                "chroot": None,
                "user": None,
                "group": None,
                "stats_socket": str(tmp_path / "admin.sock"),
            },
        }
    )
    written = haproxy.install(Host(tmp_path), c, output=tmp_path / "haproxy.cfg")
    proc = lb_env.start(["haproxy", "-db", "-f", str(written.config)], tmp_path / "haproxy.log")
    try:
        assert wait_until((tmp_path / "admin.sock").exists, 15), (
            tmp_path / "haproxy.log"
        ).read_text()
        yield c, tmp_path / "admin.sock"
    finally:
        lb_env.stop(proc)


@pytest.mark.cluster
def test_haproxy_balances_to_the_healthy_apiserver(
    control_plane: ControlPlane, sandbox_haproxy: tuple[cl.Cluster, Path], tmp_path: Path
) -> None:
    c, stats = sandbox_haproxy
    # the /healthz check over TLS marks the real apiserver UP and the dead port DOWN
    assert wait_until(
        lambda: _show_stat(stats) == {"master01": "UP", "master02": "DOWN", "BACKEND": "UP"}, 30
    ), _show_stat(stats)
    for _ in range(4):  # roundrobin would hit the dead one half the time
        r = control_plane.kubectl(
            "--server", f"https://127.0.0.1:{c.lb_port}", "get", "--raw", "/healthz"
        )
        assert r.stdout.strip() == "ok"

    # the Python check and the shipped POSIX script agree: haproxy answers
    r = podsec("lb", "check-apiserver", "--vip", str(c.vip), "--port", str(c.lb_port), "--json")
    assert r.returncode == 0, r.stderr
    script = tmp_path / "check_apiserver.sh"
    script.write_text(keepalived.render_script(c))
    for shell in ("dash", "sh"):
        assert subprocess.run([shell, "-n", str(script)], check=False).returncode == 0
        assert (
            subprocess.run([shell, str(script)], check=False, capture_output=True).returncode == 0
        )


@pytest.mark.cluster
def test_checks_fail_when_haproxy_is_gone(tmp_path: Path) -> None:
    port = free_port()
    c = cl.parse_data(
        {
            "vip": "10.255.255.254",
            "lb_port": port,
            "control_plane": [{"name": "m", "address": "127.0.0.1"}],
        }
    )
    r = podsec("lb", "check-apiserver", "--vip", str(c.vip), "--port", str(port))
    assert r.returncode == 1 and "Error GET https://127.0.0.1:" in r.stderr
    script = tmp_path / "check_apiserver.sh"
    script.write_text(keepalived.render_script(c))
    done = subprocess.run(["dash", str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "*** Error GET" in done.stderr


def test_check_rejects_garbage() -> None:
    with pytest.raises(ValidationError, match="haproxy rejects"):
        haproxy.check("frontend x\n    bind *:notaport\n")


HAND_WRITTEN = """global
    log /dev/log local0
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend intranet
    bind *:8080
    default_backend wiki
backend wiki
    server wiki1 10.1.1.1:80
"""


def test_a_hand_written_haproxy_cfg_is_not_replaced_without_force(host_root: Path) -> None:
    """issue 16: `lb haproxy` replaced an administrator's haproxy.cfg wholesale (its other
    frontends gone, only a .podsec-bak left). Now it refuses, naming them; --force replaces
    it and keeps the old file; the haproxy package's own file (global/defaults) is replaced."""
    live = host_root / "etc/haproxy/haproxy.cfg"
    live.parent.mkdir(parents=True)
    live.write_text(HAND_WRITTEN)
    r = podsec("--root", str(host_root), "lb", "haproxy", "--cluster", str(EXAMPLE))
    assert r.returncode == 1, r.stderr
    assert "frontend intranet, backend wiki" in r.stderr and "--force" in r.stderr
    assert live.read_text() == HAND_WRITTEN
    assert sorted(p.name for p in live.parent.iterdir()) == ["haproxy.cfg"]
    r = podsec("--root", str(host_root), "lb", "haproxy", "--cluster", str(EXAMPLE), "--force")
    assert r.returncode == 0, r.stderr
    assert "backend apiserver" in live.read_text()
    assert (live.parent / "haproxy.cfg.podsec-bak").read_text() == HAND_WRITTEN
    # podsec's own file, edited by hand since: refused too
    live.write_text(live.read_text() + "listen stats\n    bind *:9000\n")
    r = podsec("--root", str(host_root), "lb", "haproxy", "--cluster", str(EXAMPLE))
    assert r.returncode == 1 and "changed since podsec rendered it" in r.stderr


def test_the_packages_default_haproxy_cfg_is_replaced(host_root: Path) -> None:
    live = host_root / "etc/haproxy/haproxy.cfg"
    live.parent.mkdir(parents=True)
    default = HAND_WRITTEN.split("frontend", maxsplit=1)[0]
    live.write_text(default)
    r = podsec("--root", str(host_root), "lb", "haproxy", "--cluster", str(EXAMPLE))
    assert r.returncode == 0, r.stderr
    assert (live.parent / "haproxy.cfg.podsec-bak").read_text() == default
