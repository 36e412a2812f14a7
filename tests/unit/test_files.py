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
