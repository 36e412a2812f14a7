"""The CLI contract: one-line errors, exit codes, Russian output."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PODSEC = [sys.executable, "-m", "podsec.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {
        k: v for k, v in os.environ.items() if not k.startswith(("U7S_", "LANG", "LC_", "PODSEC"))
    }
    full.update(env or {})
    return subprocess.run([*PODSEC, *args], capture_output=True, text=True, env=full, timeout=60)


def test_unknown_flag_one_line_exit_2() -> None:
    r = run("doctor", "--bogus")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1
    assert "--bogus" in r.stderr


def test_bad_root_exit_2() -> None:
    r = run("--root", "/nonexistent/podsec", "doctor", "--no-tools")
    assert r.returncode == 2
    assert r.stderr.strip() == "podsec: --root /nonexistent/podsec: not a directory"


def test_invalid_toml_exit_2_nothing_written(tmp_path: Path) -> None:
    (tmp_path / "etc/podsec").mkdir(parents=True)
    (tmp_path / "etc/podsec/podsec.toml").write_text("[u7s\n")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    r = run("--root", str(tmp_path), "doctor", "--no-tools")
    assert r.returncode == 2 and "invalid TOML" in r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_unknown_u7s_value_exit_2(tmp_path: Path) -> None:
    r = run("--root", str(tmp_path), "doctor", "--no-tools", env={"U7S_CNI_PLUGIN": "weave"})
    assert r.returncode == 2 and "U7S_CNI_PLUGIN" in r.stderr


def test_russian_help_and_errors() -> None:
    ru = {"LANG": "ru_RU.UTF-8"}
    r = run("--help", env=ru)
    assert r.returncode == 0
    assert "Использование:" in r.stdout and "Параметры" in r.stdout
    r = run("--root", "/nonexistent/x", "doctor", env=ru)
    assert "не является каталогом" in r.stderr
    r = run("doctor", "--bogus", env=ru)
    assert "Нет такого параметра" in r.stderr


def test_doctor_json_exit_code_matches_failures(tmp_path: Path) -> None:
    import json

    r = run("--root", str(tmp_path), "doctor", "--json", "--no-tools")
    doc = json.loads(r.stdout)
    assert r.returncode == (1 if doc["summary"]["fail"] else 0)


@pytest.mark.parametrize(
    "group", ["policy", "users", "services", "images", "u7s", "lb", "ingress", "rbac", "monitor"]
)
def test_groups_exist(group: str) -> None:
    assert run(group, "--help").returncode == 0


def test_build_invulnerable_image_usage_shows_context_optional() -> None:
    """issue 16: the usage said CONTEXT was required while its own example omits it."""
    r = run("monitor", "build-invulnerable-image", "--help")
    usage = " ".join(r.stdout.split("\n\n")[0].split())
    assert "IMAGE [DOCKERFILE] [CONTEXT]" in usage, usage
    assert "build-invulnerable-image registry.local/app:1\n" in r.stdout


def test_u7s_status_says_where_kube_proxy_runs(tmp_path: Path) -> None:
    """issue 16: the seed's health check `kubectl get daemonsets.apps -A` lists kube-proxy;
    podsec runs it as a node process, so `podsec u7s status` says so (table and JSON)."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text(
        "root:x:0:0::/root:/bin/sh\nu7s-admin:x:990:990::/var/lib/u7s-admin:/bin/sh\n"
    )
    (etc / "group").write_text("root:x:0:\nu7s-admin:x:990:\n")
    r = run("--root", str(tmp_path), "u7s", "status")
    assert "kube-proxy: node process under the u7s supervisor, not a DaemonSet" in r.stderr, (
        r.stdout + r.stderr
    )
    assert "kubectl get ds -A does not list it" in r.stderr
    r = run("--root", str(tmp_path), "u7s", "status", "--json")
    doc = json.loads(r.stdout)
    assert "not a DaemonSet" in doc["services"]["kube-proxy"]["where"]
