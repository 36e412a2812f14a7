"""The installed watcher (podsec-inotify-check-containers) as a daemon over a real podman
storage: a container created after the watcher started is picked up without a restart,
changes are reported to a syslog socket with the container's name and image, hostile
file names are logged as data (nothing runs), and SIGTERM stops it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.fixtures.images import make_podman_env
from tests.integration.test_monitor_support import SyslogServer, program, syslog_server

pytestmark = pytest.mark.integration
FIXTURES = (syslog_server,)


def test_watcher_daemon_real_podman(
    host_root: Path, test_images: object, tmp_path: Path, syslog_server: SyslogServer
) -> None:
    from tests.fixtures.require import require_tool

    require_tool("podman")
    graph = host_root / "var/lib/containers/storage"
    env = make_podman_env(tmp_path / "podman")
    env.storage_conf.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{graph}"\nrunroot = "{env.runroot}"\n'
    )
    accept = tmp_path / "accept.json"
    accept.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    env.run("podman", "pull", "--signature-policy", str(accept), "-q", test_images.ref("busybox"))  # type: ignore[attr-defined]
    image_id = env.run("podman", "images", "-q").stdout.split()[0]
    env.run("podman", "tag", image_id, "registry.local/p10/busybox:mon")

    proc = subprocess.Popen(
        [program("podsec-inotify-check-containers"), "--syslog-socket", str(syslog_server.path)],
        env={**os.environ, "PODSEC_ROOT": str(host_root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        syslog_server.wait_for(lambda s: "Debug: watching" in s)
        # a container created while the watcher runs: its layer must be watched
        cid = env.run(
            "podman",
            "create",
            "--name",
            f"web{os.getpid()}",
            "registry.local/p10/busybox:mon",
            "true",
        ).stdout.strip()
        layer = json.loads(env.run("podman", "inspect", cid).stdout)[0]["GraphDriver"]["Data"][
            "UpperDir"
        ]
        diff = Path(layer)
        time.sleep(1.0)  # the watcher reacts to layers.json / containers.json being rewritten
        (diff / "etc").mkdir(exist_ok=True)
        (diff / "etc/shadow").write_text("x")
        (diff / "bin").mkdir(exist_ok=True)
        os.close(
            os.open(
                os.fsencode(diff / "bin") + b"/$(touch pwned)';reboot;'\nx\xff",
                os.O_CREAT | os.O_WRONLY,
            )
        )
        (diff / "tmp").mkdir(exist_ok=True)
        (diff / "tmp/ignored").write_text("x")
        warn = syslog_server.wait_for(lambda s: "/etc/shadow" in s)
        assert warn.startswith("<13>") and f"container web{os.getpid()}" in warn
        assert "registry.local/p10/busybox:mon" in warn and "in configuration directory" in warn
        crit = syslog_server.wait_for(lambda s: "pwned" in s)
        assert crit.startswith("<10>") and "Critical: An event CREATE" in crit
        assert "/bin/$(touch pwned)';reboot;'\\x0ax\\xff" in crit
        assert not any("/tmp/ignored" in s for s in syslog_server.lines)
        assert not (Path.cwd() / "pwned").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        env.run("podman", "rm", "-a", "-f", check=False)
    assert proc.returncode in (0, -signal.SIGTERM), proc.stderr.read() if proc.stderr else b""
