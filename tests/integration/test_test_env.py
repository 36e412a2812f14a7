"""scripts/test-env, the real suites' namespace: the command's exit status is the script's, and
its state directories go, whether or not the machine has /var/lib/containers (the CI machine of
session 3 had none: the cleanup's failing umount turned 208 passing tests into exit 32)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEST_ENV = str(REPO / "scripts" / "test-env")


def _run(*command: str, without_containers: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PODSEC_TEST_NS", "PODSEC_TEST_ADDR")}
    argv = [TEST_ENV, *command]
    if without_containers:
        # an empty /var/lib in a namespace of its own: a machine that never ran podman
        argv = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            'mount -t tmpfs podsec-test /var/lib && exec "$@"',
            "sh",
            *argv,
        ]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=60)


def _leftovers() -> set[str]:
    return {p.name for p in Path("/tmp").glob("podsec-test-env.*")} | {
        p.name for p in Path("/tmp").glob("podsec-hosts.*")
    }


@pytest.mark.parametrize("without_containers", [True, False], ids=["no-containers", "as-is"])
@pytest.mark.parametrize("code", [0, 7])
def test_the_commands_exit_status_is_the_scripts(code: int, without_containers: bool) -> None:
    before = _leftovers()
    r = _run(
        "sh",
        "-c",
        f"grep -q registry.local /etc/hosts && exit {code}",
        without_containers=without_containers,
    )
    assert r.returncode == code, r.stderr
    assert _leftovers() <= before  # its hosts file and state directory are removed
