"""policy create / users / services on a --root tree with the real shadow tools and gpg:
idempotent, validated before anything changes, and never overwriting what it must not."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.fixtures.require import require_root, require_tool

from podsec.errors import PodsecError, UsageError, ValidationError
from podsec.host.paths import Host
from podsec.registry import service
from podsec.trust import policy as pol
from podsec.trust import setup, users

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


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink() and ".gnupg" not in p.parts:
            out[str(p.relative_to(root))] = (p.stat().st_mode, p.read_bytes())
    return out


@pytest.fixture
def node(host_root):
    require_root()
    require_tool("groupadd", "useradd", "gpg", "lsattr", "chattr")
    yield host_root
    # immutable config dirs must be unlocked or pytest cannot remove the tree
    subprocess.run(["chattr", "-R", "-i", str(host_root / "home")], capture_output=True)


def test_policy_create_registry_node_idempotent(node):
    r = podsec(node, "policy", "create", IP, "--registry-node")
    assert r.returncode == 0, r.stderr
    assert "other nodes: podsec policy create" in r.stderr
    p = pol.load(node / "etc/containers/policy.json")
    assert p.default[0].type == "reject"
    for t in setup.LOCAL_TRANSPORTS:
        assert p.transports[t][""][0].type == "insecureAcceptAnything"
    assert p.transports["docker"] == {}
    regd = (node / "etc/containers/registries.d/default.yaml").read_text()
    assert "  lookaside: http://sigstore.local:81/sigstore/" in regd
    assert "  sigstore: http://sigstore.local:81/sigstore/" in regd
    assert (
        'location = "registry.local"\ninsecure = true'
        in (node / "etc/containers/registries.conf.d/podsec.conf").read_text()
    )
    assert f"{IP} registry.local sigstore.local trivy.local" in (node / "etc/hosts").read_text()
    group = (node / "etc/group").read_text()
    assert "\npodman:" in group and "\npodman_dev:" in group
    keys = node / "var/sigstore/keys"
    assert oct(keys.stat().st_mode & 0o7777) == "0o775"
    assert (node / "var/sigstore/keys/policy.json").read_bytes() == (
        node / "etc/containers/policy.json"
    ).read_bytes()
    before = snapshot(node)
    again = podsec(node, "policy", "create", IP, "--registry-node", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["changed"] == []
    assert snapshot(node) == before


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["127.0.0.1"], "127.0.0.1 cannot be the registry address"),
        (["10.1.2"], "not an IP address"),
        (["10.1.2.3", "--trust", "xyz"], "expected a 40-hex key fingerprint"),
    ],
)
def test_policy_create_bad_input_writes_nothing(node, args, text):
    before = snapshot(node)
    r = podsec(node, "policy", "create", *args, "--registry-node")
    assert r.returncode == 2 and text in r.stderr
    assert snapshot(node) == before


def test_policy_create_refuses_conflicting_hosts_and_bad_files(node):
    (node / "etc/hosts").write_text("10.9.9.9 registry.local\n")
    before = snapshot(node)
    r = podsec(node, "policy", "create", IP, "--registry-node")
    assert r.returncode == 2 and "already maps registry.local to 10.9.9.9" in r.stderr
    assert snapshot(node) == before
    (node / "etc/containers").mkdir()
    bad = '{"default": [{"type": "reject"}], "transports": {"docker": {"x.io": [{"type": "signedBy", "keyType": "GPGKeys", "keyPth": "/k"}]}}}'
    (node / "etc/containers/policy.json").write_text(bad)
    before = snapshot(node)
    r = podsec(node, "policy", "create", IP, "--registry-node", "--force")
    assert r.returncode == 1
    assert (
        '/etc/containers/policy.json: transports.docker["x.io"][0].keyPth: unknown field'
        in r.stderr
    )
    assert snapshot(node) == before
    (node / "etc/containers/policy.json").unlink()
    (node / "etc/containers/registries.d").mkdir()
    (node / "etc/containers/registries.d/default.yaml").write_text(
        "default-docker:\n  lookasid: http://x/\n"
    )
    before = snapshot(node)
    r = podsec(node, "policy", "create", IP, "--registry-node", "--force")
    assert "registries.d/default.yaml: default-docker.lookasid: unknown key" in r.stderr
    assert snapshot(node) == before
    (node / "etc/containers/registries.d/default.yaml").unlink()
    r = podsec(node, "policy", "create", IP, "--registry-node", "--force")
    assert r.returncode == 0, r.stderr
    hosts = (node / "etc/hosts").read_text()
    assert "10.9.9.9" not in hosts and f"{IP} registry.local" in hosts


def test_podman_users_locked_and_idempotent(node):
    assert podsec(node, "policy", "create", IP, "--registry-node").returncode == 0
    name = f"psu{os.getpid() % 100000}"
    r = podsec(node, "users", "create-podman", name, "--password-stdin", "--json", stdin="s3cret\n")
    assert r.returncode == 0, r.stderr
    (rep,) = json.loads(r.stdout)
    assert rep["created"] and rep["password_set"] and rep["lock"] in ("immutable", "read-only")
    cfg = node / f"home/{name}/.config/containers"
    assert 'graphroot = "/home/' in (cfg / "storage.conf").read_text()
    shadow = (node / "etc/shadow").read_text()
    assert f"{name}:$6$" in shadow
    assert f"{name}:" in (node / "etc/subuid").read_text()
    group_line = next(
        x for x in (node / "etc/passwd").read_text().splitlines() if x.startswith(name + ":")
    )
    podman_gid = next(
        x for x in (node / "etc/group").read_text().splitlines() if x.startswith("podman:")
    ).split(":")[2]
    assert group_line.split(":")[3] == podman_gid
    if rep["lock"] == "immutable":
        assert users.is_immutable(cfg)
        with pytest.raises(PermissionError):
            (cfg / "policy.json").write_text("{}")
    before = snapshot(node)
    r = podsec(node, "users", "create-podman", name, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["changed"] == []
    assert snapshot(node) == before


def test_user_validation_before_any_change(node):
    assert podsec(node, "policy", "create", IP, "--registry-node").returncode == 0
    before = snapshot(node)
    for args in (
        ["create-podman", "ok1", "Bad;name"],
        ["create-podman", "dup", "dup"],
        ["create-imagemaker", "a1@team", "b1@team"],
        ["create-imagemaker", "a1@Bad Path"],
        ["create-imagemaker", "a1@x", "a1@y"],
    ):
        r = podsec(node, "users", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert snapshot(node) == before
    with pytest.raises(UsageError):
        users.parse_maker_specs(["x@registry.local/a//b"])
    assert [s.scope for s in users.parse_maker_specs(["a", "b@registry.local/t/x"])] == [
        "registry.local",
        "registry.local/t/x",
    ]


def test_imagemakers_keys_policy_and_other_users_untouched(node):
    assert podsec(node, "policy", "create", IP, "--registry-node").returncode == 0
    # another user's own policy must survive (the original rewrote every ~/.config policy)
    other = node / "home/someone/.config/containers"
    other.mkdir(parents=True)
    (other / "policy.json").write_text('{"default": [{"type": "reject"}]}')
    a, b = f"mka{os.getpid() % 100000}", f"mkb{os.getpid() % 100000}"
    r = podsec(
        node,
        "users",
        "create-imagemaker",
        f"{a}@team/apps",
        b,
        "--passphrase-stdin",
        "--json",
        stdin="pp-a\npp-b\n",
    )
    assert r.returncode == 0, r.stderr
    reps = {x["name"]: x for x in json.loads(r.stdout)}
    assert reps[a]["scope"] == "registry.local/team/apps" and reps[b]["scope"] == "registry.local"
    p = pol.load(node / "etc/containers/policy.json")
    assert (
        p.transports["docker"]["registry.local/team/apps"][0].key_path
        == f"/var/sigstore/keys/{a}.pgp"
    )
    assert p.transports["docker"]["registry.local"][0].key_path == f"/var/sigstore/keys/{b}.pgp"
    key = node / f"var/sigstore/keys/{a}.pgp"
    assert key.read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK")
    from podsec.trust import keys

    assert keys.fingerprint(key) == reps[a]["fingerprint"]
    regd = (node / f"home/{a}/.config/containers/registries.d/default.yaml").read_text()
    assert "lookaside-staging: file:///var/sigstore/sigstore/" in regd
    assert "sigstore-staging: file:///var/sigstore/sigstore/" in regd
    assert (other / "policy.json").read_text() == '{"default": [{"type": "reject"}]}'
    assert (node / "var/sigstore/keys/policy.json").read_bytes() == (
        node / "etc/containers/policy.json"
    ).read_bytes()
    # the key really has the passphrase
    from podsec.trust import signature

    gh = node / f"home/{a}/.gnupg"
    payload = signature.make_payload("registry.local/team/apps/x:1", "sha256:" + "0" * 64)
    sig = signature.sign(payload, f"{a}@registry.local", gh, passphrase="pp-a")
    assert signature.verify(sig, [key]).fingerprint == reps[a]["fingerprint"]
    with pytest.raises(PodsecError):
        signature.sign(payload, f"{a}@registry.local", gh, passphrase="wrong")
    subprocess.run(["gpgconf", "--homedir", str(gh), "--kill", "all"], capture_output=True)
    before = snapshot(node)
    r = podsec(node, "policy", "create", IP, "--registry-node", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["changed"] == []  # makers are kept
    r = podsec(node, "users", "create-imagemaker", f"{a}@team/apps", b, "--json")
    assert r.returncode == 0, r.stderr
    assert all(x["changed"] == [] for x in json.loads(r.stdout))
    assert snapshot(node) == before


def test_client_node_installs_only_pinned(node, tmp_path, sigstore):
    """A registry node publishes; a client node installs only with the right pin."""
    reg = node
    assert podsec(reg, "policy", "create", IP, "--registry-node").returncode == 0
    mk = f"mkc{os.getpid() % 100000}"
    assert podsec(reg, "users", "create-imagemaker", f"{mk}@p10").returncode == 0
    published = reg / "var/sigstore/keys"
    for f in published.iterdir():
        (sigstore.keys_dir / f.name).write_bytes(f.read_bytes())
    keys_url = f"http://{sigstore.address}:{sigstore.port}/keys/"
    client = tmp_path / "client"
    (client / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow", "hosts"):
        (client / "etc" / name).write_bytes((reg / "etc" / name).read_bytes())
    host = Host(client)
    before = snapshot(client)
    with pytest.raises(UsageError, match="not the registry node"):
        setup.create_policy(host, IP, registry_node=False, keys_url=keys_url)
    with pytest.raises(ValidationError, match="not covered by --trust"):
        setup.create_policy(host, IP, registry_node=False, keys_url=keys_url, trust=["A" * 40])
    assert snapshot(client) == before
    sha = "sha256:" + hashlib.sha256((published / "policy.json").read_bytes()).hexdigest()
    from podsec.trust import keys

    fpr = keys.fingerprint(published / f"{mk}.pgp")
    rep = setup.create_policy(host, IP, registry_node=False, keys_url=keys_url, trust=[sha, fpr])
    assert not rep.registry_node
    assert (client / "etc/containers/policy.json").read_bytes() == (
        published / "policy.json"
    ).read_bytes()
    assert (client / f"var/sigstore/keys/{mk}.pgp").is_file()
    # fingerprint alone is enough for a podsec-shaped policy
    (client / "etc/containers/policy.json").unlink()
    setup.create_policy(host, IP, registry_node=False, keys_url=keys_url, trust=[fpr])
    assert (client / "etc/containers/policy.json").is_file()
    for f in published.iterdir():
        (sigstore.keys_dir / f.name).unlink()


def test_services_create_units_verify(node):
    require_tool("systemd-analyze")
    assert podsec(node, "policy", "create", IP, "--registry-node").returncode == 0
    r = podsec(node, "services", "create", "--no-enable", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert "/etc/podsec/registry/config.yml" in rep["changed"]
    units = [
        node / "etc/systemd/system" / u for u in (service.REGISTRY_UNIT, service.SIGSTORE_UNIT)
    ]
    res = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert "podsec-" not in res.stderr, res.stderr
    conf = (node / "etc/podsec/sigstore/nginx.conf").read_text()
    assert "autoindex_format json" in conf and "root /var/sigstore;" in conf
    again = json.loads(podsec(node, "services", "create", "--no-enable", "--json").stdout)
    assert again["changed"] == []


def test_pause_image_dropin(node):
    r = podsec(
        node,
        "policy",
        "create",
        IP,
        "--registry-node",
        "--pause-image",
        "registry.local/k8s-p10/pause:3.9",
    )
    assert r.returncode == 0, r.stderr
    conf = (node / "etc/containers/containers.conf.d/podsec.conf").read_text()
    assert 'infra_image = "registry.local/k8s-p10/pause:3.9"' in conf
    before = snapshot(node)
    r = podsec(node, "policy", "create", IP, "--registry-node", "--pause-image", "Bad Image!")
    assert r.returncode == 2 and "not a valid image reference" in r.stderr
    assert snapshot(node) == before
