"""Shared test plumbing.

Real programs are required: under ``PODSEC_REQUIRE_ALL=1`` (set by ``make test`` and CI) a
missing program or build artefact is a test *failure*, never a silent skip. Outside CI such
tests skip with the reason, so a developer can run the unit suite anywhere.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.kube", "tests.fixtures.images", "tests.fixtures.fake_kube"]

REQUIRE_ALL = os.environ.get("PODSEC_REQUIRE_ALL", "") not in ("", "0")
K8S_BIN = Path("/var/cache/podsec-dev/kubernetes/v1.20.2/current/bin")
IMAGES_DIR = Path("/var/cache/podsec-dev/images/v1.20.2")


def missing(reason: str) -> None:
    """Fail under CI (PODSEC_REQUIRE_ALL=1), skip otherwise."""
    if REQUIRE_ALL:
        pytest.fail(f"required for this test: {reason}", pytrace=False)
    pytest.skip(reason)


def require_tool(*names: str) -> dict[str, str]:
    """Absolute paths of programs, or fail/skip naming the first one missing."""
    found = {}
    for name in names:
        path = shutil.which(name) or (str(K8S_BIN / name) if (K8S_BIN / name).exists() else None)
        if path is None:
            missing(f"program {name} is not installed")
        found[name] = str(path)
    return found


def require_path(path: Path, what: str) -> Path:
    if not path.exists():
        missing(f"{what} ({path}) does not exist; run make deps")
    return path


def test_address() -> str:
    """The loopback address that registry.local, sigstore.local and trivy.local resolve to
    in this test run (scripts/test-env sets it up in a private mount namespace)."""
    addr = os.environ.get("PODSEC_TEST_ADDR", "")
    if not addr:
        missing("the real host names need scripts/test-env (make test-real runs it)")
    try:
        resolved = socket.gethostbyname("registry.local")
    except OSError:
        resolved = ""
    if resolved != addr:
        missing(f"registry.local resolves to {resolved or 'nothing'}, expected {addr}")
    return addr


def require_root() -> None:
    if os.geteuid() != 0:
        missing("must run as root")


@pytest.fixture
def host_root(tmp_path: Path) -> Iterator[Path]:
    """An empty system tree with the files podsec expects (passwd, group, subuid ...)."""
    root = tmp_path / "root"
    etc = root / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    (etc / "group").write_text("root:x:0:\nwheel:x:10:\nnogroup:x:65534:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\nwheel:*::\nnogroup:*::\n")
    for name in ("shadow", "gshadow"):
        (etc / name).chmod(0o600)
    (etc / "subuid").write_text("")
    (etc / "subgid").write_text("")
    (etc / "hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n")
    (root / "home").mkdir()
    yield root
