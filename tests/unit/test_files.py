import os
import stat
from pathlib import Path

import pytest

from podsec.host import files


def test_atomic_write_creates_with_mode_and_is_idempotent(tmp_path: Path) -> None:
    target = tmp_path / "d" / "secret.key"
    assert files.atomic_write(target, "k1", mode=0o600) is True
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    before = target.stat().st_mtime_ns
    assert files.atomic_write(target, "k1", mode=0o600) is False  # nothing to do
    assert target.stat().st_mtime_ns == before
    assert not (tmp_path / "d" / "secret.key.podsec-bak").exists()


def test_replacement_keeps_backup(tmp_path: Path) -> None:
    target = tmp_path / "policy.json"
    target.write_text("old")
    files.atomic_write(target, "new")
    assert target.read_text() == "new"
    assert (tmp_path / "policy.json.podsec-bak").read_text() == "old"


def test_symlink_is_backed_up_as_symlink(tmp_path: Path) -> None:
    (tmp_path / "policy_2024").write_text("versioned")
    link = tmp_path / "policy.json"
    link.symlink_to("policy_2024")
    files.atomic_write(link, "{}")
    assert not link.is_symlink() and link.read_text() == "{}"
    bak = tmp_path / "policy.json.podsec-bak"
    assert bak.is_symlink() and os.readlink(bak) == "policy_2024"


def test_failed_write_leaves_no_temp_and_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f"
    target.write_text("old")

    def boom(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="No space"):
        files.atomic_write(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_ensure_dir_mode(tmp_path: Path) -> None:
    d = tmp_path / "a" / "b"
    assert files.ensure_dir(d, mode=0o700)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert not files.ensure_dir(d, mode=0o700)


def _tree(tmp_path: Path) -> Path:
    """A --root tree whose 'daemon' and 'k8s' are not the live machine's (daemon is uid 1 here)."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("daemon:x:4001:4001::/home/daemon:/bin/sh\n")
    (root / "etc" / "group").write_text("daemon:x:4001:\nk8s:x:4002:daemon\n")
    return root


def test_owner_names_resolve_in_the_root_tree_not_the_live_passwd(tmp_path: Path) -> None:
    from podsec.host import accounts
    from podsec.host.paths import Host
    from podsec.rbac import account

    host = Host(_tree(tmp_path))
    assert (accounts.uid(host, "daemon"), accounts.gid(host, "k8s")) == (4001, 4002)
    kube = host.path("/home/daemon/.kube")
    kube.mkdir(parents=True)
    assert account.write_config(host, "daemon", kube, "apiVersion: v1\n")
    st = (kube / "config").stat()
    # the live /etc/passwd says daemon is uid 1: that is not the owner under --root
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4001, 4002, 0o600)


def test_an_owner_name_missing_from_the_tree_is_an_error(tmp_path: Path) -> None:
    from podsec.errors import UsageError
    from podsec.host import accounts
    from podsec.host.paths import Host

    with pytest.raises(UsageError, match="user root does not exist"):
        accounts.uid(Host(_tree(tmp_path)), "root")  # exists live, not in the tree


def test_atomic_write_takes_numeric_ids_only(tmp_path: Path) -> None:
    # a name here would be resolved against the live /etc/passwd whatever the --root
    with pytest.raises(TypeError, match="numeric"):
        files.atomic_write(tmp_path / "f", "x", owner="daemon")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="numeric"):
        files.ensure_dir(tmp_path / "d", group="daemon")  # type: ignore[arg-type]
    assert not (tmp_path / "f").exists()


def test_temporary_names_are_mkstemps(tmp_path: Path) -> None:
    """The temporary file beside the target is named as tempfile.mkstemp names them (what a
    kill -9 can leave, tests/hostile/test_faults.py), created 0600 and exclusively."""
    import re

    names = set()
    for _ in range(50):
        fd, name = files._temp_file(tmp_path, ".x.conf.")
        os.close(fd)
        assert re.fullmatch(r"\.x\.conf\.[a-z0-9_]{8}", Path(name).name)
        assert Path(name).stat().st_mode & 0o777 == 0o600
        names.add(name)
    assert len(names) == 50
