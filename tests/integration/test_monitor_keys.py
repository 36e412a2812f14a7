"""check-keys with real gpg keys: OK, WARNING (expiring), CRITICAL (expired, revoked, weak RSA,
SHA-1 self-signature, no owner, missing file) and UNKNOWN (no readable policy), through the
plugin's own command line (exit codes and status line) and its evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.fixtures.require import require_tool

from podsec.host.paths import Host
from podsec.monitor import keys_check
from podsec.trust import sigstore_keys

pytestmark = pytest.mark.integration
KEYS = "var/sigstore/keys"


def _gpg(home: Path, *args: str) -> str:
    r = subprocess.run(
        ["gpg", "--batch", "--no-tty", "--passphrase", "", *args],
        env={**os.environ, "GNUPGHOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return r.stdout


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Public key files: ok, soon (10 days), old (expired in 2020), revoked, weak (RSA 2048),
    sha1 (SHA-1 self-signature)."""
    require_tool("gpg", "gpgconf")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    gen = ["--quick-gen-key"]
    _gpg(home, *gen, "ok <ok@x>", "ed25519", "sign", "never")
    _gpg(home, *gen, "soon <soon@x>", "ed25519", "sign", "10d")
    _gpg(
        home, "--faked-system-time", "20200101T000000", *gen, "old <old@x>", "ed25519", "sign", "1d"
    )
    _gpg(home, *gen, "revoked <revoked@x>", "ed25519", "sign", "never")
    _gpg(home, *gen, "weak <weak@x>", "rsa2048", "sign", "never")
    _gpg(home, "--cert-digest-algo", "SHA1", *gen, "sha1 <sha1@x>", "ed25519", "sign", "never")
    colons = _gpg(home, "--with-colons", "--list-keys", "revoked@x")
    fpr = next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr"))
    rev = (
        (home / "openpgp-revocs.d" / f"{fpr}.rev").read_text().replace(":-----BEGIN", "-----BEGIN")
    )
    (home / "rev.asc").write_text(rev)
    _gpg(home, "--import", str(home / "rev.asc"))
    out = {}
    for name in ("ok", "soon", "old", "revoked", "weak", "sha1"):
        out[name] = subprocess.run(
            ["gpg", "--batch", "--armor", "--export", f"{name}@x"],
            env={**os.environ, "GNUPGHOME": str(home)},
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": str(home)})
    out["cosign"] = sigstore_keys.generate(b"").public_key
    return out


def _node(root: Path, keys: dict[str, bytes], files: dict[str, str]) -> Path:
    """A tree whose policy trusts ``files`` (scope → key file name) with those key bytes."""
    (root / KEYS).mkdir(parents=True)
    (root / "etc/containers").mkdir(parents=True)
    users = "".join(f"{u}:x:{1000 + i}:1000::/home/{u}:/bin/sh\n" for i, u in enumerate(keys))
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n" + users)
    (root / "etc/group").write_text("root:x:0:\npodman_dev:x:1000:\n")
    docker = {}
    for scope, name in files.items():
        user = name.split(".", 1)[0]
        suffix = ".pub" if user == "cosign" else ".pgp"
        if user in keys:
            (root / KEYS / f"{name}{suffix}").write_bytes(keys[user])
        kind = "sigstoreSigned" if suffix == ".pub" else "signedBy"
        req = {"type": kind, "keyPath": f"/{KEYS}/{name}{suffix}"}
        if kind == "signedBy":
            req["keyType"] = "GPGKeys"
        docker[f"registry.local/{scope}"] = [req]
    policy = {"default": [{"type": "reject"}], "transports": {"docker": docker}}
    (root / "etc/containers/policy.json").write_text(json.dumps(policy))
    return root


def _plugin(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podsec.cli", "--root", str(root), "monitor", "check-keys", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ok(made: dict[str, bytes], tmp_path: Path) -> None:
    root = _node(tmp_path, made, {"a": "ok", "b": "cosign"})
    r = _plugin(root)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("KEYS OK")
    assert "'keys'=2;" in r.stdout
    assert "'soonest'=U" in r.stdout  # no key expires


def test_warning_days_before_expiry(made: dict[str, bytes], tmp_path: Path) -> None:
    root = _node(tmp_path, made, {"a": "ok", "b": "soon"})
    r = _plugin(root)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.startswith("KEYS WARNING") and "expires in" in r.stdout
    soonest = float(r.stdout.split("'soonest'=", 1)[1].split("d", 1)[0])
    assert 9.5 < soonest <= 10  # perfdata: days to the nearest expiry
    assert _plugin(root, "--days", "5").returncode == 0  # outside the warning period


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("old", "expired"),
        ("revoked", "revoked"),
        ("weak", "RSA 2048 < 3072"),
        ("sha1", "SHA-1 self-signature"),
    ],
)
def test_critical(made: dict[str, bytes], tmp_path: Path, key: str, why: str) -> None:
    root = _node(tmp_path, made, {"a": "ok", "b": key})
    r = _plugin(root)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout.startswith("KEYS CRITICAL") and why in r.stdout


def test_weak_rsa_follows_the_site_minimum(made: dict[str, bytes], tmp_path: Path) -> None:
    root = _node(tmp_path, made, {"b": "weak"})
    assert _plugin(root, "--min-rsa", "2048").returncode == 0


def test_no_owner_and_missing_file_are_critical(made: dict[str, bytes], tmp_path: Path) -> None:
    root = _node(tmp_path, made, {"a": "ok"})
    (root / KEYS / "ghost.pgp").write_bytes(made["ok"])  # a maker account that is gone
    policy = json.loads((root / "etc/containers/policy.json").read_text())
    policy["transports"]["docker"]["registry.local/g"] = [
        {"type": "signedBy", "keyType": "GPGKeys", "keyPath": f"/{KEYS}/ghost.pgp"}
    ]
    policy["transports"]["docker"]["registry.local/m"] = [
        {"type": "sigstoreSigned", "keyPath": "/etc/pki/lost.pub"}
    ]
    (root / "etc/containers/policy.json").write_text(json.dumps(policy))
    result = keys_check.evaluate(Host(root))
    problems = {f.key.split(" ")[0]: f.problem for f in result.findings}
    assert "user ghost does not exist" in problems[f"/{KEYS}/ghost.pgp"]
    assert problems["/etc/pki/lost.pub"] == "cannot be read"
    assert all(f.weight == keys_check.BAD for f in result.findings)
    assert _plugin(root).returncode == 2


def test_unknown_without_a_policy(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    r = _plugin(tmp_path)
    assert r.returncode == 3, r.stdout + r.stderr
    assert r.stdout.startswith("KEYS UNKNOWN")
