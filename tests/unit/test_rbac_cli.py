"""podsec rbac command lines: usage errors are one line, exit 2, before any connection."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def run(prog: str, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KUBECONFIG", "PODSEC", "LANG", "LC_"))
    }
    env.update(HOME=str(home), KUBECONFIG=str(home / "nothing"))
    return subprocess.run(
        [str(BIN / prog), *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["podsec-k8s-rbac-get-userroles", "alice", "showrules"], "only showRules is allowed"),
        (["podsec-k8s-rbac-bindrole", "alice", "role", "view", "b"], "needs a namespace"),
        (["podsec-k8s-rbac-bindrole", "alice", "clusterrole", "view", "b", "ns"], "cluster-wide"),
        (["podsec-k8s-rbac-bindrole", "alice", "roles", "view", "b"], "invalid role type"),
        (
            ["podsec-k8s-rbac-unbindrole", "alice", "role", "view", "Bad_Binding", "ns"],
            "invalid binding name",
        ),
        (["podsec-k8s-rbac-create-user", "Bad User"], "invalid user or group name"),
        (
            ["podsec-k8s-rbac-create-remoteplace", "--", "-oProxyCommand=x"],
            "invalid cluster address",
        ),
        (["podsec-k8s-rbac-create-remoteplace", "-oProxyCommand=x"], "No such option"),
        (
            ["podsec", "rbac", "create-kubeconfig", "alice", "--expiration", "5m"],
            "at least 600 seconds",
        ),
        (["podsec", "rbac", "who-can", "get", "po ds"], "invalid resource"),
        (["podsec", "rbac", "who-can", "get pods", "pods"], "invalid verb"),
        (["podsec", "rbac", "who-can", "get", "pods", "-n", "Bad"], "invalid namespace"),
    ],
)
def test_usage_errors(argv: list[str], text: str, tmp_path: Path) -> None:
    r = run(argv[0], *argv[1:], home=tmp_path)
    assert r.returncode == 2, r.stderr
    first = r.stderr.splitlines()[0]
    assert text in first and first.startswith("podsec"), r.stderr
    assert "Traceback" not in r.stderr


def test_missing_admin_kubeconfig_is_one_error(tmp_path: Path) -> None:
    r = run("podsec-k8s-rbac-get-userroles", "alice", home=tmp_path)
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == "podsec-k8s-rbac-get-userroles: no admin kubeconfig found"


def test_help_has_examples() -> None:
    for cmd in (
        "create-user",
        "create-kubeconfig",
        "create-remoteplace",
        "bind",
        "unbind",
        "roles",
        "renew",
        "revoke",
        "who-can",
    ):
        out = subprocess.run(
            [str(BIN / "podsec"), "rbac", cmd, "--help"], capture_output=True, text=True, check=True
        )
        assert "Examples:" in out.stdout, cmd
