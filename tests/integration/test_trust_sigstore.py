"""Sigstore key signatures against a real docker-registry: podsec signs in Python, pushes the
attachment (sha256-<hex>.sig) and verifies it as containers/image would; a tampered
attachment is refused. Debian's own skopeo is asked too: it reads the attachment but
refuses to verify or make sigstore signatures ("Debian-local change: sigstore disabled")."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.fixtures.require import require_root, require_tool
from tests.integration.test_archive_roundtrip import layout, saved  # noqa: F401 - fixtures

from podsec.host.paths import Host
from podsec.registry import sign
from podsec.registry.client import RegistryClient
from podsec.trust import attachments, sigstore, sigstore_keys, verify, view
from podsec.trust import policy as pol
from podsec.trust import registries_d as rd
from podsec.u7s import admission

pytestmark = pytest.mark.integration


def _node(root: Path, registry_host: str, pub: Path, lookaside: Path) -> Host:
    """A node tree: policy requiring a sigstore signature for REGISTRY/sig (the key in the
    tree's /var/sigstore/keys), attachments on for that scope."""
    policy = {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {
                f"{registry_host}/sig": [
                    {"type": "sigstoreSigned", "keyPath": "/var/sigstore/keys/maker.pub"}
                ],
            }
        },
    }
    (root / "var/sigstore/keys").mkdir(parents=True)
    (root / "var/sigstore/keys/maker.pub").write_bytes(pub.read_bytes())
    (root / "etc/containers/registries.d").mkdir(parents=True)
    (root / "etc/containers/policy.json").write_text(json.dumps(policy))
    (root / "etc/containers/registries.d/default.yaml").write_text(
        f"default-docker:\n  lookaside: file://{lookaside}\n"
        f"docker:\n  {registry_host}/sig:\n    use-sigstore-attachments: true\n"
    )
    return Host(root)


def _push(test_images, registry, path: str, name: str = "alpha") -> None:
    subprocess.run(
        ["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
         test_images.ref(name), registry.ref(path)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def test_sign_push_verify_and_tamper(registry, test_images, tmp_path: Path) -> None:
    pair = sigstore_keys.generate(b"pass")
    (tmp_path / "maker.key").write_bytes(pair.private_key)
    pub = tmp_path / "maker.pub"
    pub.write_bytes(pair.public_key)
    lookaside = tmp_path / "lookaside"
    lookaside.mkdir()
    host = _node(tmp_path / "root", registry.host, pub, lookaside)
    _push(test_images, registry, "sig/app:1")
    image = f"{registry.host}/sig/app:1"
    trust = view.effective(host, None)
    client = RegistryClient(registry.url)
    digest = client.head_manifest("sig/app", "1")
    assert digest is not None

    before = verify.check_image(host, image, digest, trust.policy, trust.regd)
    assert not before.accepted
    assert before.reason == "A signature was required, but no signature exists"

    req = sign.SignRequest(
        images=(image,), sigstore_key=tmp_path / "maker.key", passphrase="pass",
        registry_url=registry.url,
    )  # fmt: skip
    (done,) = sign.sign_images(host, req)
    assert done.added and done.accepted, done.reason
    assert attachments.tag_for(digest) in (client.tags("sig/app") or [])
    # through the stdlib reader the plugins and the webhook use
    after = verify.check_image(host, image, digest, trust.policy, trust.regd)
    assert after.accepted, after.reason
    assert after.attachments == f"{registry.host}/sig/app:{attachments.tag_for(digest)}"
    (again,) = sign.sign_images(host, req)
    assert not again.added and again.accepted  # nothing added twice

    # another key's policy refuses it
    other = tmp_path / "other.pub"
    other.write_bytes(sigstore_keys.generate(b"x").public_key)
    wrong = _node(tmp_path / "root2", registry.host, other, lookaside)
    t2 = view.effective(wrong, None)
    refused = verify.check_image(wrong, image, digest, t2.policy, t2.regd)
    assert not refused.accepted
    assert "cryptographic signature verification failed" in refused.reason

    # a tampered payload (same signature annotation) is refused
    (blob,) = attachments.read(client, "sig/app", digest)
    good = sigstore.from_blob(blob)
    assert good is not None
    forged_payload = good.payload.replace(b"sig/app:1", b"sig/app:2")
    forged = sigstore.Sigstore(good.mime_type, forged_payload, good.annotations)
    _push(test_images, registry, "sig/app:2")
    assert sign.push_sigstore(client, "sig/app", digest, [forged])
    v = verify.check_image(host, f"{registry.host}/sig/app:2", digest, trust.policy, trust.regd)
    assert not v.accepted
    assert "cryptographic signature verification failed" in v.reason

    # the containerd webhook: the signed image admitted, one whose only signature was
    # tampered with refused, with the verifier's reason in the AdmissionReview
    _push(test_images, registry, "sig/tampered:1", "beta")
    d2 = client.head_manifest("sig/tampered", "1")
    assert d2 is not None and d2 != digest
    key = sigstore_keys.load_private(pair.private_key, b"pass")
    signed = sigstore.sign_image(key, f"{registry.host}/sig/tampered:1", d2)
    flipped = bytearray(signed.payload)
    flipped[flipped.index(b"sha256:") + 7] ^= 1  # one bit of the signed digest
    sign.push_sigstore(
        client,
        "sig/tampered",
        d2,
        [sigstore.Sigstore(signed.mime_type, bytes(flipped), signed.annotations)],
    )
    verifier = admission.Verifier(host, None)
    assert verifier(image) == (True, after.reason)
    ok, why = verifier(f"{registry.host}/sig/tampered:1")
    assert not ok and "cryptographic signature verification failed" in why
    pod = {"spec": {"containers": [{"name": "c", "image": f"{registry.host}/sig/tampered:1"}]}}
    answer = admission.review({"request": {"uid": "u1", "object": pod}}, verifier)
    assert answer["response"]["allowed"] is False
    assert "cryptographic signature verification failed" in answer["response"]["status"]["message"]


def test_debian_skopeo_refuses_sigstore(registry, test_images, tmp_path: Path) -> None:
    """What Debian 12's skopeo can do with these signatures: nothing — verifying refuses
    (sigstore compiled out), and so does signing. Recorded as a fact for the README."""
    pair = sigstore_keys.generate(b"")
    pub = tmp_path / "k.pub"
    pub.write_bytes(pair.public_key)
    (tmp_path / "k.key").write_bytes(pair.private_key)
    lookaside = tmp_path / "lookaside"
    lookaside.mkdir()
    host = _node(tmp_path / "root", registry.host, pub, lookaside)
    _push(test_images, registry, "sig/deb:1")
    image = f"{registry.host}/sig/deb:1"
    (done,) = sign.sign_images(
        host,
        sign.SignRequest(
            images=(image,), sigstore_key=tmp_path / "k.key", registry_url=registry.url
        ),
    )
    assert done.accepted, done.reason
    root = tmp_path / "root/etc/containers"
    # skopeo reads the key path as written: point it at the tree's copy
    (root / "policy.json").write_text(
        (root / "policy.json")
        .read_text()
        .replace("/var/sigstore", str(tmp_path / "root/var/sigstore"))
    )
    copy = subprocess.run(
        ["skopeo", "--policy", str(root / "policy.json"), "--registries.d",
         str(root / "registries.d"), "copy", "--src-tls-verify=false",
         f"docker://{image}", f"dir:{tmp_path / 'out'}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert copy.returncode != 0
    assert "sigstore disabled" in copy.stderr, copy.stderr
    (tmp_path / "empty-passphrase").write_text("")
    signing = subprocess.run(
        ["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
         "--sign-by-sigstore-private-key", str(tmp_path / "k.key"),
         "--sign-passphrase-file", str(tmp_path / "empty-passphrase"),
         test_images.ref("beta"), registry.ref("sig/deb-signed:1")],
        capture_output=True, text=True, timeout=120, input="\n",
    )  # fmt: skip
    assert signing.returncode != 0
    assert "sigstore disabled" in signing.stderr, signing.stderr


@pytest.fixture
def node(host_root):
    require_root()
    require_tool("groupadd", "useradd", "lsattr", "chattr")
    yield host_root
    subprocess.run(["chattr", "-R", "-i", str(host_root / "home")], capture_output=True)


def podsec(root: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podsec.cli", "--root", str(root), *args],
        input=stdin, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_create_imagemaker_sigstore(node: Path) -> None:
    assert podsec(node, "policy", "create", "10.20.30.40", "--registry-node").returncode == 0
    mk = f"mks{os.getpid() % 100000}"
    r = podsec(
        node, "users", "create-imagemaker", "--sigstore", f"{mk}@apps", "--passphrase-stdin",
        "--json", stdin="pp\n",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    (rep,) = json.loads(r.stdout)
    pub = node / f"var/sigstore/keys/{mk}.pub"
    assert rep["fingerprint"] == "sha256:" + hashlib.sha256(pub.read_bytes()).hexdigest()
    p = pol.load(node / "etc/containers/policy.json")
    (req,) = p.transports["docker"]["registry.local/apps"]
    assert (req.type, req.key_path, req.signed_identity) == (
        "sigstoreSigned", f"/var/sigstore/keys/{mk}.pub", None,
    )  # fmt: skip
    assert (node / "var/sigstore/keys/policy.json").read_bytes() == (
        node / "etc/containers/policy.json"
    ).read_bytes()
    system = rd.load_dir(node / "etc/containers/registries.d")
    assert rd.use_sigstore_attachments(system, "registry.local/apps/x:1")
    assert not rd.use_sigstore_attachments(system, "registry.local/other/x:1")
    own = rd.load_dir(node / f"home/{mk}/.config/containers/registries.d")
    assert rd.use_sigstore_attachments(own, "registry.local/apps/x:1")
    private = node / f"home/{mk}/.config/podsec/sigstore.key"
    assert private.stat().st_mode & 0o777 == 0o600
    key = sigstore_keys.load_private(private.read_bytes(), b"pp")
    assert sigstore.public_key_pem(key.public_key()) == pub.read_bytes()
    with pytest.raises(sigstore.SigstoreError, match="decrypt"):
        sigstore_keys.load_private(private.read_bytes(), b"wrong")
    # a re-run changes nothing; policy create keeps the sigstore maker and the attachments
    before = {p: p.read_bytes() for p in node.rglob("*") if p.is_file() and ".gnupg" not in p.parts}
    r = podsec(node, "users", "create-imagemaker", "--sigstore", f"{mk}@apps", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["changed"] == [], r.stdout
    r = podsec(node, "policy", "create", "10.20.30.40", "--registry-node", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["changed"] == [], r.stdout
    after = {p: p.read_bytes() for p in node.rglob("*") if p.is_file() and ".gnupg" not in p.parts}
    assert after == before


def test_load_sign_sigstore(registry, saved, tmp_path: Path) -> None:  # noqa: F811
    """load-sign --sigstore: every image pushed with a sigstore attachment before its tag,
    accepted by podsec's verifier; a re-run skips all and adds no attachment layer."""
    pair = sigstore_keys.generate(b"pp")
    key = tmp_path / "maker.key"
    key.write_bytes(pair.private_key)
    pub = tmp_path / "maker.pub"
    pub.write_bytes(pair.public_key)
    path = f"{registry.host}/sload{os.getpid()}"
    home = tmp_path / "home"
    conf = home / ".config/containers"  # what load-sign reads for this user
    (conf / "registries.d").mkdir(parents=True)
    policy = {
        "default": [{"type": "reject"}],
        "transports": {"docker": {path: [{"type": "sigstoreSigned", "keyPath": str(pub)}]}},
    }
    (conf / "policy.json").write_text(json.dumps(policy))
    (conf / "registries.d/default.yaml").write_text(
        f"docker:\n  {path}:\n    use-sigstore-attachments: true\n"
    )
    (tmp_path / "pass").write_text("pp\n")

    def load() -> dict:
        r = subprocess.run(
            [sys.executable, "-m", "podsec.cli", "images", "load-sign", "--sigstore", str(saved),
             "amd64", str(key), path, "--passphrase-file", str(tmp_path / "pass"),
             "--policy", str(conf / "policy.json"), "--registry-url", registry.url, "--json"],
            capture_output=True, text=True, timeout=600,
            env={**os.environ, "HOME": str(home)},
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    first = load()
    assert {i["status"] for i in first["images"]} == {"pushed"}
    client = RegistryClient(registry.url)
    regd = rd.load_dir(conf / "registries.d")
    pol_ = pol.load(conf / "policy.json")
    for item in first["images"]:
        repo = item["target"].split("/", 1)[1].rsplit(":", 1)[0]
        (blob,) = attachments.read(client, repo, item["digest"])
        assert sigstore.from_blob(blob) is not None
        v = verify.check_image(Host(), item["target"], item["digest"], pol_, regd)
        assert v.accepted, v.reason
    again = load()
    assert {i["status"] for i in again["images"]} == {"skipped"}
    for item in again["images"]:
        repo = item["target"].split("/", 1)[1].rsplit(":", 1)[0]
        assert len(attachments.read(client, repo, item["digest"])) == 1


def test_rotation_without_an_outage(node: Path, registry, test_images, tmp_path: Path) -> None:
    """Old key, images signed, rotate, re-sign, retire: every image stays accepted at every
    step, and --retire refuses (changing nothing) while an old-only signature remains.

    Adapted: the maker's scope is moved from registry.local/apps to this test registry's
    name (127.0.0.1:PORT/apps unless the run has the real names) and the lookaside to a
    local directory."""
    assert podsec(node, "policy", "create", "10.20.30.40", "--registry-node").returncode == 0
    mk = f"mkr{os.getpid() % 100000}"
    r = podsec(node, "users", "create-imagemaker", "--sigstore", f"{mk}@apps", "--passphrase-stdin",
               stdin="p1\n")  # fmt: skip
    assert r.returncode == 0, r.stderr
    scope = f"{registry.host}/apps"
    policy_file = node / "etc/containers/policy.json"
    policy_file.write_text(policy_file.read_text().replace('"registry.local/apps"', f'"{scope}"'))
    regd_file = node / "etc/containers/registries.d/default.yaml"
    (tmp_path / "lookaside").mkdir()  # sigstore.local is not served here: an empty lookaside
    regd_file.write_text(
        regd_file.read_text()
        .replace("registry.local/apps:", f"{scope}:")
        .replace("http://sigstore.local:81/sigstore/", f"file://{tmp_path}/lookaside/")
    )
    host = Host(node)
    private = node / f"home/{mk}/.config/podsec/sigstore.key"
    old_key = tmp_path / "old.key"
    old_key.write_bytes(private.read_bytes())

    def signer(key: Path, passphrase: str, *images: str) -> sign.SignRequest:
        return sign.SignRequest(
            images=images, sigstore_key=key, passphrase=passphrase, registry_url=registry.url
        )

    def verdicts() -> dict[str, bool]:
        trust = view.effective(host, None)
        client = RegistryClient(registry.url)
        out = {}
        for name in ("a", "b", "c", "d"):
            digest = client.head_manifest(f"apps/{name}", "1")
            if digest is not None:
                image = f"{scope}/{name}:1"
                out[name] = verify.check_image(
                    host, image, digest, trust.policy, trust.regd
                ).accepted
        return out

    for name, src in (("a", "alpha"), ("b", "beta")):
        _push(test_images, registry, f"apps/{name}:1", src)
    done = sign.sign_images(host, signer(private, "p1", f"{scope}/a:1", f"{scope}/b:1"))
    assert all(d.accepted for d in done), [d.reason for d in done]
    assert verdicts() == {"a": True, "b": True}

    # 1. rotate: both keys trusted, the maker now signs with the new one
    r = podsec(node, "users", "rotate-key", mk, "--passphrase-stdin", "--json", stdin="p2\n")
    assert r.returncode == 0, r.stderr
    rot = json.loads(r.stdout)
    assert rot["new"] == f"/var/sigstore/keys/{mk}.2.pub" and not rot["already"]
    (req,) = pol.load(policy_file).transports["docker"][scope]
    assert req.key_paths == (f"/var/sigstore/keys/{mk}.pub", f"/var/sigstore/keys/{mk}.2.pub")
    assert sigstore_keys.load_private(private.read_bytes(), b"p2") is not None
    assert (private.parent / f"sigstore.key.{mk}").read_bytes() == old_key.read_bytes()
    assert verdicts() == {"a": True, "b": True}
    again = podsec(node, "users", "rotate-key", mk, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["already"], again.stdout
    assert len(pol.load(policy_file).transports["docker"][scope][0].keys) == 2  # no third key

    # a new push signs with the new key
    _push(test_images, registry, "apps/c:1", "busybox")
    (c,) = sign.sign_images(host, signer(private, "p2", f"{scope}/c:1"))
    assert c.accepted
    # 2. retire refuses while a and b carry only old-key signatures, and changes nothing
    before = policy_file.read_bytes()
    r = podsec(
        node, "users", "rotate-key", mk, "--retire", f"{mk}.pub", "--registry", registry.host
    )
    assert r.returncode != 0
    assert "would refuse 2 image(s)" in r.stderr and "apps/a" in r.stderr and "apps/b" in r.stderr
    assert "apps/c" not in r.stderr
    assert policy_file.read_bytes() == before
    assert verdicts() == {"a": True, "b": True, "c": True}
    # 3. resign what the registry holds with the new key (c already is: nothing added)
    done = sign.resign(host, signer(private, "p2"), registry=registry.host, scopes=[scope])
    assert {d.image.rsplit("/", 1)[1]: d.added for d in done} == {
        "a:1": True,
        "b:1": True,
        "c:1": False,
    }
    assert verdicts() == {"a": True, "b": True, "c": True}
    # 4. retire: only the new key stays, everything still accepted
    r = podsec(
        node, "users", "rotate-key", mk, "--retire", f"{mk}.pub", "--registry", registry.host
    )
    assert r.returncode == 0, r.stderr
    (req,) = pol.load(policy_file).transports["docker"][scope]
    assert req.keys == (f"/var/sigstore/keys/{mk}.2.pub",)
    assert (node / "var/sigstore/keys/policy.json").read_bytes() == policy_file.read_bytes()
    assert verdicts() == {"a": True, "b": True, "c": True}
    # an image signed only by the retired key is refused now
    _push(test_images, registry, "apps/d:1", "busybox")
    sign.sign_images(host, signer(old_key, "p1", f"{scope}/d:1"))
    assert verdicts()["d"] is False
