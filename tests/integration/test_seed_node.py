"""A node set up with podsec's own commands is OK in podsec's own monitor (issue 16).

The README's order on a --root tree with the real shadow tools and gpg: `policy create`, an
image maker, an image user, the rootless-Kubernetes account u7s-admin (created as
`kubeadm init` creates it), each with a container storage. Then check-policy and
check-images must be OK and check-containers must report nothing. Before, rule 105 flagged
the archive transports podsec's own policy accepted and rule 101 flagged u7s-admin outside
group podman: podsec reported its own node CRITICAL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.fixtures.require import require_root, require_tool
from tests.integration.test_monitor_support import SyslogServer, syslog_server

from podsec.host import accounts
from podsec.host.paths import Host
from podsec.monitor.accounts import U7S_STORAGE, USER_STORAGE
from podsec.trust import policy as pol
from podsec.u7s import runtime

pytestmark = pytest.mark.integration
FIXTURES = (syslog_server,)
IP = "10.20.30.40"


def podsec(root: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANG", "LC_", "PODSEC"))}
    return subprocess.run(
        [sys.executable, "-m", "podsec.cli", "--root", str(root), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "LANG": "C"},
    )


def storage(root: Path, home: str, rel: str, uid: int, gid: int) -> None:
    path = root / home.lstrip("/") / rel
    path.mkdir(parents=True, exist_ok=True)
    for p in [path, *path.parents]:
        if p == root / home.lstrip("/"):
            break
        os.chown(p, uid, gid)


@pytest.fixture
def node(host_root: Path):  # type: ignore[no-untyped-def]
    require_root()
    require_tool("groupadd", "useradd", "usermod", "gpg", "chattr")
    (host_root / "etc/group").write_text(
        (host_root / "etc/group").read_text() + "systemd-journal:x:101:\n"
    )
    (host_root / "etc/gshadow").write_text(
        (host_root / "etc/gshadow").read_text() + "systemd-journal:!::\n"
    )
    yield host_root
    subprocess.run(["chattr", "-R", "-i", str(host_root / "home")], capture_output=True)


def test_node_set_up_by_podsec_is_ok_in_its_monitor(node: Path, syslog_server: SyslogServer):
    root, host = node, Host(node)
    pid = os.getpid() % 100000
    maker, user = f"mk{pid}", f"iu{pid}"
    r = podsec(root, "policy", "create", IP, "--registry-node")
    assert r.returncode == 0, r.stderr
    system = pol.load(root / "etc/containers/policy.json")
    assert set(system.transports) == {"docker", "containers-storage"}
    r = podsec(root, "users", "create-imagemaker", f"{maker}@k8s-p10", "--json")
    assert r.returncode == 0, r.stderr
    r = podsec(root, "users", "create-podman", user, "--json")
    assert r.returncode == 0, r.stderr
    layout = runtime.ensure_account(host, runtime.U7S_USER)  # as `kubeadm init` makes it
    assert {"podman", "systemd-journal"} <= set(accounts.user_groups(host, layout.user))

    # the maker is unrestricted (the seed's makers pull and tag third-party images) ...
    own = pol.load(root / f"home/{maker}/.config/containers/policy.json")
    assert own.default[0].type == pol.ACCEPT
    assert own.transports["docker"]["registry.local/k8s-p10"][0].type == "signedBy"
    # ... the image user is not: no policy of its own, the system one applies
    assert not (root / f"home/{user}/.config/containers/policy.json").exists()

    for name, rel in ((maker, USER_STORAGE), (user, USER_STORAGE), (layout.user, U7S_STORAGE)):
        entry = accounts.get_user(host, name)
        assert entry is not None
        storage(root, entry.home, rel, entry.uid, entry.gid)
    (root / "var/lib/containers/storage").mkdir(parents=True)

    for check in ("check-policy", "check-images"):
        r = podsec(root, "monitor", check, "-vvv", "--syslog-socket", str(syslog_server.path))
        assert r.returncode == 0, f"{check}: {r.stdout}{r.stderr}"
        assert r.stdout.startswith(("POLICY OK", "IMAGES OK")), r.stdout
        if check == "check-policy":  # every account was judged, u7s-admin included
            for name in ("root", maker, user, layout.user):
                assert f"  {name}: " in r.stdout, (name, r.stdout)

    # check-containers (the watcher) over the same node: watching, nothing to report
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODSEC")}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "podsec.cli", "--root", str(root), "monitor"),
            *("watch-containers", "--syslog-socket", str(syslog_server.path)),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        syslog_server.wait_for(lambda s: "Debug: watching" in s)
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    bad = [s for s in syslog_server.lines if "Critical" in s or "Warning" in s or "Fatal" in s]
    assert bad == [], bad
    assert json.loads(podsec(root, "monitor", "check-policy", "--json").stdout)["state"] == "OK"
