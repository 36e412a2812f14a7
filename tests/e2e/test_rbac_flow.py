"""The seed's RBAC walk-through end to end, with the original program names: an account and a
certificate on the "cluster host" (a --root sandbox), the workstation set up over real ssh,
rights granted and taken away — checked with kubectl from the workstation each time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.fixtures.kube import ControlPlane
from tests.fixtures.require import require_root, require_tool
from tests.integration.test_rbac_remoteplace import Sshd, sshd

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]
__all__ = ["sshd"]  # the fixture, imported for this module

BIN = Path(sys.executable).parent


def test_rbac_walkthrough(sshd: Sshd, control_plane: ControlPlane, tmp_path: Path) -> None:
    require_root()
    require_tool("useradd", "kubectl")
    root = tmp_path / "cluster-host"
    (root / "etc").mkdir(parents=True)
    (root / "home").mkdir()
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/gshadow").write_text("root:*::\n")
    ws = tmp_path / "workstation"
    ws.mkdir()
    user = f"k8suser{os.getpid() % 100000}"
    ns = f"smf{os.getpid() % 100000}"
    control_plane.kubectl("create", "namespace", ns)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "PODSEC"))}
    host_env = {
        **base,
        "HOME": str(tmp_path),
        "PODSEC_ROOT": str(root),
        "KUBECONFIG": str(control_plane.kubeconfig),
    }

    def on_host(prog: str, *args: str) -> str:
        r = subprocess.run(
            [str(BIN / prog), *args], capture_output=True, text=True, env=host_env, timeout=120
        )
        assert r.returncode == 0, f"{prog} {args}: {r.stderr}"
        return r.stdout

    def can_i(verb: str, resource: str) -> str:
        out = control_plane.kubectl(
            "auth", "can-i", verb, resource, "-n", ns, kubeconfig=ws / ".kube/config", check=False
        )
        assert out.stdout.strip() in ("yes", "no"), out.stderr
        return out.stdout.strip()

    on_host("podsec-k8s-rbac-create-user", user)
    on_host("podsec-k8s-rbac-create-kubeconfig", user)
    r = subprocess.run(
        [
            str(BIN / "podsec-k8s-rbac-create-remoteplace"),
            "127.0.0.1",
            "--user",
            "root",
            "--remote-path",
            str(root / "home" / user / ".kube/config"),
            *sshd.options(),
        ],
        capture_output=True,
        text=True,
        env={**base, "HOME": str(ws)},
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert can_i("create", "deployments") == "no"
    on_host("podsec-k8s-rbac-bindrole", user, "role=clusterrole", "edit", "sysadmin", ns)
    assert can_i("create", "deployments") == "yes"
    roles = json.loads(on_host("podsec-k8s-rbac-get-userroles", user))
    assert [list(e) for e in roles[user]["roles"]["namespaces"]] == [[ns]]
    unbind = roles[user]["roles"]["namespaces"][0][ns][0]["unbindCmd"].split()
    on_host(unbind[0], *unbind[1:])
    assert can_i("create", "deployments") == "no"
    on_host("podsec-k8s-rbac-bindrole", user, "role=clusterrole", "view", "viewers", ns)
    assert can_i("list", "pods") == "yes"
    on_host("podsec", "rbac", "revoke", user)
    assert can_i("list", "pods") == "no"
    records = json.loads((root / "var/lib/podsec/rbac/revoked.json").read_text())
    assert records[-1]["cn"] == user and records[-1]["serial"].isdigit()
