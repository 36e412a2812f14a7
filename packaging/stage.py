#!/usr/bin/env python3
"""Lay out everything the packages install besides the Python distribution, and split it.

Run after the distribution itself is installed into DESTDIR (pybuild, or pip --root)::

    packaging/stage.py --dest DESTDIR --site DESTDIR/usr/lib/python3/dist-packages \
        [--lists DIR]

It generates, with the staged podsec itself (so the pages describe what is installed):
man pages EN (man1) and RU (ru/man1), bash and zsh completion for every program, the
monitoring units/timers (/lib/systemd/system) and configs (/etc, conffiles), the u7s program
directory /usr/libexec/podsec/u7s/bin and /etc/podsec/podsec.toml. With ``--lists`` it writes
``DIR/<package>.files``: every staged file and symlink (paths relative to DESTDIR), each in
exactly one of the four packages. The split is by program name and command group — never by
Python module, so modules may move freely: see :func:`package_of`.

Standard library only; the generators run as ``python -m ...`` on the staged tree.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOP = HERE.parent
PACKAGES = ("podsec", "podsec-k8s", "podsec-k8s-rbac", "podsec-inotify")
U7S_BIN = "usr/libexec/podsec/u7s/bin"
UNIT_DIR = "lib/systemd/system"
ZSH_DIR = "/usr/share/zsh/vendor-completions"  # Debian's; ALT's spec passes site-functions

# program-name prefixes (original names) and unified command groups → package
PROGRAM_PREFIXES = (
    ("podsec-k8s-rbac-", "podsec-k8s-rbac"),
    ("podsec-inotify-", "podsec-inotify"),
    ("podsec-u7s-", "podsec-k8s"),
    ("nsenter_u7s", "podsec-k8s"),
)
GROUPS = {
    "u7s": "podsec-k8s",
    "lb": "podsec-k8s",
    "ingress": "podsec-k8s",
    "rbac": "podsec-k8s-rbac",
    "monitor": "podsec-inotify",
}
# staged paths (relative) by prefix → package; the first match wins
PATH_PREFIXES = (
    (f"{U7S_BIN}/", "podsec-k8s"),
    (f"{UNIT_DIR}/podsec-inotify-", "podsec-inotify"),
    ("etc/nagios/", "podsec-inotify"),
    ("etc/icinga2/", "podsec-inotify"),
    ("etc/nagwad/", "podsec-inotify"),
    ("etc/sysctl.d/90-podsec-inotify", "podsec-inotify"),
    ("etc/podsec/crontabs/", "podsec-inotify"),  # the seed's cron lines for the plugins
    ("usr/share/doc/podsec-k8s/", "podsec-k8s"),
)


def programs(pyproject: Path) -> list[str]:
    return sorted(tomllib.loads(pyproject.read_text())["project"]["scripts"])


def package_of_program(name: str) -> str:
    for prefix, package in PROGRAM_PREFIXES:
        if name.startswith(prefix):
            return package
    return "podsec"


def package_of_page(name: str, progs: set[str]) -> str:
    """A man page: an original program's page goes with the program; ``podsec-GROUP-...``
    with its group; the rest (``podsec``, trust, images, doctor) with podsec."""
    if name in progs:
        return package_of_program(name)
    parts = name.split("-")
    if len(parts) > 1 and parts[0] == "podsec":
        return GROUPS.get(parts[1], "podsec")
    return "podsec"


def package_of(rel: str, progs: set[str]) -> str:
    """The package a staged path (relative to DESTDIR) belongs to."""
    path = Path(rel)
    if rel.startswith("usr/bin/"):
        return package_of_program(path.name)
    if rel.startswith("usr/share/man/"):
        return package_of_page(path.name.split(".")[0], progs)
    if rel.startswith("usr/share/bash-completion/"):
        return package_of_program(path.name)
    if rel.startswith("usr/share/zsh/"):
        return package_of_program(path.name.removeprefix("_"))
    for prefix, package in PATH_PREFIXES:
        if rel.startswith(prefix):
            return package
    return "podsec"


def _python(site: Path, args: list[str], *, lang: str = "C", cwd: Path | None = None) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(site),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANGUAGE": lang,
        "LC_ALL": "C.UTF-8",
        "HOME": tempfile.gettempdir(),
    }
    if "SOURCE_DATE_EPOCH" in os.environ:
        env["SOURCE_DATE_EPOCH"] = os.environ["SOURCE_DATE_EPOCH"]
    subprocess.run([sys.executable, *args], env=env, check=True, cwd=cwd)


def stage(dest: Path, site: Path, pyproject: Path, zsh_dir: str = ZSH_DIR) -> None:
    # man pages and completion, from the click tree of the staged podsec
    _python(
        site,
        [
            "-m",
            "podsec.cli.manpage",
            f"--pyproject={pyproject}",
            f"--man={dest / 'usr/share/man/man1'}",
            f"--completion={dest / 'usr/share/podsec-completion'}",
        ],
    )
    _python(
        site,
        [
            "-m",
            "podsec.cli.manpage",
            f"--pyproject={pyproject}",
            f"--man={dest / 'usr/share/man/ru/man1'}",
        ],
        lang="ru",
    )
    generated = dest / "usr/share/podsec-completion"
    for src, target in (
        ("bash", "usr/share/bash-completion/completions"),
        ("zsh", zsh_dir.strip("/")),
    ):
        (dest / target).mkdir(parents=True, exist_ok=True)
        for f in sorted((generated / src).iterdir()):
            shutil.move(str(f), dest / target / f.name)
    shutil.rmtree(generated)

    # monitoring: what `podsec monitor install` writes, with units moved to the vendor dir
    with tempfile.TemporaryDirectory() as tmp:
        _python(
            site,
            [
                "-c",
                "import sys; from pathlib import Path; "
                "from podsec.host.paths import Host; from podsec.monitor import install; "
                "install.install(Host(Path(sys.argv[1])), bindir='/usr/bin')",
                tmp,
            ],
        )
        root = Path(tmp)
        units = root / "etc/systemd/system"
        (dest / UNIT_DIR).mkdir(parents=True, exist_ok=True)
        for f in sorted(units.iterdir()):
            shutil.move(str(f), dest / UNIT_DIR / f.name)
        units.rmdir()
        (root / "etc/systemd").rmdir()
        for f in sorted(p for p in root.rglob("*") if p.is_file()):
            target = dest / f.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(f), target)

    # /usr/libexec/podsec/u7s/bin: the seed's `export PATH=/usr/libexec/podsec/u7s/bin:$PATH;
    # kubeadm init` reaches the wrapper; rootlessctl talks to u7s-admin's RootlessKit
    bindir = dest / U7S_BIN
    bindir.mkdir(parents=True, exist_ok=True)
    for name, target in (
        ("kubeadm", "/usr/bin/podsec-u7s-kubeadm"),
        ("nsenter_u7s", "/usr/bin/nsenter_u7s"),
    ):
        (bindir / name).unlink(missing_ok=True)
        (bindir / name).symlink_to(target)
    rootlessctl = bindir / "rootlessctl"
    rootlessctl.write_text(
        "#!/bin/sh\n"
        "# rootlessctl for the u7s node's namespace (podsec-k8s)\n"
        "uid=$(id -u u7s-admin) || exit 1\n"
        'exec /usr/bin/rootlessctl --socket "/run/user/$uid/usernetes/rootlesskit/api.sock" "$@"\n'
    )
    rootlessctl.chmod(0o755)

    # configuration (a conffile: every key commented out) and the HA example
    conf = dest / "etc/podsec/podsec.toml"
    conf.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HERE / "podsec.toml", conf)
    example = site / "podsec/data/lb/cluster.example.yaml"
    if example.exists():
        doc = dest / "usr/share/doc/podsec-k8s/examples"
        doc.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(example, doc / "cluster.yaml")


def split(dest: Path, progs: set[str]) -> dict[str, list[str]]:
    lists: dict[str, list[str]] = {p: [] for p in PACKAGES}
    for path in sorted(dest.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            continue
        rel = str(path.relative_to(dest))
        lists[package_of(rel, progs)].append(rel)
    return lists


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument(
        "--site", type=Path, required=True, help="the staged site-packages holding podsec"
    )
    parser.add_argument("--pyproject", type=Path, default=TOP / "pyproject.toml")
    parser.add_argument("--lists", type=Path, help="write DIR/<package>.files")
    parser.add_argument("--zsh-dir", default=ZSH_DIR, help=f"zsh completion directory ({ZSH_DIR})")
    parser.add_argument("--no-stage", action="store_true", help="only split an existing tree")
    args = parser.parse_args()
    dest = args.dest.resolve()
    if not args.no_stage:
        stage(dest, args.site.resolve(), args.pyproject.resolve(), args.zsh_dir)
    if args.lists:
        args.lists.mkdir(parents=True, exist_ok=True)
        for package, paths in split(dest, set(programs(args.pyproject))).items():
            (args.lists / f"{package}.files").write_text("".join(f"{p}\n" for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
