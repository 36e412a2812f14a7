"""The wheel and the sdist work without the repository: built from a copy of the tree with
Debian's python3 (build, setuptools), the wheel built from the sdist, installed into a fresh
venv over Debian's own python3-* libraries, every program run from there."""

from __future__ import annotations

import json
import subprocess
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.require import K8S_BIN
from tests.packaging.conftest import SYSTEM_PYTHON, run

REPO = Path(__file__).resolve().parents[2]
# Nagios plugins answer --help with UNKNOWN (3), as monitoring-plugins do
PLUGIN_HELP_EXIT = {
    "podsec-inotify-check-policy",
    "podsec-inotify-check-images",
    "podsec-inotify-check-vuln",
    "podsec-inotify-check-keys",
    "podsec-inotify-check-drift",
    "podsec-inotify-check-authz",
    "podsec-inotify-check-certs",
}


def _run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return run(argv, timeout=300, **kw)


@pytest.fixture(scope="module")
def built(dist: dict[str, Path]) -> dict[str, Path]:
    """A fresh venv over Debian's python3-* libraries (system site packages), the wheel in it."""
    tmp = dist["tmp"] / "venv-test"
    tmp.mkdir()
    venv = tmp / "venv"
    subprocess.run(
        [str(SYSTEM_PYTHON), "-m", "venv", "--system-site-packages", str(venv)], check=True
    )
    r = _run(
        [str(venv / "bin/pip"), "install", "--no-index", "--no-deps", "-q", str(dist["wheel"])]
    )
    assert r.returncode == 0, r.stderr
    return {"wheel": dist["wheel"], "sdist": dist["sdist"], "venv": venv, "tmp": tmp}


def _env(built: dict[str, Path], **extra: str) -> dict[str, str]:
    # the built Kubernetes binaries, when present: the kubeadm wrapper's --help is kubeadm's
    k8s = f"{K8S_BIN}:" if K8S_BIN.is_dir() else ""
    return {
        "PATH": f"{built['venv'] / 'bin'}:{k8s}/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(built["tmp"]),
        "LC_ALL": "C.UTF-8",
        **extra,
    }


def test_wheel_carries_data_catalogues_and_scripts(built: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(built["wheel"]).namelist())
    assert "podsec/locale/ru/LC_MESSAGES/podsec.mo" in names
    assert "podsec/data/audit-policy.yaml" in names
    assert "podsec/data/monitor/systemd/podsec-inotify-check-policy.timer" in names
    assert "podsec/py.typed" in names
    data = REPO / "src/podsec/data"
    for f in data.rglob("*"):
        if f.is_file() and "__pycache__" not in f.parts:
            assert f"podsec/data/{f.relative_to(data)}" in names, f
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(built["wheel"]).read(entry_points).decode()
    for prog in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]:
        assert f"{prog} = " in text


def test_sdist_builds_everything_on_its_own(built: dict[str, Path]) -> None:
    with tarfile.open(built["sdist"]) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    for path in (
        "po/ru/common.po",
        "po/ru/packaging.po",
        "scripts/msgfmt.py",
        "setup.py",
        "debian/control",
        "debian/rules",
        "podsec.spec",
        "packaging/stage.py",
        "packaging/podsec.toml",
        "src/podsec/cli/manpage.py",
    ):
        assert path in names, path


def test_installed_podsec_is_the_wheels(built: dict[str, Path]) -> None:
    r = _run(
        [str(built["venv"] / "bin/python"), "-c", "import podsec; print(podsec.__file__)"],
        env=_env(built),
        cwd=built["tmp"],
    )
    assert r.stdout.startswith(str(built["venv"])), r.stdout + r.stderr
    # Debian's python3-* libraries satisfy every requirement of the wheel
    check = (
        "from importlib.metadata import requires, version\n"
        "from packaging.requirements import Requirement\n"
        "for text in requires('podsec'):\n"
        "    req = Requirement(text)\n"
        "    if req.marker and not req.marker.evaluate({'extra': ''}):\n"
        "        continue\n"
        "    have = version(req.name)\n"
        "    assert req.specifier.contains(have), (text, have)\n"
        "    print(req.name, have)\n"
    )
    r = _run([str(built["venv"] / "bin/python"), "-c", check], env=_env(built))
    assert r.returncode == 0, r.stderr
    assert {line.split()[0].lower() for line in r.stdout.splitlines()} >= {"click", "cryptography"}


def test_every_program_runs_from_the_venv(built: dict[str, Path]) -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    for prog in scripts:
        exe = built["venv"] / "bin" / prog
        assert exe.exists(), prog
        r = _run([str(exe), "--help"], env=_env(built), cwd=built["tmp"])
        want = 3 if prog in PLUGIN_HELP_EXIT else 0
        assert r.returncode == want and "Usage:" in r.stdout, (prog, r.returncode, r.stderr[-500:])
        assert "Traceback" not in r.stderr


def test_russian_catalogue_and_data_files_work(built: dict[str, Path]) -> None:
    r = _run([str(built["venv"] / "bin/podsec"), "--help"], env=_env(built, LANGUAGE="ru"))
    assert "Использование:" in r.stdout, r.stdout
    root = built["tmp"] / "root"
    root.mkdir()
    r = _run(
        [str(built["venv"] / "bin/podsec"), "--root", str(root), "monitor", "install"],
        env=_env(built),
    )
    assert r.returncode == 0, r.stderr
    timer = root / "etc/systemd/system/podsec-inotify-check-policy.timer"
    assert "OnCalendar=hourly" in timer.read_text()
    assert (root / "etc/nagwad/podsec.sed").exists()


def test_doctor_runs_from_the_venv(built: dict[str, Path]) -> None:
    r = _run([str(built["venv"] / "bin/podsec"), "doctor", "--json"], env=_env(built))
    assert r.returncode in (0, 1), r.stderr
    report = json.loads(r.stdout)
    assert report and "Traceback" not in r.stderr
