"""Hostile archives: every archive reader (images load-sign, images load --verify and the
original podsec-load-sign-oci) refuses a member that would land outside its unpack directory
— ``..``, an absolute name, an empty component (``amd64//…``), a link leaving the directory, a
device or FIFO — naming the member, before a byte of it is written (issue 15).

The evil member follows a blob of an original-format archive (blobs before index.json), so
the loader is already unpacking into its spool directory when it meets it: the one path where
a member's name becomes a file name. TMPDIR is inside the sandbox, so a member that escaped
would change the compared tree.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.hostile.conftest import Sandbox

SIGNER = "maker@example.org"
POLICY = '{"default": [{"type": "insecureAcceptAnything"}]}\n'

COMMANDS = {
    "load-sign": (("images", "load-sign", "{archive}", "amd64", SIGNER), "podsec"),
    "load --verify": (("images", "load", "--verify", "{archive}", "amd64"), "podsec"),
    "podsec-load-sign-oci": (("{archive}", "amd64", SIGNER), "podsec-load-sign-oci"),
}


def _member(name: str, kind: str = "file", link: str = "", data: bytes = b"x") -> tuple:
    return (name, kind, link, data)


# name templates: {top} is the sandbox directory (for absolute names that stay inside it)
EVIL = {
    "dotdot": _member("amd64/../../../escaped"),
    "dotdot-deep": _member("amd64/blobs/../../../../escaped"),
    "dot-dotdot": _member("./amd64/../../../escaped"),
    "leading-dotdot": _member("../escaped"),
    "double-slash-absolute": _member("amd64//{top}/escaped"),
    "absolute": _member("{top}/escaped"),
    "symlink-absolute": _member("amd64/link", "sym", "/etc"),
    "symlink-up": _member("amd64/blobs/link", "sym", "../../../.."),
    "hardlink-absolute": _member("amd64/hard", "lnk", "/etc/passwd"),
    "hardlink-up": _member("amd64/hard", "lnk", "../escaped"),
    "chardev": _member("amd64/null", "chr"),
    "fifo": _member("amd64/fifo", "fifo"),
}


def _archive(path: Path, evil: tuple, top: Path) -> None:
    name, kind, link, data = evil
    name = name.format(top=str(top).lstrip("/"))  # tar would strip a leading "/" itself
    if name.startswith(str(top).lstrip("/")):
        name = "/" + name
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:

        def add(info: tarfile.TarInfo, content: bytes = b"") -> None:
            info.size = len(content) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(content) if info.isfile() else None)

        top_dir = tarfile.TarInfo("amd64")
        top_dir.type = tarfile.DIRTYPE
        add(top_dir)
        blob = tarfile.TarInfo("amd64/blobs/sha256/" + "a" * 64)
        add(blob, b"layer")
        info = tarfile.TarInfo(name)
        info.type = {
            "file": tarfile.REGTYPE,
            "sym": tarfile.SYMTYPE,
            "lnk": tarfile.LNKTYPE,
            "chr": tarfile.CHRTYPE,
            "fifo": tarfile.FIFOTYPE,
        }[kind]
        info.linkname = link
        add(info, data)
        index = tarfile.TarInfo("amd64/index.json")
        add(index, b'{"schemaVersion": 2, "manifests": []}')


@pytest.fixture(scope="module")
def gnupg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    subprocess.run(
        [
            "gpg",
            "--homedir",
            str(home),
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            SIGNER,
            "ed25519",
            "sign",
            "never",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    yield home
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)


@pytest.mark.parametrize("evil", sorted(EVIL))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_escaping_member_is_refused_and_nothing_written(
    sandbox: Sandbox, gnupg: Path, command: str, evil: str
) -> None:
    sandbox.write("/etc/containers/policy.json", POLICY)
    (sandbox.path("/etc/containers/registries.d")).mkdir(parents=True)
    (sandbox.top / "tmp").mkdir()
    archive = sandbox.top / "amd64.tar"
    _archive(archive, EVIL[evil], sandbox.top)
    args, prog = COMMANDS[command]
    argv = [a.format(archive=archive) for a in args]
    env = {"GNUPGHOME": str(gnupg), "TMPDIR": str(sandbox.top / "tmp")}
    result = sandbox.refused(
        argv, 1, "archive member", "the archive is refused", prog=prog, env=env
    )
    assert not (sandbox.top / "escaped").exists()
    assert (
        "escaped" in result.message
        or "link" in result.message
        or "null" in result.message
        or "fifo" in result.message
    )
