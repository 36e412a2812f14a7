from pathlib import Path

import pytest

from podsec.errors import UsageError
from podsec.host import accounts, etc_hosts, sysctl
from podsec.host.paths import Host


def test_hosts_idempotent_and_no_duplicates(host_root: Path) -> None:
    host = Host(host_root)
    names = ["registry.local", "sigstore.local", "trivy.local"]
    assert etc_hosts.ensure_names(host, "192.0.2.10", names)
    text = (host_root / "etc/hosts").read_text()
    assert etc_hosts.ensure_names(host, "192.0.2.10", names) is False
    assert (host_root / "etc/hosts").read_text() == text
    assert text.count("registry.local") == 1
    assert etc_hosts.lookup(host, "sigstore.local") == "192.0.2.10"


def test_hosts_conflict_refused_then_forced(host_root: Path) -> None:
    host = Host(host_root)
    (host_root / "etc/hosts").write_text("10.0.0.5 registry.local other.name # keep\n")
    with pytest.raises(UsageError, match=r"already maps registry\.local to 10\.0\.0\.5"):
        etc_hosts.ensure_names(host, "192.0.2.10", ["registry.local"])
    assert "10.0.0.5 registry.local" in (host_root / "etc/hosts").read_text()
    etc_hosts.ensure_names(host, "192.0.2.10", ["registry.local"], force=True)
    entries = etc_hosts.parse((host_root / "etc/hosts").read_text())
    assert [e for e in entries if "registry.local" in e.names] == [
        etc_hosts.HostsEntry("192.0.2.10", ("registry.local",))
    ]
    assert etc_hosts.lookup(host, "other.name") == "10.0.0.5"


def test_hosts_rejects_non_ip(host_root: Path) -> None:
    with pytest.raises(UsageError, match="not an IP"):
        etc_hosts.ensure_names(Host(host_root), "1.2.3", ["registry.local"])


def test_subids_allocation_avoids_overlap(host_root: Path) -> None:
    (host_root / "etc/subuid").write_text("alice:100000:65536\nbob:231072:65536\n")
    (host_root / "etc/subgid").write_text("alice:100000:65536\ncarol:165536:65536\n")
    uid, gid = accounts.ensure_subids(Host(host_root), "u7s-admin")
    # first id free in BOTH files, same numbers for uids and gids
    assert uid.start == gid.start == 296608
    assert uid.count == 65536
    # idempotent
    assert accounts.ensure_subids(Host(host_root), "u7s-admin") == (uid, gid)
    assert (host_root / "etc/subuid").read_text().count("u7s-admin") == 1


def test_subids_respect_login_defs(host_root: Path) -> None:
    (host_root / "etc/login.defs").write_text("SUB_UID_MIN 500000\nSUB_GID_MIN 500000\n")
    uid, _gid = accounts.ensure_subids(Host(host_root), "x")
    assert uid.start == 500000


def test_names_are_validated() -> None:
    for bad in ("Root", "a b", "x;reboot", "$(id)", "", "-x", "alice\n", "."):
        assert not accounts.valid_name(bad)
    assert accounts.valid_name("u7s-admin") and accounts.valid_name("podman_dev")


def test_sysctl_file_not_applied_off_root(host_root: Path) -> None:
    host = Host(host_root)
    assert sysctl.ensure_file(
        host, "90-ipforward.conf", {"net.ipv4.ip_forward": "1"}, comment="u7s"
    )
    text = (host_root / "etc/sysctl.d/90-ipforward.conf").read_text()
    assert "net.ipv4.ip_forward = 1" in text
    assert not sysctl.ensure_file(
        host, "90-ipforward.conf", {"net.ipv4.ip_forward": "1"}, comment="u7s"
    )


def test_host_path_requires_absolute(tmp_path: Path) -> None:
    host = Host(tmp_path)
    assert host.path("/etc/hosts") == tmp_path / "etc/hosts"
    assert host.unroot(tmp_path / "etc/hosts") == "/etc/hosts"
    with pytest.raises(ValueError):
        host.path("etc/hosts")
