"""The ALT spec (podsec.spec): parsed by rpmspec -P with ALT's macro values, and its %files
list every file the build installs — each in exactly the package packaging/stage.py (and so
the Debian build) puts it in — with no entry that matches nothing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.require import missing
from tests.packaging.conftest import REPO, SYSTEM_PYTHON, run

# ALT Linux's values of the macros the spec uses (rpm-build, rpm-build-python3,
# rpm-macros-systemd); Debian's rpm knows none of ALT's own.
ALT_MACROS = {
    "_bindir": "/usr/bin",
    "_libexecdir": "/usr/libexec",
    "_sysconfdir": "/etc",
    "_localstatedir": "/var/lib",
    "_datadir": "/usr/share",
    "_mandir": "/usr/share/man",
    "_man1dir": "/usr/share/man/man1",
    "_docdir": "/usr/share/doc",
    "_unitdir": "/lib/systemd/system",
    "_userunitdir": "/usr/lib/systemd/user",
    "python3_sitelibdir": "/usr/lib/python3/site-packages",
    "EVR": "%{version}-%{release}",
    "pyproject_build": "true",
    "pyproject_install": "true",
    "post_systemd()": "%{nil}",
    "preun_systemd()": "%{nil}",
    "filter_from_requires()": "%{nil}",
}
SUBPACKAGE = {
    "": "podsec",
    "k8s": "podsec-k8s",
    "k8s-rbac": "podsec-k8s-rbac",
    "inotify": "podsec-inotify",
}


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> str:
    if shutil.which("rpmspec") is None:
        missing("program rpmspec (Debian's rpm) is not installed")
    # ALT's rpm knows BuildRequires(pre) (build requirements needed to parse the spec, such
    # as the macro packages); upstream rpm does not: the one ALT-only syntax, rewritten here.
    text = (REPO / "podsec.spec").read_text()
    assert "BuildRequires(pre):" in text
    spec = tmp_path_factory.mktemp("spec") / "podsec.spec"
    spec.write_text(text.replace("BuildRequires(pre):", "BuildRequires:"))
    argv = ["rpmspec", "-P", str(spec)]
    for name, value in ALT_MACROS.items():
        argv += ["--define", f"{name} {value}"]
    r = run(argv)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _files(parsed: str) -> dict[str, list[str]]:
    """%files sections: package → path patterns (directives dropped, %dir entries kept apart)."""
    out: dict[str, list[str]] = {}
    current: str | None = None
    for line in parsed.splitlines():
        head = re.match(r"^%(\w+)\b\s*(.*)$", line)
        if head and head.group(1) == "files":
            current = SUBPACKAGE[head.group(2).strip()]
            out[current] = []
            continue
        if head and head.group(1) in ("changelog", "pre", "post", "preun", "postun", "package"):
            current = None
            continue
        if current is None or not line.strip() or line.startswith("#"):
            continue
        entry = re.sub(r"%(config|lang|attr)\([^)]*\)\s*", "", line).strip()
        if entry.startswith("%doc ") or entry.startswith("%dir "):
            continue
        out[current].append(entry)
    return out


def _regex(pattern: str) -> re.Pattern[str]:
    """rpm's globs: * and ? stay within one path component; a trailing / takes the tree."""
    body = "".join(
        "[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in pattern.rstrip("/")
    )
    return re.compile(body + ("(/.*)?" if pattern.endswith("/") else "") + r"\Z")


@pytest.fixture(scope="module")
def staged(dist: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """%install as the spec does it: the wheel into ALT's site-packages and /usr/bin, then
    packaging/stage.py with ALT's zsh directory. Returns stage.py's own split."""
    dest = tmp_path_factory.mktemp("rpmroot")
    site = ALT_MACROS["python3_sitelibdir"]
    install = (
        "import sys\n"
        "from installer import install\n"
        "from installer.destinations import SchemeDictionaryDestination\n"
        "from installer.sources import WheelFile\n"
        "scheme = {'purelib': sys.argv[3], 'platlib': sys.argv[3], 'scripts': '/usr/bin',\n"
        "          'headers': '/usr/include', 'data': '/usr'}\n"
        "dest = SchemeDictionaryDestination(scheme, '/usr/bin/python3', 'posix',\n"
        "                                   destdir=sys.argv[2])\n"
        "with WheelFile.open(sys.argv[1]) as wheel:\n"
        "    install(wheel, dest, {'INSTALLER': b'rpm'})\n"
    )
    subprocess.run(
        [str(SYSTEM_PYTHON), "-c", install, str(dist["wheel"]), str(dest), site], check=True
    )
    lists = dest.parent / "lists"
    r = run(
        [
            str(SYSTEM_PYTHON),
            str(REPO / "packaging/stage.py"),
            f"--dest={dest}",
            f"--site={dest}{site}",
            "--zsh-dir=/usr/share/zsh/site-functions",
            f"--lists={lists}",
        ]
    )
    assert r.returncode == 0, r.stderr
    return {
        f.stem: ["/" + line for line in f.read_text().splitlines()] for f in lists.glob("*.files")
    }


def test_spec_parses_with_the_four_packages(parsed: str) -> None:
    for name in ("Name: podsec", "%package k8s", "%package k8s-rbac", "%package inotify"):
        assert name in parsed
    assert "Group: Development/Other" in parsed and "BuildArch: noarch" in parsed
    assert "/usr/lib/python3/site-packages/podsec/" in parsed


def test_every_installed_file_is_listed_once_where_stage_puts_it(
    parsed: str, staged: dict[str, list[str]]
) -> None:
    files = _files(parsed)
    assert set(files) == set(SUBPACKAGE.values())
    patterns = {pkg: [(p, _regex(p)) for p in pats] for pkg, pats in files.items()}
    used: set[str] = set()
    for package, paths in staged.items():
        assert paths, package
        for path in paths:
            owners = [pkg for pkg, pats in patterns.items() for p, rx in pats if rx.match(path)]
            assert owners == [package], (
                f"{path}: listed in {owners or 'no package'}, staged for {package}"
            )
            used |= {p for pkg, pats in patterns.items() for p, rx in pats if rx.match(path)}
    unused = [p for pats in files.values() for p in pats if p not in used]
    assert unused == [], f"%files entries that match no installed file: {unused}"
    # the spec lists what the programs need: every program in %_bindir
    bindir = {Path(p).name for paths in staged.values() for p in paths if p.startswith("/usr/bin/")}
    assert {"podsec", "podsec-u7s-kubeadm", "nsenter_u7s", "podsec-inotify-check-policy"} <= bindir
