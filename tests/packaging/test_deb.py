"""The four .debs from `make deb`'s script: lintian clean (build-deb fails otherwise), every
program where the split and the seed say, its man pages (EN, RU) and completion beside it,
units, conffiles, maintainer scripts, and dependencies that Debian 12 itself provides."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.packaging.conftest import REPO, run

PACKAGES = {"podsec", "podsec-k8s", "podsec-k8s-rbac", "podsec-inotify"}


def _stage_module():  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.spec_from_file_location("podsec_stage", REPO / "packaging/stage.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _contents(deb: Path) -> dict[str, str]:
    """path → symlink target ('' for other entries)."""
    out = {}
    r = subprocess.run(["dpkg-deb", "-c", str(deb)], text=True, capture_output=True, check=True)
    for line in r.stdout.splitlines():
        fields = line.split(None, 5)
        name = fields[5]
        target = ""
        if " -> " in name:
            name, target = name.split(" -> ", 1)
        out[name.removeprefix(".")] = target
    return out


@pytest.fixture(scope="module")
def contents(debs: dict[str, Path]) -> dict[str, dict[str, str]]:
    assert set(debs) == PACKAGES
    return {pkg: _contents(deb) for pkg, deb in debs.items()}


def _field(deb: Path, name: str) -> str:
    return run(["dpkg-deb", "-f", str(deb), name]).stdout.strip()


def test_programs_pages_and_completion_go_together(contents: dict[str, dict[str, str]]) -> None:
    stage = _stage_module()
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    for prog in scripts:
        package = stage.package_of_program(prog)
        files = contents[package]
        assert f"/usr/bin/{prog}" in files, (prog, package)
        assert f"/usr/share/man/man1/{prog}.1.gz" in files, prog
        assert f"/usr/share/man/ru/man1/{prog}.1.gz" in files, prog
        assert f"/usr/share/bash-completion/completions/{prog}" in files, prog
        assert f"/usr/share/zsh/vendor-completions/_{prog}" in files, prog
        for other in PACKAGES - {package}:
            assert f"/usr/bin/{prog}" not in contents[other]
    # the seed's split: u7s in podsec-k8s, plugins in podsec-inotify, rbac on its own
    assert "/usr/bin/podsec-u7s-kubeadm" in contents["podsec-k8s"]
    assert "/usr/bin/podsec-inotify-check-policy" in contents["podsec-inotify"]
    assert "/usr/bin/podsec-k8s-rbac-bindrole" in contents["podsec-k8s-rbac"]
    assert "/usr/share/man/man1/podsec-rbac-bind.1.gz" in contents["podsec-k8s-rbac"]
    assert "/usr/share/man/man1/podsec-u7s.1.gz" in contents["podsec-k8s"]
    assert "/usr/share/man/man1/podsec.1.gz" in contents["podsec"]
    python = [
        p for p in contents["podsec"] if p.startswith("/usr/lib/python3/dist-packages/podsec/")
    ]
    assert any(p.endswith("/locale/ru/LC_MESSAGES/podsec.mo") for p in python)
    assert any(p.endswith("/data/audit-policy.yaml") for p in python)
    for other in PACKAGES - {"podsec"}:
        assert not any("/dist-packages/" in p for p in contents[other]), other


def test_u7s_programs_where_the_seed_says(contents: dict[str, dict[str, str]]) -> None:
    k8s = contents["podsec-k8s"]
    base = "/usr/libexec/podsec/u7s/bin"
    # dh_link makes them relative; they resolve to the programs in /usr/bin
    assert (Path(base) / k8s[f"{base}/kubeadm"]).resolve() == Path("/usr/bin/podsec-u7s-kubeadm")
    assert (Path(base) / k8s[f"{base}/nsenter_u7s"]).resolve() == Path("/usr/bin/nsenter_u7s")
    assert k8s[f"{base}/rootlessctl"] == ""  # a script bound to u7s-admin's API socket


def test_units_and_conffiles(debs: dict[str, Path], contents: dict[str, dict[str, str]]) -> None:
    units = sorted(
        p for p in contents["podsec-inotify"] if p.startswith("/lib/systemd/system/podsec")
    )
    data = sorted((REPO / "src/podsec/data/monitor/systemd").iterdir())
    assert [Path(u).name for u in units] == [d.name for d in data]
    conffiles = {}
    for pkg, deb in debs.items():
        ctl = subprocess.run(
            ["dpkg-deb", "-I", str(deb), "conffiles"], text=True, capture_output=True
        )
        conffiles[pkg] = set(ctl.stdout.split()) if ctl.returncode == 0 else set()
    assert "/etc/podsec/podsec.toml" in conffiles["podsec"]
    assert {
        "/etc/nagios/nrpe-commands/podsec-commands.cfg",
        "/etc/icinga2/conf.d/podsec.conf",
        "/etc/nagwad/podsec.sed",
        "/etc/sysctl.d/90-podsec-inotify.conf",
    } <= conffiles["podsec-inotify"]
    # every file under /etc is a conffile
    for pkg, files in contents.items():
        etc = {p for p in files if p.startswith("/etc/") and not p.endswith("/")}
        assert etc <= conffiles[pkg], (pkg, etc - conffiles[pkg])


def test_maintainer_scripts(debs: dict[str, Path]) -> None:
    def script(pkg: str, name: str) -> str:
        r = subprocess.run(["dpkg-deb", "-I", str(debs[pkg]), name], text=True, capture_output=True)
        return r.stdout if r.returncode == 0 else ""

    assert "addgroup --quiet --system" in script("podsec", "postinst")
    k8s = script("podsec-k8s", "postinst")
    assert "adduser --quiet --system --ingroup" in k8s and "/var/lib/u7s-admin" in k8s
    assert 'if [ "$1" = purge ]' in script("podsec-k8s", "postrm")
    assert "k8s" in script("podsec-k8s-rbac", "postinst")
    # timers and watchers are not started or enabled by installing
    inotify = script("podsec-inotify", "postinst")
    assert "deb-systemd-invoke start" not in inotify
    # dh_installsystemd --no-enable: only units the administrator enabled are re-enabled
    for line in inotify.splitlines():
        if "deb-systemd-helper enable" in line:
            assert "was-enabled" in inotify


def test_dependencies_are_debian_packages(debs: dict[str, Path]) -> None:
    podsec = _field(debs["podsec"], "Depends")
    for name in (
        "python3-click",
        "python3-cryptography",
        "python3-kubernetes",
        "python3-rich",
        "python3-ruamel.yaml",
        "python3-yaml",
        "podman",
        "skopeo",
    ):
        assert name in podsec, name
    k8s = _field(debs["podsec-k8s"], "Depends")
    for name in ("rootlesskit", "slirp4netns", "containerd | cri-o", "uidmap", "podsec (= "):
        assert name in k8s, name
    # every first alternative exists in Debian 12's archive (apt's lists on this machine)
    names = set()
    for deb in debs.values():
        for field in ("Depends", "Recommends"):
            for dep in _field(deb, field).split(","):
                name = dep.split("|")[0].split("(")[0].strip().removesuffix(":any")
                if name and not name.startswith("podsec"):
                    names.add(name)
    r = run(["apt-cache", "show", "--no-all-versions", *sorted(names)])
    found = {
        line.split(": ", 1)[1] for line in r.stdout.splitlines() if line.startswith("Package: ")
    }
    assert names <= found | {"python3"}, names - found
