"""The u7s systemd units pass `systemd-analyze verify` (this machine has no systemd as PID 1,
so verification is as far as units can be checked here)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.fixtures.require import require_tool
from tests.unit.test_u7s_runtime import LAYOUT, make_plan

from podsec.u7s import supervisor

pytestmark = pytest.mark.integration


def test_units_verify(tmp_path: Path) -> None:
    require_tool("systemd-analyze")
    paths = []
    for path, text in supervisor.systemd_units(LAYOUT, make_plan()).items():
        target = tmp_path / Path(path).name
        if target.name == "delegate.conf":
            continue  # a drop-in is verified with its unit, which is systemd's own
        target.write_text(text)
        paths.append(str(target))
    r = subprocess.run(
        ["systemd-analyze", "verify", *paths],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert not r.stderr.strip(), r.stderr
