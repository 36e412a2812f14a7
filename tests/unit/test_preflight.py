import json
from pathlib import Path

import pytest

from podsec.host import preflight
from podsec.host.paths import Host


def fake_host(tmp_path: Path, root: Path, **overrides: str) -> Host:
    values = {
        "sys/kernel/osrelease": "6.1.0-13-amd64",
        "sys/user/max_user_namespaces": "63000",
        "sys/net/ipv4/ip_forward": "1",
        "sys/net/ipv4/ping_group_range": "0\t2147483647",
        "sys/fs/inotify/max_user_watches": "1048576",
        "1/comm": "systemd",
        "self/status": "Name: x\nCapBnd:\t000001ffffffffff\n",
    }
    values.update(overrides)
    proc = tmp_path / "proc"
    for rel, value in values.items():
        (proc / rel).parent.mkdir(parents=True, exist_ok=True)
        (proc / rel).write_text(value)
    sys_ = tmp_path / "sys"
    (sys_ / "fs/cgroup").mkdir(parents=True)
    (sys_ / "fs/cgroup/cgroup.controllers").write_text("cpu memory pids io")
    (sys_ / "fs/cgroup/cgroup.subtree_control").write_text("cpu memory pids io")
    for mod in ("br_netfilter", "vxlan"):
        (sys_ / "module" / mod).mkdir(parents=True)
    dev = tmp_path / "dev"
    (dev / "net").mkdir(parents=True)
    for rel in ("net/tun", "fuse"):
        (dev / rel).write_text("")
        (dev / rel).chmod(0o666)
    return Host(root, proc=proc, sys=sys_, dev=dev)


def by_id(checks: list[preflight.Check]) -> dict[str, preflight.Check]:
    return {c.id: c for c in checks}


def test_healthy_machine_passes(tmp_path: Path, host_root: Path) -> None:
    with (host_root / "etc/passwd").open("a") as fh:
        fh.write("u7s-admin:x:998:998::/var/lib/u7s-admin:/bin/sh\n")
    (host_root / "etc/subuid").write_text("u7s-admin:100000:65536\n")
    (host_root / "etc/subgid").write_text("u7s-admin:100000:65536\n")
    (host_root / "var/lib/systemd/linger").mkdir(parents=True)
    (host_root / "var/lib/systemd/linger/u7s-admin").write_text("")
    checks = by_id(preflight.run_all(fake_host(tmp_path, host_root), tools=False))
    bad = {k: c for k, c in checks.items() if c.status != "ok" and k != "nofile-limit"}
    assert bad == {}


@pytest.mark.parametrize(
    ("override", "check_id", "status"),
    [
        ({"sys/kernel/osrelease": "5.10.0-28-amd64"}, "kernel", "fail"),
        ({"sys/user/max_user_namespaces": "0"}, "userns", "fail"),
        ({"sys/kernel/unprivileged_userns_clone": "0"}, "userns", "fail"),
        ({"sys/net/ipv4/ip_forward": "0"}, "ip-forward", "warn"),
        ({"sys/net/ipv4/ping_group_range": "1\t0"}, "ping-group-range", "warn"),
        ({"sys/fs/inotify/max_user_watches": "8192"}, "inotify-watches", "warn"),
        ({"1/comm": "process_api"}, "init", "warn"),
        ({"self/status": "CapBnd:\t000001fffeffffff\n"}, "capabilities", "warn"),
    ],
)
def test_each_problem_is_found(
    tmp_path: Path, host_root: Path, override: dict[str, str], check_id: str, status: str
) -> None:
    checks = by_id(preflight.run_all(fake_host(tmp_path, host_root, **override), tools=False))
    assert checks[check_id].status == status
    assert checks[check_id].fix


def test_tun_mode_and_hybrid_cgroups(tmp_path: Path, host_root: Path) -> None:
    host = fake_host(tmp_path, host_root)
    (host.dev / "net/tun").chmod(0o600)
    (host.sys / "fs/cgroup/cgroup.controllers").unlink()
    (host.sys / "fs/cgroup/unified").mkdir()
    checks = by_id(preflight.run_all(host, tools=False))
    assert checks["dev-net-tun"].status == "fail"
    assert "0600" in checks["dev-net-tun"].found
    assert checks["cgroups"].status == "warn"
    assert "no resource limits" in checks["cgroups"].found
    only_crun = preflight.check_oci_runtime(
        host, finder=lambda n: "/usr/bin/crun" if n == "crun" else None
    )
    assert only_crun.status == "fail"


def test_u7s_subids_too_small(tmp_path: Path, host_root: Path) -> None:
    with (host_root / "etc/passwd").open("a") as fh:
        fh.write("u7s-admin:x:998:998::/var/lib/u7s-admin:/bin/sh\n")
    (host_root / "etc/subuid").write_text("u7s-admin:100000:1000\n")
    check = preflight.check_subids(fake_host(tmp_path, host_root))
    assert check.status == "fail" and "1000" in check.found


def test_tools_missing_required_fails_and_alternative_covers() -> None:
    tools = (
        preflight.Tool("containerd", (), "containerd", required=True, alternatives=("crio",)),
        preflight.Tool("crio", (), "cri-o", alternatives=("containerd",)),
        preflight.Tool("gpg", (), "gnupg", required=True),
    )
    checks = by_id(
        preflight.check_tools(tools, finder=lambda n: "/usr/bin/crio" if n == "crio" else None)
    )
    assert checks["tool:containerd"].status == "warn"  # crio covers it
    assert checks["tool:gpg"].status == "fail"
    assert checks["tool:gpg"].fix == "apt-get install gnupg"


def test_json_shape(tmp_path: Path, host_root: Path) -> None:
    checks = preflight.run_all(fake_host(tmp_path, host_root), tools=False)
    doc = json.loads(
        json.dumps({"checks": [c.as_dict() for c in checks], "summary": preflight.summary(checks)})
    )
    assert set(doc["checks"][0]) == {"id", "status", "found", "fix"}
    assert sum(doc["summary"].values()) == len(checks)


def test_root_containerd_is_found_running_or_enabled(tmp_path: Path, host_root: Path) -> None:
    """Debian's containerd package enables a root containerd.service; a rootless node never
    uses it, and its socket is root to whoever can open it."""
    import socket

    host = fake_host(tmp_path, host_root)
    assert preflight.check_root_containerd(host).status == "ok"
    wants = host_root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "containerd.service").symlink_to("/lib/systemd/system/containerd.service")
    enabled = preflight.check_root_containerd(host)
    assert (enabled.status, enabled.fix) == ("warn", "systemctl disable --now containerd.service")
    assert "enabled" in enabled.found
    run = host_root / "run/containerd"
    run.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(run / "containerd.sock"))
        running = preflight.check_root_containerd(host)
    assert running.status == "warn" and "/run/containerd/containerd.sock" in running.found
    (wants / "containerd.service").unlink()
    (run / "containerd.sock").unlink()
    (run / "containerd.sock").write_text("")  # a stale regular file is not a daemon
    assert preflight.check_root_containerd(host).status == "ok"
