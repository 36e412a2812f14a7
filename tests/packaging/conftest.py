"""Builds shared by the packaging tests: the wheel (Debian's python3 -m build, from the
sdist), the four .debs (scripts/build-deb, lintian included) and the Debian 12 tree they are
installed into (scripts/debian-tree, cached under /var/cache/podsec-dev/debian-tree)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.require import missing

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}


def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    kw.setdefault("timeout", 600)
    return subprocess.run(argv, text=True, capture_output=True, check=False, **kw)  # type: ignore[call-overload,no-any-return]


def tree_copy(dest: Path) -> Path:
    """The repository as git sees it (tracked and new files; no venv, caches or builds)."""
    files = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(
        ["rsync", "-a", "--from0", "--files-from=-", f"{REPO}/", f"{dest}/"],
        input=files,
        check=True,
    )
    return dest


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """sdist and wheel, built offline with Debian's python3 (no build isolation: nothing is
    fetched); the default mode builds the wheel from the sdist, so the sdist is proven too."""
    probe = run([str(SYSTEM_PYTHON), "-c", "import build, setuptools, wheel, venv, installer"])
    if probe.returncode != 0:
        missing("Debian's python3-build, -setuptools, -wheel, -venv and -installer")
    tmp = tmp_path_factory.mktemp("dist")
    src = tree_copy(tmp / "src")
    out = tmp / "out"
    r = run(
        [
            str(SYSTEM_PYTHON),
            "-m",
            "build",
            "--no-isolation",
            "--skip-dependency-check",
            f"--outdir={out}",
            str(src),
        ],
        env={**CLEAN_ENV, "HOME": str(tmp)},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (wheel,) = out.glob("podsec-*.whl")
    (sdist,) = out.glob("podsec-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist, "tmp": tmp}


@pytest.fixture(scope="session")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """podsec, podsec-k8s, podsec-k8s-rbac, podsec-inotify: `make deb`'s script, lintian too."""
    for tool in ("dpkg-buildpackage", "dh", "lintian"):
        if run(["which", tool]).returncode != 0:
            missing(f"program {tool} (dpkg-dev, debhelper, lintian) is not installed")
    out = tmp_path_factory.mktemp("deb") / "out"
    r = run([str(REPO / "scripts/build-deb"), str(out)], env={**os.environ, **CLEAN_ENV})
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    return {p.name.split("_")[0]: p for p in out.glob("*.deb")}
