"""The kubeadm wrapper finds the real kubeadm by file identity, never itself (issue 16).

Installed under another root (``--root``), the wrapper directory was not recognised by its
path string: ``kubeadm`` found itself on PATH and called itself forever.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from podsec import config
from podsec.errors import NotFoundError
from podsec.host.paths import Host
from podsec.names import U7S_BIN
from podsec.registry import k8s_images
from podsec.u7s import runtime

ENTRY = Path(sys.executable).parent / k8s_images.WRAPPER_ENTRY


@pytest.fixture
def wrapper_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if not ENTRY.exists():
        pytest.fail(f"{ENTRY} missing: the package is not installed in this venv")
    monkeypatch.delenv(k8s_images.KUBEADM_ENV, raising=False)
    root = tmp_path / "root"
    runtime.install_bin(Host(root), user="nobody")
    return root / U7S_BIN.lstrip("/")


def fake_kubeadm(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    prog = d / "kubeadm"
    prog.write_text("#!/bin/sh\necho v1.20.2\n")
    prog.chmod(0o755)
    return prog


def test_wrapper_under_another_root_is_skipped(wrapper_dir: Path, tmp_path: Path) -> None:
    real = fake_kubeadm(tmp_path / "usr/bin")
    assert (wrapper_dir / "kubeadm").is_symlink()
    found = k8s_images.real_kubeadm(f"{wrapper_dir}:{real.parent}")
    assert found == str(real)


def test_only_the_wrapper_is_a_clear_error(wrapper_dir: Path) -> None:
    with pytest.raises(NotFoundError) as exc:
        k8s_images.real_kubeadm(str(wrapper_dir))
    assert "only podsec's own wrapper" in exc.value.message
    assert str(wrapper_dir / "kubeadm") in exc.value.message


def test_wrapper_through_a_symlinked_dir_and_a_copy(wrapper_dir: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(wrapper_dir)
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(ENTRY, copy / "kubeadm")
    real = fake_kubeadm(tmp_path / "real")
    assert k8s_images.real_kubeadm(f"{alias}:{copy}:{real.parent}") == str(real)


def test_explicit_variable_naming_the_wrapper_is_refused(
    wrapper_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PODSEC_KUBEADM reaches real_kubeadm as Settings.kubeadm
    explicit = config.load(environ={k8s_images.KUBEADM_ENV: str(wrapper_dir / "kubeadm")}).kubeadm
    with pytest.raises(NotFoundError, match="podsec's own kubeadm wrapper"):
        k8s_images.real_kubeadm("", explicit=explicit)


def test_the_installed_wrapper_does_not_call_itself(wrapper_dir: Path) -> None:
    """`kubeadm version` through the wrapper with only the wrapper on PATH ends at once with
    the error (it forked itself in a chain before)."""
    env = {k: v for k, v in os.environ.items() if k != k8s_images.KUBEADM_ENV}
    env["PATH"] = f"{wrapper_dir}:/usr/sbin:/sbin"  # no /usr/bin: no real kubeadm anywhere
    env["LC_ALL"] = env["LANG"] = "C"
    proc = subprocess.Popen(
        [str(wrapper_dir / "kubeadm"), "version"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a looping chain is killed as one group
    )
    try:
        _out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        pytest.fail("the wrapper kept calling itself")
    assert proc.returncode != 0
    assert "only podsec's own wrapper" in err, err


def test_help_through_the_wrapper_adds_podsecs_part(wrapper_dir: Path, tmp_path: Path) -> None:
    """`kubeadm init --help` through the wrapper: upstream's help, then --force, the U7S_*
    variables and examples (the seed's wrapper showed only upstream's)."""
    real = tmp_path / "real"
    real.mkdir()
    (real / "kubeadm").write_text('#!/bin/sh\necho "UPSTREAM HELP $*"\n')
    (real / "kubeadm").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("U7S_", "PODSEC", "LC_"))}
    env.update(PATH=f"{wrapper_dir}:{real}:/usr/bin:/bin", LANG="C", PODSEC_U7S_USER="nosuchu7s")
    r = subprocess.run(
        [str(wrapper_dir / "kubeadm"), "init", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    upstream = r.stdout.index("UPSTREAM HELP init --help")
    ours = r.stdout.index("podsec's wrapper")
    assert upstream < ours
    for word in ("--force", "U7S_REGISTRY", "U7S_KUBEVERSION", "Examples:", "kubeadm join"):
        assert word in r.stdout[ours:], word


def test_help_without_the_real_kubeadm_names_what_is_missing(wrapper_dir: Path) -> None:
    """`kubeadm --help` and `podsec u7s kubeadm --help` on a node without the real kubeadm
    (issue 12): podsec's part of the help, then, last, what is missing; exit 0 (it exited 2
    with only "the real kubeadm is not installed")."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("U7S_", "PODSEC", "LC_"))}
    # only the wrapper: its entry point names its interpreter, nothing else is needed
    env.update(PATH=str(wrapper_dir), LANG="C", PODSEC_U7S_USER="nosuchu7s")
    podsec = str(Path(sys.executable).parent / "podsec")
    for argv in (
        [str(wrapper_dir / "kubeadm"), "--help"],
        [str(wrapper_dir / "kubeadm"), "init", "--help"],
        [podsec, "u7s", "kubeadm", "--help"],
    ):
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (argv, r.stderr)
        out = r.stdout
        assert "podsec's wrapper" in out and "--force" in out and "U7S_REGISTRY" in out, out
        last = out.rstrip().splitlines()[-1]
        assert last.startswith("Not shown: kubeadm's own help"), last
        assert "the real kubeadm is not installed" in last and "kubernetes-kubeadm" in last
        assert "Traceback" not in r.stderr
