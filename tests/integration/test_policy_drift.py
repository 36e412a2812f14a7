"""One policy everywhere: a client node against the registry node's published policy and keys
(served by the real nginx of the sigstore fixture). check-drift in each state — OK in sync,
WARNING when the published policy moved on, CRITICAL when the client trusts a key the
registry node no longer does, UNKNOWN when the registry node cannot be reached — and
``policy sync`` bringing the node back, only with the right pin."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fixtures.require import free_port, require_root, require_tool

from podsec.errors import ValidationError
from podsec.host.paths import Host
from podsec.trust import setup, sync

pytestmark = pytest.mark.integration
IP = "10.20.30.40"


def podsec(root: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podsec.cli", "--root", str(root), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def nodes(host_root: Path, tmp_path: Path, sigstore) -> Iterator[tuple[Path, Path, str]]:
    """(registry node tree, client node tree, keys URL) with one sigstore maker published."""
    require_root()
    require_tool("groupadd", "useradd", "chattr")
    reg = host_root
    assert podsec(reg, "policy", "create", IP, "--registry-node").returncode == 0
    mk = f"mkd{os.getpid() % 100000}"
    r = podsec(reg, "users", "create-imagemaker", "--sigstore", f"{mk}@apps")
    assert r.returncode == 0, r.stderr
    client = tmp_path / "client"
    (client / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow", "hosts"):
        (client / "etc" / name).write_bytes((reg / "etc" / name).read_bytes())
    publish(reg, sigstore)
    try:
        yield reg, client, f"http://{sigstore.address}:{sigstore.port}/keys/"
    finally:
        for f in list(sigstore.keys_dir.iterdir()):
            f.unlink()
        subprocess.run(["chattr", "-R", "-i", str(reg / "home")], capture_output=True)


def publish(reg: Path, sigstore) -> None:
    """What sigstore.local serves: the registry node's /var/sigstore/keys."""
    for f in list(sigstore.keys_dir.iterdir()):
        f.unlink()
    for f in (reg / "var/sigstore/keys").iterdir():
        if f.is_file() and not f.name.endswith(".podsec-bak"):
            shutil.copy(f, sigstore.keys_dir / f.name)


def pins(reg: Path) -> list[str]:
    keys = reg / "var/sigstore/keys"
    return [
        "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(keys.glob("*.pub"))
    ]


def drift_plugin(client: Path, url: str) -> subprocess.CompletedProcess[str]:
    return podsec(client, "monitor", "check-drift", "--keys-url", url, "-v")


def test_drift_states_and_sync(nodes: tuple[Path, Path, str], sigstore) -> None:
    reg, client, url = nodes
    host = Host(client)
    setup.create_policy(host, IP, registry_node=False, keys_url=url, trust=pins(reg))
    r = drift_plugin(client, url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("DRIFT OK")

    # the registry node moves on (another maker): WARNING until the client syncs
    mk2 = f"mke{os.getpid() % 100000}"
    assert podsec(reg, "users", "create-imagemaker", "--sigstore", f"{mk2}@team").returncode == 0
    publish(reg, sigstore)
    r = drift_plugin(client, url)
    assert r.returncode == 1, r.stdout + r.stderr
    assert (
        "differs from the published policy" in r.stdout
        and f"{mk2}.pub is not installed" in r.stdout
    )
    # a pin that does not cover the new key changes nothing
    before = (client / "etc/containers/policy.json").read_bytes()
    with pytest.raises(ValidationError, match="not covered by --trust"):
        sync.sync(host, pins(reg)[:1], keys_url=url)
    assert (client / "etc/containers/policy.json").read_bytes() == before
    r = podsec(client, "policy", "sync", "--keys-url", url, *[f"--trust={p}" for p in pins(reg)])
    assert r.returncode == 0, r.stderr
    assert "/etc/containers/policy.json" in r.stdout
    assert drift_plugin(client, url).returncode == 0
    assert "in sync" in podsec(client, "policy", "sync", "--keys-url", url,
                               *[f"--trust={p}" for p in pins(reg)]).stdout  # fmt: skip

    # the client trusts a key the registry node does not: CRITICAL
    policy_file = client / "etc/containers/policy.json"
    data = json.loads(policy_file.read_text())
    (client / "var/sigstore/keys/rogue.pub").write_bytes(
        next((client / "var/sigstore/keys").glob("*.pub")).read_bytes()
    )
    data["transports"]["docker"]["registry.local/rogue"] = [
        {"type": "sigstoreSigned", "keyPath": "/var/sigstore/keys/rogue.pub"}
    ]
    policy_file.write_text(json.dumps(data))
    r = drift_plugin(client, url)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "rogue.pub, which the registry node no longer does" in r.stdout

    # the registry node cannot be reached: UNKNOWN
    r = drift_plugin(client, f"http://127.0.0.1:{free_port()}/keys/")
    assert r.returncode == 3, r.stdout + r.stderr
    assert r.stdout.startswith("DRIFT UNKNOWN")
