"""The clean-room guard (tests/machine_guard.py) on a tree of its own: what it names, what it
lets pass. Its run over the real machine is tests/integration/test_machine_guard.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from tests import machine_guard as guard


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "etc"
    (root / "podsec").mkdir(parents=True)
    (root / "podsec/podsec.toml").write_text("a = 1\n")
    (root / "hosts").write_text("127.0.0.1 localhost\n")
    (root / "cache/keep").mkdir(parents=True)
    os.symlink("hosts", root / "hosts.link")
    return root


def _changes(root: Path, act, ignored=()) -> list[str]:  # type: ignore[no-untyped-def]
    before = guard.snapshot([str(root)], ignored)
    act()
    return [str(c) for c in guard.compare(before, guard.snapshot([str(root)], ignored), ignored)]


def test_nothing_done_nothing_named(tree: Path) -> None:
    assert _changes(tree, lambda: None) == []


def test_a_created_file_is_named(tree: Path) -> None:
    leak = tree / "kubernetes/admin.conf"
    out = _changes(tree, lambda: (leak.parent.mkdir(), leak.write_text("x")))
    # the new directory once, with what is below it
    assert out == [f"created  {tree}/kubernetes (and 1 below)"]


def test_created_and_removed_again_is_no_change(tree: Path) -> None:
    # the directory's mtime changed, nothing else: not a change
    tmp = tree / "podsec/scratch"
    assert _changes(tree, lambda: (tmp.write_text("x"), tmp.unlink())) == []


def test_modified_removed_chmod_and_retargeted_are_named(tree: Path) -> None:
    def act() -> None:
        (tree / "podsec/podsec.toml").write_text("a = 2\n")
        (tree / "hosts").chmod(0o600)
        os.unlink(tree / "hosts.link")
        os.symlink("podsec", tree / "hosts.link")
        (tree / "cache/keep").rmdir()

    out = _changes(tree, act)
    assert f"removed  {tree}/cache/keep" in out
    changed = {line.split()[1]: line for line in out if line.startswith("changed")}
    assert "mode 644 → 600" in changed[f"{tree}/hosts"]
    assert "target hosts → podsec" in changed[f"{tree}/hosts.link"]
    assert "size 6 → 6" not in changed[f"{tree}/podsec/podsec.toml"]
    assert "mtime" in changed[f"{tree}/podsec/podsec.toml"]


def test_a_directory_made_private_is_named(tree: Path) -> None:
    out = _changes(tree, lambda: (tree / "podsec").chmod(0o700))
    assert out == [f"changed  {tree}/podsec (mode 755 → 700)"]


def test_ignored_paths_and_their_new_parents_are_not_named(tree: Path) -> None:
    ignored = (f"{tree}/cache/keep", f"{tree}/pipcache/pip")

    def act() -> None:
        (tree / "cache/keep/blob").write_text("x")
        (tree / "pipcache/pip").mkdir(parents=True)
        (tree / "pipcache/pip/wheel").write_text("x")

    assert _changes(tree, act, ignored) == []
    # but a parent that also got something else is named
    out = _changes(tree, lambda: (tree / "pipcache/other").write_text("x"), ignored)
    assert out == [f"created  {tree}/pipcache/other"]


def test_run_fails_naming_the_path_a_command_left(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leak = tree / "leftover"
    code = f"open({str(leak)!r}, 'w').write('x')"
    rc = guard.run([sys.executable, "-c", code], roots=(str(tree),))
    assert rc == guard.FAILED
    err = capsys.readouterr().err
    assert f"created  {leak}" in err
    assert "changed the machine outside its sandboxes (1)" in err


def test_run_keeps_the_command_s_own_failure(tree: Path) -> None:
    assert guard.run([sys.executable, "-c", "raise SystemExit(5)"], roots=(str(tree),)) == 5


def test_run_passes_when_the_command_leaves_nothing(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert guard.run([sys.executable, "-c", "pass"], roots=(str(tree),)) == 0
    assert "the machine is as it was" in capsys.readouterr().out


def test_the_declared_caches_are_pruned_from_the_walk() -> None:
    argv = guard._find_argv("/var", guard.IGNORED)
    assert "/var/cache/podsec-dev" in argv and "/root/.cache/pip" not in argv
    assert argv[argv.index("-prune") - 1] == ")"


def test_an_empty_run_directory_a_tool_made_is_not_a_change(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    netns = tmp_path / "netns"
    monkeypatch.setattr(guard, "EMPTY_OK", {str(netns): "ip netns"})
    assert _changes(tmp_path, netns.mkdir) == []
    # a namespace's file left in it is
    assert _changes(tmp_path, lambda: (netns / "leaked").write_text("")) == [
        f"created  {netns}/leaked"
    ]
