"""The clean-room guard over the real machine: a test that writes outside its sandbox fails
the run, and the guard names the path (the unit tests cover the comparison itself)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.fixtures.require import require_root

REPO = Path(__file__).resolve().parents[2]

LEAKY_TEST = """
from pathlib import Path

def test_writes_outside_its_sandbox():
    Path({probe!r}).mkdir()
    Path({probe!r}, "state.json").write_text("{{}}")
"""


def test_guard_fails_naming_what_a_test_left_on_the_machine(tmp_path: Path) -> None:
    require_root()
    probe = Path(f"/var/lib/podsec-guard-probe-{os.getpid()}")
    (tmp_path / "test_leak.py").write_text(LEAKY_TEST.format(probe=str(probe)))
    try:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.machine_guard",
                "run",
                "--",
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                str(tmp_path / "test_leak.py"),
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert probe.exists(), r.stdout + r.stderr  # the inner test did run and pass
        assert "1 passed" in r.stdout, r.stdout
        assert r.returncode == 3, r.stdout + r.stderr
        assert f"created  {probe} (and 1 below)" in r.stderr, r.stderr
    finally:
        shutil.rmtree(probe, ignore_errors=True)
