"""Bundles carry sigstore attachments (issue 19): ``images save --with-signatures`` of an image
whose scope requires ``sigstoreSigned`` reads its ``sha256-<hex>.sig`` attachment from a real
docker-registry, verifies it under the saving host's policy and carries it as containers/image's
``dir:`` ``signature-N``; ``images load --verify`` into a second, fresh registry checks it
against the TARGET's policy and pushes it back as the attachment, so the image passes
``verify.check_image`` there. A tampered attachment is refused at save; a scope requiring
both kinds carries both.

The target registry has another name than the source, so the target's policy accepts the
source's signed names through ``remapIdentity`` (as an air-gapped site that mirrors another
registry would configure it)."""

from __future__ import annotations

import json
import lzma
import os
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.fixtures.images import (
    GnupgHome,
    Registry,
    Sigstore,
    serve_registry,
    skopeo_copy,
)
from tests.fixtures.require import free_port

from podsec.host.paths import Host
from podsec.registry import sign
from podsec.registry.client import RegistryClient
from podsec.trust import attachments, sigstore, sigstore_keys, verify
from podsec.trust import policy as pol
from podsec.trust import registries_d as rd

pytestmark = pytest.mark.integration

PODSEC = [str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "podsec")]
_count = iter(range(1000))


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A second registry, empty: where the bundles are loaded."""
    with serve_registry(tmp_path_factory.mktemp("fresh-registry"), "127.0.0.1", free_port()) as r:
        yield r


@dataclass
class Site:
    """One side's trust configuration in its own HOME (policy.json, registries.d)."""

    home: Path
    scope: str

    @property
    def conf(self) -> Path:
        return self.home / ".config/containers"

    def write(self, reqs: list[dict], registries_d: str) -> None:
        (self.conf / "registries.d").mkdir(parents=True, exist_ok=True)
        policy = {"default": [{"type": "reject"}], "transports": {"docker": {self.scope: reqs}}}
        (self.conf / "policy.json").write_text(json.dumps(policy, indent=2))
        (self.conf / "registries.d/default.yaml").write_text(registries_d)

    def podsec(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*PODSEC, *args],
            env={**os.environ, "HOME": str(self.home), **env},
            capture_output=True,
            text=True,
            timeout=600,
        )


@dataclass
class Case:
    src: Registry
    dst: Registry
    path: str  # the images' first path component: bsigN (source and target)
    key: object  # the sigstore private key
    pub: Path
    source: Site
    target: Site
    tmp: Path
    gpg_env: dict[str, str]

    def ref(self, name: str) -> str:
        return f"{self.src.host}/{self.path}/{name}:1"

    def push(self, test_images, name: str, image: str = "alpha", **copy: object) -> str:
        skopeo_copy(test_images.ref(image), f"docker://{self.ref(name)}", **copy)
        digest = RegistryClient(self.src.url).head_manifest(f"{self.path}/{name}", "1")
        assert digest is not None
        return digest

    def attach(self, name: str, digest: str, sig: sigstore.Sigstore | None = None) -> bytes:
        sig = sig or sigstore.sign_image(self.key, self.ref(name), digest)
        assert sign.push_sigstore(
            RegistryClient(self.src.url), f"{self.path}/{name}", digest, [sig]
        )
        return sig.blob()

    def save(self, *refs: str) -> tuple[subprocess.CompletedProcess[str], Path]:
        out = self.tmp / f"bundle{next(_count)}"
        r = self.source.podsec("images", "save", str(out), "amd64", "docker://", *refs,
                               "--with-signatures", "--no-src-tls-verify", "--json",
                               **self.gpg_env)  # fmt: skip
        return r, out

    def load(self, archive: Path) -> subprocess.CompletedProcess[str]:
        return self.target.podsec(
            "images", "load", "--verify", str(archive), "amd64", self.target.scope,
            "--registry-url", self.dst.url, "--policy", str(self.target.conf / "policy.json"),
            "--json",
        )  # fmt: skip

    def accepted_on_target(self, name: str, digest: str) -> verify.Verdict:
        policy = pol.load(self.target.conf / "policy.json")
        regd = rd.load_dir(self.target.conf / "registries.d")
        image = f"{self.target.scope}/{name}:1"
        return verify.check_image(Host(), image, digest, policy, regd)


def _remap(case_src: str, case_dst: str) -> dict:
    return {"type": "remapIdentity", "prefix": case_dst, "signedPrefix": case_src}


def _attachments_on(scope: str, extra: str = "") -> str:
    return extra + f"docker:\n  {scope}:\n    use-sigstore-attachments: true\n"


@pytest.fixture
def case(registry: Registry, fresh: Registry, gnupg_home: GnupgHome, tmp_path: Path) -> Case:
    pair = sigstore_keys.generate(b"")
    pub = tmp_path / "maker.pub"
    pub.write_bytes(pair.public_key)
    path = f"bsig{os.getpid() % 100000}x{next(_count)}"
    src_scope, dst_scope = f"{registry.host}/{path}", f"{fresh.host}/{path}"
    source = Site(tmp_path / "src-home", src_scope)
    source.write([{"type": "sigstoreSigned", "keyPath": str(pub)}], _attachments_on(src_scope))
    target = Site(tmp_path / "dst-home", dst_scope)
    target.write(
        [{"type": "sigstoreSigned", "keyPath": str(pub),
          "signedIdentity": _remap(src_scope, dst_scope)}],
        _attachments_on(dst_scope),
    )  # fmt: skip
    key = sigstore_keys.load_private(pair.private_key, b"")
    return Case(registry, fresh, path, key, pub, source, target, tmp_path, dict(gnupg_home.env))


def _members(archive: Path) -> dict[str, bytes]:
    with lzma.open(archive) as fh, tarfile.open(fileobj=fh, mode="r|") as tar:
        return {
            m.name: tar.extractfile(m).read() for m in tar if m.isfile() and "/podsec-" in m.name
        }


def test_sigstore_bundle_round_trip_into_a_fresh_registry(case: Case, test_images) -> None:
    digest = case.push(test_images, "app")
    blob = case.attach("app", digest)
    # the target does not accept it before the load (nothing there yet)
    assert not case.accepted_on_target("app", digest).accepted

    saved, out = case.save(case.ref("app"))
    assert saved.returncode == 0, saved.stderr
    archive = out / "amd64.tar.xz"
    files = _members(archive)
    contents = json.loads(files["amd64/podsec-contents.json"])
    (image,) = contents["images"]
    # containers/image's dir: form, byte for byte what the registry attachment holds
    assert image["signatures"] == [
        f"podsec-signatures/{case.path}/app@sha256={digest.split(':')[1]}/signature-1"
    ]
    assert files["amd64/" + image["signatures"][0]] == blob
    # the outside reference: Debian's skopeo cannot verify sigstore signatures, but it copies
    # the attachment into a dir: copy — the same bytes, and only once in the bundle although
    # podsec's own skopeo copy brought it too
    policy = case.tmp / "accept.json"
    policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    subprocess.run(
        ["skopeo", "--policy", str(policy), "--registries.d", str(case.source.conf / "registries.d"),
         "copy", "--quiet", "--preserve-digests", "--src-tls-verify=false",
         f"docker://{case.ref('app')}", f"dir:{case.tmp / 'skopeo-dir'}"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    assert (case.tmp / "skopeo-dir/signature-1").read_bytes() == blob
    assert not (case.tmp / "skopeo-dir/signature-2").exists()
    assert contents["keys"] == ["podsec-keys/maker.pub"]
    assert files["amd64/podsec-keys/maker.pub"] == case.pub.read_bytes()
    fragment = json.loads(files["amd64/podsec-policy.json"])
    assert fragment["transports"]["docker"][case.source.scope] == [
        {"type": "sigstoreSigned", "keyPath": "/var/sigstore/keys/maker.pub"}
    ]

    loaded = case.load(archive)
    assert loaded.returncode == 0, loaded.stderr
    (item,) = json.loads(loaded.stdout)["images"]
    assert (item["digest"], item["status"]) == (digest, "pushed")
    # the attachment is in the fresh registry beside the image, and the image passes there
    client = RegistryClient(case.dst.url)
    assert attachments.read(client, f"{case.path}/app", digest) == [blob]
    verdict = case.accepted_on_target("app", digest)
    assert verdict.accepted, verdict.reason
    assert verdict.attachments == f"{case.dst.host}/{case.path}/app:{attachments.tag_for(digest)}"
    # a re-run skips it and adds no second attachment layer
    again = case.load(archive)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["images"][0]["status"] == "skipped"
    assert len(attachments.read(client, f"{case.path}/app", digest)) == 1


def test_sigstore_bundle_refused_by_an_untrusting_target(case: Case, test_images) -> None:
    digest = case.push(test_images, "app")
    case.attach("app", digest)
    saved, out = case.save(case.ref("app"))
    assert saved.returncode == 0, saved.stderr
    other = case.tmp / "other.pub"
    other.write_bytes(sigstore_keys.generate(b"").public_key)
    remap = _remap(case.source.scope, case.target.scope)
    case.target.write([{"type": "sigstoreSigned", "keyPath": str(other), "signedIdentity": remap}],
                      _attachments_on(case.target.scope))  # fmt: skip
    r = case.load(out / "amd64.tar.xz")
    assert r.returncode != 0
    assert "refused by the policy of this node" in r.stderr, r.stderr
    client = RegistryClient(case.dst.url)
    assert client.head_manifest(f"{case.path}/app", "1") is None
    assert client.head_manifest(f"{case.path}/app", attachments.tag_for(digest)) is None
    # a target whose registries.d takes no attachments is refused before anything is sent
    case.target.write([{"type": "sigstoreSigned", "keyPath": str(case.pub), "signedIdentity": remap}],
                      "")  # fmt: skip
    r = case.load(out / "amd64.tar.xz")
    assert r.returncode != 0
    assert "does not use sigstore attachments" in r.stderr, r.stderr
    assert client.head_manifest(f"{case.path}/app", "1") is None


def test_tampered_or_missing_attachment_refused_at_save(case: Case, test_images) -> None:
    digest = case.push(test_images, "forged")
    good = sigstore.sign_image(case.key, case.ref("forged"), digest)
    payload = bytearray(good.payload)
    payload[payload.index(b"sha256:") + 7] ^= 1  # one bit of the signed digest
    case.attach(
        "forged", digest, sigstore.Sigstore(good.mime_type, bytes(payload), good.annotations)
    )
    r, out = case.save(case.ref("forged"))
    assert r.returncode != 0
    assert "cryptographic signature verification failed" in r.stderr, r.stderr
    assert len([line for line in r.stderr.splitlines() if line.startswith("podsec:")]) == 1
    assert not out.exists()  # nothing written
    case.push(test_images, "unsigned", "beta")
    r, out = case.save(case.ref("unsigned"))
    assert r.returncode != 0
    assert "has no signature" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


def test_both_kinds_in_one_scope(
    case: Case, test_images, sigstore: Sigstore, gnupg_home: GnupgHome
) -> None:
    """A scope requiring signedBy AND sigstoreSigned: the bundle carries the GPG lookaside
    signature (signature-1) and the sigstore attachment (signature-2); the target restores
    the first to its lookaside staging and the second as the attachment."""
    gpg_pub = gnupg_home.nopass.public_key
    src_scope, dst_scope = case.source.scope, case.target.scope
    both = [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(gpg_pub)},
            {"type": "sigstoreSigned", "keyPath": str(case.pub)}]  # fmt: skip
    case.source.write(
        both, _attachments_on(src_scope, (sigstore.registries_d / "default.yaml").read_text())
    )
    digest = case.push(test_images, "both", "busybox", env={**os.environ, **gnupg_home.env},
                       sign_by=gnupg_home.nopass.email, registries_d=sigstore.registries_d)  # fmt: skip
    # a GPG signature alone is not enough for this scope
    r, out = case.save(case.ref("both"))
    assert r.returncode != 0 and "A signature was required" in r.stderr, r.stderr
    blob = case.attach("both", digest)
    saved, out = case.save(case.ref("both"))
    assert saved.returncode == 0, saved.stderr
    archive = out / "amd64.tar.xz"
    files = _members(archive)
    (image,) = json.loads(files["amd64/podsec-contents.json"])["images"]
    first, second = (files["amd64/" + p] for p in image["signatures"])
    assert not first.startswith(b"\0") and second == blob  # lookaside first, then attachments
    fragment = json.loads(files["amd64/podsec-policy.json"])["transports"]["docker"][src_scope]
    assert [r["type"] for r in fragment] == ["signedBy", "sigstoreSigned"]
    assert fragment[0]["keyPath"] == f"/var/sigstore/keys/{gpg_pub.name}"

    staging = case.tmp / "dst-lookaside"
    staging.mkdir()
    remap = _remap(src_scope, dst_scope)
    case.target.write(
        [{**both[0], "signedIdentity": remap}, {**both[1], "signedIdentity": remap}],
        _attachments_on(dst_scope, f"default-docker:\n  lookaside: file://{staging}/\n"
                                   f"  lookaside-staging: file://{staging}/\n"),
    )  # fmt: skip
    loaded = case.load(archive)
    assert loaded.returncode == 0, loaded.stderr
    sig_dir = staging / f"{case.path}/both@sha256={digest.split(':')[1]}"
    assert (sig_dir / "signature-1").read_bytes() == first
    assert not (sig_dir / "signature-2").exists()  # the sigstore one is not in the lookaside
    assert attachments.read(RegistryClient(case.dst.url), f"{case.path}/both", digest) == [blob]
    verdict = case.accepted_on_target("both", digest)
    assert verdict.accepted, verdict.reason
