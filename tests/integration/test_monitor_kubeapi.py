"""watch-kubeapi against a real kube-apiserver (the harness's control_plane, with the seed's
audit policy writing a real audit log): 403 and 401 recorded with user, groups, verb,
resource, namespace, name, reason and source IP; 404 ignored; revoked certificates flagged;
syslog lines on a socket; the -m digest through a real SMTP server, rotated only after the
mail was accepted."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import time
from pathlib import Path

import pytest
from tests.fixtures.require import free_port
from tests.integration.test_monitor_support import (
    SmtpServer,
    SyslogServer,
    run_prog,
    smtp_server,
    syslog_server,
)

pytestmark = [pytest.mark.integration, pytest.mark.cluster]
FIXTURES = (smtp_server, syslog_server)


def _wait_audit(cp: object, pred: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(pred(e) for e in cp.audit_events()):  # type: ignore[attr-defined, operator]
            return
        time.sleep(0.2)
    raise AssertionError("the audit log never showed the expected event")


def test_forbidden_requests_reported_and_mailed(
    control_plane: object,
    tmp_path: Path,
    syslog_server: SyslogServer,
    smtp_server: SmtpServer,
) -> None:
    cp = control_plane
    tag = f"mon{time.monotonic_ns() % 10**8}"
    ns = f"ns-{tag}"
    cp.kubectl("create", "namespace", ns)  # type: ignore[attr-defined]
    # bob may read pods in ns (gets a 404 for a missing one: not forbidden)
    cp.kubectl("create", "role", "reader", "--verb=get,list", "--resource=pods", "-n", ns)  # type: ignore[attr-defined]
    cp.kubectl(
        "create", "rolebinding", "bob-reader", "--role=reader", f"--user=bob-{tag}", "-n", ns
    )  # type: ignore[attr-defined]
    alice = cp.kubeconfig_for(tmp_path, f"alice-{tag}", [f"dev-{tag}"])  # type: ignore[attr-defined]
    bob = cp.kubeconfig_for(tmp_path, f"bob-{tag}")  # type: ignore[attr-defined]
    mallory = cp.kubeconfig_for(tmp_path, f"mallory-{tag}")  # type: ignore[attr-defined]
    r = cp.kubectl("get", "secrets", "-n", ns, kubeconfig=alice, check=False)  # type: ignore[attr-defined]
    assert r.returncode != 0 and "forbidden" in r.stderr.lower()
    for _ in range(50):  # until the new binding is in the RBAC cache: then a plain 404
        r = cp.kubectl("get", "pod", "nothere", "-n", ns, kubeconfig=bob, check=False)  # type: ignore[attr-defined]
        if "NotFound" in r.stderr or "not found" in r.stderr:
            break
        time.sleep(0.2)
    assert "NotFound" in r.stderr or "not found" in r.stderr
    cp.kubectl("get", "pods", "-n", ns, kubeconfig=mallory, check=False)  # type: ignore[attr-defined]
    # 401: a token the apiserver does not know
    ctx = ssl.create_default_context(cafile=str(cp.ca_cert))  # type: ignore[attr-defined]
    conn = http.client.HTTPSConnection(cp.host, cp.port, context=ctx, timeout=10)  # type: ignore[attr-defined]
    conn.request("GET", f"/api/v1/namespaces/{ns}/pods", headers={"Authorization": "Bearer bogus"})
    assert conn.getresponse().status == 401
    conn.close()
    _wait_audit(
        cp,
        lambda e: (
            e.get("responseStatus", {}).get("code") == 403
            and e.get("user", {}).get("username") == f"mallory-{tag}"
        ),
    )

    # a --root tree whose /etc/kubernetes/audit/audit.log is the apiserver's real log
    root = tmp_path / "root"
    (root / "etc/kubernetes").mkdir(parents=True)
    (root / "etc/kubernetes/audit").symlink_to(cp.audit_log.parent)  # type: ignore[attr-defined]
    revoked = root / "var/lib/podsec/rbac/revoked.json"
    revoked.parent.mkdir(parents=True)
    revoked.write_text(
        json.dumps([{"cn": f"mallory-{tag}", "serial": "01ab", "revoked_at": "now"}])
    )
    log_path = "/etc/kubernetes/audit/" + cp.audit_log.name  # type: ignore[attr-defined]
    env = {"PODSEC_ROOT": str(root), "PODSEC_SYSLOG_SOCKET": str(syslog_server.path)}
    r = run_prog(
        "podsec-inotify-check-kubeapi", "-d", "--once", "--log", log_path, "--json", env=env
    )
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    mine = [x for x in records if tag in x["user"] or (x["code"] == 401)]
    alice_rec = next(x for x in mine if x["user"] == f"alice-{tag}")
    assert alice_rec["code"] == 403 and alice_rec["verb"] == "list"
    assert alice_rec["resource"] == "secrets" and alice_rec["namespace"] == ns
    assert f"dev-{tag}" in alice_rec["groups"] and alice_rec["source_ip"]
    assert alice_rec["timestamp"]
    not_found = {
        e["auditID"]
        for e in cp.audit_events()  # type: ignore[attr-defined]
        if e.get("responseStatus", {}).get("code") == 404
        and e.get("user", {}).get("username") == f"bob-{tag}"
    }
    assert not_found  # the 404 is in the audit log ...
    assert not_found <= {x["audit_id"] for x in records}  # ... and reported: the seed's > 400
    mallory_rec = next(x for x in mine if x["user"] == f"mallory-{tag}")
    assert mallory_rec["revoked"] is True
    assert any(x["code"] == 401 for x in records)

    state = root / "var/lib/podsec/u7s/log/kubeapi"
    lines = (state / "forbidden.log").read_text().splitlines()
    assert len(lines) == len(records)
    assert json.loads((state / "cursor.json").read_text())["offset"] > 0
    syslog_server.wait_for(lambda s: f"user alice-{tag}" in s and s.startswith("<10>"))
    syslog_server.wait_for(lambda s: "REVOKED" in s and f"mallory-{tag}" in s)

    # the cursor: a second run reports nothing again
    r = run_prog(
        "podsec-inotify-check-kubeapi", "-d", "--once", "--log", log_path, "--json", env=env
    )
    assert not any(tag in line for line in r.stdout.splitlines())

    # -m with the SMTP server down: exit non-zero, the records stay
    r = run_prog(
        "podsec-inotify-check-kubeapi", "-m", "-M", "sec@example.org",
        "--smtp", f"127.0.0.1:{free_port()}", env=env,
    )  # fmt: skip
    assert r.returncode != 0 and "mail" in r.stderr and len(r.stderr.strip().splitlines()) <= 2
    assert not (state / "forbidden.log.1").exists()
    # no option (the seed's cron line) with the server up: mailed, then rotated
    r = run_prog(
        "podsec-inotify-check-kubeapi", "-M", "sec@example.org",
        "--smtp", smtp_server.address, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert len(smtp_server.messages) == 1
    body = smtp_server.messages[0].get_payload()
    assert f"alice-{tag}" in body and "REVOKED" in body
    assert (state / "forbidden.log.1").exists()
    assert not (state / "forbidden.log").exists() or (state / "forbidden.log").stat().st_size == 0


def test_usage_one_mode_at_most(tmp_path: Path) -> None:
    r = run_prog("podsec-inotify-check-kubeapi", "-d", "-m", env={"PODSEC_ROOT": str(tmp_path)})
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    r = run_prog("podsec-inotify-check-kubeapi", "-d", "--codes", "200")
    assert r.returncode == 2 and "outside 401-599" in r.stderr


def test_no_option_mails_the_log_and_starts_it_afresh(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """The seed: `podsec-inotify-check-kubeapi` with no argument mails forbidden.log to root
    and empties it (podsec demanded -m)."""
    from podsec.monitor.audit_events import Record

    state = tmp_path / "var/lib/podsec/u7s/log/kubeapi"
    state.mkdir(parents=True)
    rec = Record(
        "2026-12-03T10:00:00Z", "eve", ("dev",), "get", "secrets", "ns", "s", 404, "", "10.0.0.9",
        "/api/v1/namespaces/ns/secrets/s", "id-1", False,
    )  # fmt: skip
    (state / "forbidden.log").write_text(rec.to_json() + "\n")
    r = run_prog(
        "podsec-inotify-check-kubeapi", "--smtp", smtp_server.address,
        env={"PODSEC_ROOT": str(tmp_path), "MAILTO": ""},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert len(smtp_server.messages) == 1 and smtp_server.envelopes[0][1] == ["root"]
    assert "eve" in smtp_server.messages[0].get_payload()
    assert not (state / "forbidden.log").exists() or not (state / "forbidden.log").read_text()


def test_daemon_follows_the_live_log(
    control_plane: object, tmp_path: Path, syslog_server: SyslogServer
) -> None:
    import signal
    import subprocess

    from tests.integration.test_monitor_support import program

    cp = control_plane
    root = tmp_path / "root"
    (root / "etc/kubernetes").mkdir(parents=True)
    (root / "etc/kubernetes/audit").symlink_to(cp.audit_log.parent)  # type: ignore[attr-defined]
    log_path = "/etc/kubernetes/audit/" + cp.audit_log.name  # type: ignore[attr-defined]
    proc = subprocess.Popen(
        [program("podsec-inotify-check-kubeapi"), "-d", "--log", log_path],
        env={
            **os.environ,
            "PODSEC_ROOT": str(root),
            "PODSEC_SYSLOG_SOCKET": str(syslog_server.path),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        state = root / "var/lib/podsec/u7s/log/kubeapi/cursor.json"
        deadline = time.monotonic() + 30
        while not state.exists() and time.monotonic() < deadline:  # caught up with the past
            time.sleep(0.1)
        who = f"late-{time.monotonic_ns() % 10**8}"
        kc = cp.kubeconfig_for(tmp_path, who)  # type: ignore[attr-defined]
        cp.kubectl("get", "configmaps", "-n", "kube-system", kubeconfig=kc, check=False)  # type: ignore[attr-defined]
        line = syslog_server.wait_for(lambda s: f"user {who}" in s, timeout=30)
        assert "Forbidden (403)" in line and "configmaps" in line
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert proc.returncode in (0, -signal.SIGTERM)
