"""pytest hooks and shared fixtures only; the helpers tests import (missing, require_tool,
free_port, the pinned Kubernetes paths) live in tests/fixtures/require.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.kube", "tests.fixtures.images", "tests.fixtures.fake_kube"]


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
