"""`podsec-load-sign-oci` keeps the original's exit codes and its own name on error lines
(reference §3.9 step 3-4: 3 architecture, 4 empty target, 5 target without a registry host,
6 unpacking failed, 7 no <arch>/ in the archive, 8 no index.json). Issue 16: they had all
become 2 (or 1) and the lines started with `podsec:`. The new name keeps podsec's codes."""

from __future__ import annotations

import io
import lzma
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from tests.fixtures.require import require_tool

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
GNUPG: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def signer_key(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A real signing key for m@example.org: podsec checks the key before it reads the
    archive, so the archive's faults (6-8) are reached only with one."""
    require_tool("gpg", "gpgconf")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    subprocess.run(
        [
            *("gpg", "--homedir", str(home), "--batch", "--passphrase", "", "--quick-gen-key"),
            *("m@example.org", "ed25519", "sign", "never"),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    GNUPG["GNUPGHOME"] = str(home)
    yield
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)


def run(prog: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANG", "LC_", "PODSEC"))}
    env.update(GNUPG)
    argv = [str(BIN / prog), *args] if prog != "podsec" else [str(BIN / "podsec"), *args]
    return subprocess.run(
        argv, capture_output=True, text=True, env={**env, "LANG": "C"}, timeout=60
    )


def tar_xz(path: Path, members: dict[str, bytes]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(lzma.compress(buf.getvalue()))
    return path


@pytest.fixture
def archives(tmp_path: Path) -> dict[str, Path]:
    garbage = tmp_path / "garbage.tar.xz"
    garbage.write_bytes(b"this is not xz at all\n" * 50)
    return {
        "garbage": garbage,
        "arm64": tar_xz(tmp_path / "arm64.tar.xz", {"arm64/oci-layout": b"{}"}),
        "no-index": tar_xz(tmp_path / "noindex.tar.xz", {"amd64/oci-layout": b"{}"}),
    }


@pytest.mark.skipif(os.geteuid() != 0, reason="load-sign needs an image maker (root here)")
@pytest.mark.parametrize(
    ("case", "args", "code"),
    [
        ("arch", ["{arm64}", "sparc", "m@example.org"], 3),
        ("empty target", ["{arm64}", "amd64", "m@example.org", ""], 4),
        ("no host", ["{arm64}", "amd64", "m@example.org", "nodots/p10"], 5),
        ("unpack", ["{garbage}", "amd64", "m@example.org"], 6),
        ("no arch dir", ["{arm64}", "amd64", "m@example.org"], 7),
        ("no index.json", ["{no-index}", "amd64", "m@example.org"], 8),
    ],
)
def test_original_codes_and_prefix_under_the_original_name(
    archives: dict[str, Path], case: str, args: list[str], code: int
) -> None:
    argv = [a.format(**{k: str(v) for k, v in archives.items()}) for a in args]
    r = run("podsec-load-sign-oci", *argv)
    assert r.returncode == code, (case, r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("podsec-load-sign-oci: "), r.stderr
    assert "Traceback" not in r.stderr
    new = run("podsec", "images", "load-sign", *argv)
    assert new.returncode in (1, 2), (case, new.returncode)  # podsec's own codes
    assert new.stderr.startswith("podsec: ") or new.stderr.startswith("podsec images load-sign")
