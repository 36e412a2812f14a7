"""The hostile-input harness: run a podsec command (or an original program name) in a
sandbox tree, then check the refusal contract of DEVELOPERS.md — the expected exit code, one
line naming the problem (hints indented below it), no traceback, no "internal error", and a
byte-identical tree afterwards.

Every command runs as a real process (a FIFO or a hang must show as a timeout, not freeze
the suite), with networking unavailable to the unit suite anyway, ``HOME`` inside the
sandbox and no PODSEC_/U7S_/LANG variables from the caller.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
TIMEOUT = 30


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def message(self) -> str:
        """The first non-indented stderr line (the one-line error)."""
        lines = [line for line in self.stderr.splitlines() if line and not line[0].isspace()]
        return lines[0] if lines else ""


def snapshot(top: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under ``top``: kind, mode, and the bytes (files) or target (links)."""
    tree: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            st = path.lstat()
            key = str(path.relative_to(top))
            if stat.S_ISLNK(st.st_mode):
                tree[key] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                tree[key] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes())
            else:
                tree[key] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode))
    return tree


@dataclass
class Sandbox:
    """A system tree (``root``), a home directory and an environment for one command."""

    top: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.top / "root"

    @property
    def home(self) -> Path:
        return self.top / "home"

    def path(self, name: str) -> Path:
        """``name`` (absolute, as on the node) inside the sandbox root."""
        return self.root / name.lstrip("/")

    def write(self, name: str, content: str | bytes, mode: int = 0o644) -> Path:
        path = self.path(name) if name.startswith("/") else self.top / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode()
        path.write_bytes(content)
        path.chmod(mode)
        return path

    def run(
        self,
        *args: str,
        prog: str = "podsec",
        root: bool = True,
        env: dict[str, str] | None = None,
        stdin: str = "",
        timeout: float = TIMEOUT,
    ) -> Result:
        argv = [str(BIN / prog)]
        if root and prog == "podsec":
            argv += ["--root", str(self.root)]
        argv += list(args)
        full = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("U7S_", "LANG", "LC_", "PODSEC", "KUBECONFIG", "GNUPGHOME"))
        }
        full.update({"HOME": str(self.home), "LANG": "C.UTF-8"})
        if root and prog != "podsec":
            full["PODSEC_ROOT"] = str(self.root)
        full.update(self.env)
        full.update(env or {})
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            env=full,
            input=stdin,
            timeout=timeout,
            cwd=self.top,
            check=False,
        )
        return Result(argv, proc.returncode, proc.stdout, proc.stderr)

    def refused(
        self,
        args: Sequence[str],
        code: int,
        *needles: str,
        prog: str = "podsec",
        root: bool = True,
        env: dict[str, str] | None = None,
        stream: str = "stderr",
    ) -> Result:
        """Run, and assert the refusal contract; returns the result for further checks."""
        before = snapshot(self.top)
        result = self.run(*args, prog=prog, root=root, env=env)
        check_refusal(result, code, *needles, stream=stream)
        assert snapshot(self.top) == before, f"{result.argv}: the tree changed after a refusal"
        return result


def check_refusal(result: Result, code: int, *needles: str, stream: str = "stderr") -> None:
    both = result.stdout + result.stderr
    what = f"{result.argv[1:]} -> {result.returncode}\n{both}"
    assert "Traceback" not in both, what
    assert "internal error" not in both, what
    assert result.returncode == code, what
    if stream == "stdout":  # a Nagios plugin: its one status line on stdout
        line = result.stdout.splitlines()[0] if result.stdout else ""
    else:
        line = result.message
        unindented = [s for s in result.stderr.splitlines() if s and not s[0].isspace()]
        assert len(unindented) == 1, what
    for needle in needles:
        assert needle in line, what


def make_special(path: Path, kind: str) -> None:
    """Put a hostile non-file where a config file should be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        if path.is_dir() and not path.is_symlink():
            import shutil

            shutil.rmtree(path)
        else:
            path.unlink()
    if kind == "dir":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        import tempfile

        # bound under a short name (AF_UNIX paths are limited to 107 bytes), then moved
        with tempfile.TemporaryDirectory(prefix="hs", dir="/tmp") as short:
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(f"{short}/s")
            sock.close()
            os.rename(f"{short}/s", path)
    elif kind == "loop":
        path.symlink_to(path.name)
    elif kind == "latin1":
        path.write_bytes(b'{"x": "caf\xe9"}\n')
    elif kind == "deep-json":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "deep-yaml":
        path.write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    elif kind == "deep-toml":
        path.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    else:
        raise AssertionError(kind)


# what each kind is reported as (the readers' wording)
PROBLEM = {
    "dir": "is a directory, not a regular file",
    "fifo": "is a FIFO, not a regular file",
    "socket": "is a socket, not a regular file",
    "loop": "symbolic link loop",
    "latin1": "not valid UTF-8 (byte 10)",
    "deep-json": "nested deeper than",
    "deep-yaml": "nested deeper than",
    "deep-toml": "nested deeper than",
}


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path)
    etc = box.root / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    (etc / "group").write_text("root:x:0:\nwheel:x:10:\nnogroup:x:65534:\n")
    (etc / "hosts").write_text("127.0.0.1\tlocalhost\n")
    box.home.mkdir()
    yield box


# every command that reads a cluster description file ({file}), as argv templates
CLUSTER_READERS = {
    "lb haproxy": ("lb", "haproxy", "--cluster", "{file}", "--output", "{top}/out/haproxy.cfg"),
    "lb haproxy --check": ("lb", "haproxy", "--cluster", "{file}", "--check"),
    "lb keepalived": (
        "lb",
        "keepalived",
        "--cluster",
        "{file}",
        "--state",
        "MASTER",
        "--priority",
        "101",
        "--interface",
        "eth0",
        "--output",
        "{top}/out/keepalived.conf",
        "--no-check",
    ),
    "lb check-apiserver --cluster": ("lb", "check-apiserver", "--cluster", "{file}"),
}
