"""The installed plugin programs end to end: exit codes, status line and perfdata, syslog
lines on a real socket (and what nagwad's sed makes of them), mail through a real SMTP
server, --help/usage as UNKNOWN, non-root UNKNOWN; units verified by systemd-analyze."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.integration.test_monitor_support import (
    SmtpServer,
    SyslogServer,
    program,
    run_prog,
    smtp_server,
    syslog_server,
)
from tests.unit.test_monitor_policy import GOOD_POLICY, LOOKASIDE, add_user

pytestmark = pytest.mark.integration
FIXTURES = (smtp_server, syslog_server)  # imported fixtures, used by name
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tree(host_root: Path) -> Path:
    with (host_root / "etc/group").open("a") as fh:
        fh.write("podman:x:500:\npodman_dev:x:501:\n")
    cdir = host_root / "etc/containers"
    (cdir / "registries.d").mkdir(parents=True)
    (cdir / "policy.json").write_text(json.dumps(GOOD_POLICY))
    (cdir / "registries.d/default.yaml").write_text(LOOKASIDE)
    return host_root


def test_check_policy_ok_and_critical_with_syslog_and_mail(
    tree: Path, syslog_server: SyslogServer, smtp_server: SmtpServer
) -> None:
    env = {"PODSEC_ROOT": str(tree), "PODSEC_SYSLOG_SOCKET": str(syslog_server.path)}
    add_user(tree, "good", 2101)
    r = run_prog("podsec-inotify-check-policy", "-w", "1", "-c", "100", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(
        "POLICY OK: Containerization policies are not violated | 'metric'=0;1;100;0"
    )

    add_user(tree, "outsider", 2102, groups=("wheel",))
    r = run_prog(
        "podsec-inotify-check-policy",
        "-vv",
        "-w",
        "1",
        "-c",
        "100",
        "-M",
        "sec@example.org",
        "--smtp",
        smtp_server.address,
        env=env,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith(
        "POLICY CRITICAL: Violation of user containerization policies (metric 101)"
    )
    assert first.count("|") == 1 and "'not_in_podman_grp'=101;;;0;101" in first
    assert "outsider outside the podman group" in r.stdout
    line = syslog_server.wait_for(lambda s: "Critical(101)" in s)
    assert line.startswith("<10>") and "podsec-inotify-check-policy[" in line
    assert line.endswith("Critical: Critical(101): Users outsider outside the podman group")
    # nagwad's rule turns it into a CRITICAL event for the podsec-inotify-check-policy filter
    sed = Path(__file__).resolve().parents[2] / "src/podsec/data/monitor/nagwad/podsec.sed"
    out = subprocess.run(
        ["sed", "-n", "-f", str(sed)],
        input=line[4:] + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith(
        "podsec-inotify-check-policy:CRITICAL:podsec-inotify-check-policy(Critical)"
    )
    # the mail arrived, with the status line as subject and the long output as body
    assert len(smtp_server.messages) == 1
    mail = smtp_server.messages[0]
    assert smtp_server.envelopes[0][1] == ["sec@example.org"]
    assert mail["Subject"].startswith("POLICY CRITICAL")
    assert "outside the podman group" in mail.get_payload()


def test_highest_severity_wins(tree: Path) -> None:
    add_user(tree, "outsider", 2103, groups=())
    env = {"PODSEC_ROOT": str(tree), "PODSEC_SYSLOG_SOCKET": "/nonexistent/sock"}
    # the original said Warning here (bash hash order)
    r = run_prog("podsec-inotify-check-policy", "-w", "0", "-c", "100", env=env)
    assert r.returncode == 2 and r.stdout.startswith("POLICY CRITICAL")
    r = run_prog("podsec-inotify-check-policy", "-w", "0", "-c", "1000", env=env)
    assert r.returncode == 1 and r.stdout.startswith("POLICY WARNING")
    r = run_prog("podsec-inotify-check-policy", "-c", "@100:200", env=env)
    assert r.returncode == 2
    r = run_prog("podsec-inotify-check-policy", "-c", "50-200", env=env)  # the original's A-B
    assert r.returncode == 0 and "50:200" in r.stderr


def test_usage_help_and_non_root_are_unknown(tree: Path) -> None:
    env = {"PODSEC_ROOT": str(tree)}
    r = run_prog("podsec-inotify-check-policy", "-c", "garbage", env=env)
    assert r.returncode == 3 and r.stdout.startswith("POLICY UNKNOWN: invalid threshold range")
    r = run_prog("podsec-inotify-check-policy", "--bogus", env=env)
    assert r.returncode == 3 and len(r.stderr.strip().splitlines()) == 1
    r = run_prog("podsec-inotify-check-policy", "--help", env=env)
    assert r.returncode == 3 and "-c RANGE" in r.stdout
    r = run_prog("podsec-inotify-check-policy", "--version", env=env)
    assert r.returncode == 3 and r.stdout.startswith("podsec-inotify-check-policy ")
    r = run_prog("podsec", "monitor", "check-policy", "--help", env=env)
    assert r.returncode == 0


def test_non_root_is_unknown(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # (the venv under /root cannot be executed by another user here: run the command in-process)
    from click.testing import CliRunner

    from podsec.cli.monitor_policy import check_policy_cmd

    monkeypatch.setenv("PODSEC_ROOT", str(tree))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    r = CliRunner().invoke(check_policy_cmd, ["-c", "100"])
    assert r.exit_code == 3
    assert r.output.startswith("POLICY UNKNOWN: plugin must be run as root user")


def test_json_output_and_unified_name(tree: Path) -> None:
    add_user(tree, "outsider", 2104, groups=())
    r = run_prog("podsec", "--root", str(tree), "monitor", "check-policy", "-c", "100", "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 2 and doc["exit_code"] == 2 and doc["perfdata"]["metric"] == 101


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    from tests.fixtures.require import require_tool

    require_tool("systemd-analyze")
    from podsec.monitor import install

    src = install.data_dir() / "systemd"
    bindir = Path(program("podsec-inotify-check-policy")).parent
    units = tmp_path / "units"
    units.mkdir()
    for name in install.unit_names():
        text = (src / name).read_text()
        for line in text.splitlines():
            if line.startswith("ExecStart="):
                assert not any(tok in line for tok in (">", "<", "2>&1", "|", ";", "&&"))
        if name.endswith(".service"):
            assert "NoNewPrivileges=yes" in text and "SyslogIdentifier=podsec-inotify-" in text
            assert "\nRuntimeMaxSec=" not in text
        text = text.replace("/usr/bin/", f"{bindir}/")
        # trivy's server unit runs trivy's own binary, which cannot be installed here: a
        # stand-in at the path the unit names, so verify checks everything else
        if f"{bindir}/trivy " in text:
            stand_in = tmp_path / "trivy-stand-in"
            stand_in.write_text("#!/bin/sh\nexit 0\n")
            stand_in.chmod(0o755)
            text = text.replace(f"{bindir}/trivy ", f"{stand_in} ")
        (units / name).write_text(text)
    # verify runs `man` for each Documentation=man:…: the pages are generated as the packages
    # do (they are not installed on this machine), so a unit naming a page that does not
    # exist still fails
    man = tmp_path / "man"
    gen = subprocess.run(
        [
            sys.executable,
            "-m",
            "podsec.cli.manpage",
            f"--pyproject={REPO / 'pyproject.toml'}",
            f"--man={man / 'man1'}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert gen.returncode == 0, gen.stderr
    r = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in units.iterdir())],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "MANPATH": str(man)},
    )
    problems = [
        line
        for line in r.stderr.splitlines()
        if "podsec-inotify" in line and "Unit u7s.service not found" not in line
    ]
    assert problems == [], r.stderr


def test_install_writes_configs_idempotently(host_root: Path) -> None:
    r = run_prog("podsec", "--root", str(host_root), "monitor", "install")
    assert r.returncode == 0, r.stderr
    assert (host_root / "etc/systemd/system/podsec-inotify-check-policy.timer").exists()
    nrpe = (host_root / "etc/nagios/nrpe-commands/podsec-commands.cfg").read_text()
    assert (
        "command[podsec_inotify_check_policy]=/usr/lib/nagios/plugins/check_nagwad "
        "'podsec-inotify-check-policy'" in nrpe
    )
    icinga = (host_root / "etc/icinga2/conf.d/podsec.conf").read_text()
    assert (
        icinga.count("apply Service") == 9
        and 'vars.nagwad_filter = "podsec-inotify-check-kubeapi"' in icinga
    )
    nagios = (host_root / "etc/nagios/templates/podsec-services.cfg").read_text()
    assert (
        "Alerts detected via Kubernetes API audit" in nagios
        and nagios.count("define service {") == 9
    )
    r = run_prog("podsec", "--root", str(host_root), "monitor", "install")
    assert r.returncode == 0 and r.stdout == ""
    if shutil.which("systemctl"):
        r = run_prog("podsec", "--root", str(host_root), "monitor", "install", "--enable")
        assert r.returncode == 0, r.stderr
        assert (
            host_root / "etc/systemd/system/timers.target.wants/podsec-inotify-check-policy.timer"
        ).is_symlink()
