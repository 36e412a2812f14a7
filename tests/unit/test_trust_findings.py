"""One test per finding of issue 14 (podsec vs containers/image); each failed before the fix.

Signatures are real: containers/image's own fixtures (tests/conformance/fixtures) and, where
a payload must be crafted (a duplicated key, a remapped name), one made here with a throw-away
gpg key. Verdicts go through the public engine (verify.check_image / evaluate).
"""

from __future__ import annotations

import ast
import base64
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from podsec.errors import PodsecError, UsageError, ValidationError
from podsec.host.paths import Host
from podsec.registry.client import RegistryClient, Response
from podsec.trust import policy as pol
from podsec.trust import reference, signature, verify
from podsec.trust import registries_d as rd

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests/conformance/fixtures/containers-image"
SIG = FIX / "signature"
IMAGE_DIGEST = "sha256:20bf21ed457b390829cdbeec8795a7bea1626991fda603e0d01b4e7f60427e55"
D = "sha256:" + "1" * 64


@dataclass
class Key:
    home: Path
    email: str
    public: Path


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Key:
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    env = {"GNUPGHOME": str(home), "PATH": "/usr/bin:/bin"}
    email = "findings@podsec.test"
    subprocess.run(
        [
            "gpg",
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            email,
            "ed25519",
            "sign",
            "never",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    public = home / "pub.gpg"
    out = subprocess.run(["gpg", "--export", email], env=env, check=True, capture_output=True)
    public.write_bytes(out.stdout)
    yield Key(home, email, public)
    subprocess.run(["gpgconf", "--kill", "all"], env=env, check=False, capture_output=True)


def _sign(key: Key, payload: bytes) -> bytes:
    return signature.sign(payload, key.email, key.home)


def _payload(ref: str, digest: str) -> bytes:
    return json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": ref},
                "image": {"docker-manifest-digest": digest},
                "type": "atomic container signature",
            },
            "optional": {},
        }
    ).encode()


def _lookaside(tmp: Path, repo_path: str, digest: str, sigs: list[bytes]) -> rd.RegistriesD:
    folder = tmp / "sig" / f"{repo_path}@{digest.replace(':', '=')}"
    folder.mkdir(parents=True)
    for n, data in enumerate(sigs, 1):
        (folder / f"signature-{n}").write_bytes(data)
    return rd.parse(f"default-docker:\n  lookaside: file://{tmp / 'sig'}\n", "t.yaml")


def _policy(scope: str, req: dict[str, object]) -> pol.Policy:
    text = json.dumps({"default": [{"type": "reject"}], "transports": {"docker": {scope: [req]}}})
    return pol.parse(text, "policy.json")


def _gpg_req(key_path: Path, **extra: object) -> dict[str, object]:
    return {"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(key_path), **extra}


# -- podsec accepted what containers/image refuses ---------------------------------------
def test_digest_image_with_a_signature_without_tag_is_refused(tmp_path: Path) -> None:
    # c/image's own fixture image.signature claims "testing/manifest" (no tag)
    conf = _lookaside(
        tmp_path, "testing/manifest", IMAGE_DIGEST, [(SIG / "image.signature").read_bytes()]
    )
    p = _policy("docker.io/testing", _gpg_req(SIG / "public-key.gpg"))
    v = verify.check_image(Host(), f"testing/manifest@{IMAGE_DIGEST}", IMAGE_DIGEST, p, conf)
    assert not v.accepted and "is not accepted" in v.reason


def test_tag_and_digest_image_with_a_signature_for_another_tag_is_refused(tmp_path: Path) -> None:
    # subkey.signature claims testing/manifest:latest for IMAGE_DIGEST
    conf = _lookaside(
        tmp_path, "testing/manifest", IMAGE_DIGEST, [(SIG / "subkey.signature").read_bytes()]
    )
    p = _policy("docker.io/testing", _gpg_req(SIG / "public-key-with-subkey.gpg"))
    ref = f"testing/manifest:other@{IMAGE_DIGEST}"
    assert not verify.check_image(Host(), ref, IMAGE_DIGEST, p, conf).accepted


def test_index_docker_io_is_docker_io() -> None:
    p = _policy("docker.io/library/busybox", {"type": "insecureAcceptAnything"})
    assert pol.scope_for(p, "docker", "index.docker.io/library/busybox:1")[0] == (
        "docker.io/library/busybox"
    )


@pytest.mark.parametrize("field", ["docker-reference", "docker-manifest-digest"])
def test_duplicated_payload_keys_are_refused(key: Key, tmp_path: Path, field: str) -> None:
    text = _payload("docker.io/library/app:1", D).decode()
    if field == "docker-reference":
        text = text.replace(
            '"docker-reference": "docker.io/library/app:1"',
            '"docker-reference": "docker.io/library/other:9", "docker-reference": "docker.io/library/app:1"',
        )
    else:
        text = text.replace(
            f'"docker-manifest-digest": "{D}"',
            f'"docker-manifest-digest": "sha256:{"2" * 64}", "docker-manifest-digest": "{D}"',
        )
    conf = _lookaside(tmp_path, "library/app", D, [_sign(key, text.encode())])
    p = _policy("docker.io/library/app", _gpg_req(key.public))
    v = verify.check_image(Host(), "docker.io/library/app:1", D, p, conf)
    assert not v.accepted and "duplicate" in v.reason


@pytest.mark.parametrize(
    "payload",
    [
        b'{"critical":{"identity":{"docker-reference":"a.io/b:1"},"image":{"docker-manifest-digest":"sha256:../.."},"type":"atomic container signature"},"optional":{}}',
        b'{"critical":{"identity":{"docker-reference":"a.io/b:1"},"image":{"docker-manifest-digest":"'
        + D.encode()
        + b'"},"type":"atomic container signature"},"optional":{"creator":1}}',
        b'{"critical":{"identity":{"docker-reference":"a.io/b:1"},"image":{"docker-manifest-digest":"'
        + D.encode()
        + b'"},"type":"atomic container signature"}}',
    ],
    ids=["digest syntax", "optional.creator type", "optional missing"],
)
def test_payload_digest_syntax_and_optional_are_validated(payload: bytes) -> None:
    with pytest.raises(signature.SignatureError):
        signature._parse_payload(payload, "F")


class _LyingRegistry(RegistryClient):
    """Serves a fixed manifest with a Docker-Content-Digest header that lies."""

    def __init__(self, body: bytes):
        super().__init__("http://registry.invalid")
        self.body = body

    def _request(self, method, path, **kw):  # type: ignore[no-untyped-def, override]
        return Response(200, {"docker-content-digest": D, "content-type": "x"}, self.body)


def test_the_registry_digest_header_is_not_trusted() -> None:
    body = (FIX / "manifest/v2s2.manifest.json").read_bytes()
    assert _LyingRegistry(body).head_manifest("r", "t") == (
        "sha256:20bf21ed457b390829cdbeec8795a7bea1626991fda603e0d01b4e7f60427e55"
    )


def test_schema1_digest_strips_its_signatures() -> None:
    body = (FIX / "manifest/v2s1.manifest.json").read_bytes()
    assert _LyingRegistry(body).head_manifest("r", "t") == (
        "sha256:7364fea9d84ee548ab67d4c46c6006289800c98de3fbf8c0a97138dfcc23f000"
    )


def test_remap_identity_does_not_renormalise(key: Key, tmp_path: Path) -> None:
    conf = _lookaside(
        tmp_path, "busybox", D, [_sign(key, _payload("docker.io/library/busybox:1", D))]
    )
    ident = {"type": "remapIdentity", "prefix": "mirror.local", "signedPrefix": "docker.io"}
    p = _policy("mirror.local", _gpg_req(key.public, signedIdentity=ident))
    # "docker.io/busybox:1" is not canonical: containers/image fails the match
    assert not verify.check_image(Host(), "mirror.local/busybox:1", D, p, conf).accepted


@pytest.mark.parametrize(
    "text",
    [
        "-bad.example/app:1",
        "bad-.example/app:1",
        "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        "example.com/" + "a/" * 127 + "a:1",
    ],
    ids=["label starts with -", "label ends with -", "64-hex name", "name over 255"],
)
def test_invalid_references_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        reference.parse(text)


def _fixture_check(
    req: pol.Requirement, tmp_path: Path, ref: str = "testing/manifest:latest"
) -> verify.Verdict:
    conf = _lookaside(
        tmp_path, "testing/manifest", IMAGE_DIGEST, [(SIG / "subkey.signature").read_bytes()]
    )
    p = pol.Policy((pol.reject(),), {"docker": {"docker.io/testing": (req,)}})
    return verify.check_image(Host(), ref, IMAGE_DIGEST, p, conf)


def test_python_api_key_type_is_not_ignored(tmp_path: Path) -> None:
    key = str(SIG / "public-key-with-subkey.gpg")
    good = pol.Requirement(pol.SIGNED_BY, key_type="GPGKeys", key_path=key)
    assert _fixture_check(good, tmp_path / "a").accepted
    x509 = pol.Requirement(pol.SIGNED_BY, key_type="X509Certificates", key_path=key)
    assert not _fixture_check(x509, tmp_path / "b").accepted


def test_python_api_key_sources_are_not_merged(tmp_path: Path) -> None:
    data = base64.b64encode((SIG / "public-key-with-subkey.gpg").read_bytes()).decode()
    req = pol.Requirement(
        pol.SIGNED_BY, key_type="GPGKeys", key_path=str(SIG / "public-key.gpg"), key_data=data
    )
    assert not _fixture_check(req, tmp_path).accepted


def test_python_api_empty_requirement_list_refuses(tmp_path: Path) -> None:
    p = pol.Policy(())
    assert not verify.check_image(Host(), "a.io/b:1", D, p, rd.RegistriesD()).accepted


def test_exact_reference_with_a_name_only_signature_does_not_match(tmp_path: Path) -> None:
    conf = _lookaside(
        tmp_path, "testing/manifest", IMAGE_DIGEST, [(SIG / "image.signature").read_bytes()]
    )
    # built in Python (the parser refuses a name-only dockerReference): neither side has a tag
    ident = {"type": "exactReference", "dockerReference": "testing/manifest"}
    req = pol.Requirement(
        pol.SIGNED_BY,
        key_type="GPGKeys",
        key_path=str(SIG / "public-key.gpg"),
        signed_identity=ident,
    )
    p = pol.Policy((pol.reject(),), {"docker": {"docker.io/testing": (req,)}})
    v = verify.check_image(Host(), "testing/manifest:latest", IMAGE_DIGEST, p, conf)
    assert not v.accepted


def test_signing_refuses_empty_reference_or_digest() -> None:
    for ref, digest in (("", D), ("a.io/b:1", "")):
        with pytest.raises(PodsecError):
            signature.make_payload(ref, digest)


def test_a_passphrase_with_a_newline_is_refused(key: Key) -> None:
    with pytest.raises(UsageError):
        signature.sign(b"x", key.email, key.home, "first\nsecond")


# -- podsec refused what containers/image accepts ----------------------------------------
@pytest.mark.parametrize("key_type", ["signedByGPGKeys", "X509Certificates", "signedByX509CAs"])
def test_other_key_types_parse_and_are_refused_at_evaluation(key_type: str, tmp_path: Path) -> None:
    p = _policy("docker.io/testing", _gpg_req(SIG / "public-key.gpg", keyType=key_type))
    conf = _lookaside(
        tmp_path, "testing/manifest", IMAGE_DIGEST, [(SIG / "subkey.signature").read_bytes()]
    )
    v = verify.check_image(Host(), "testing/manifest:latest", IMAGE_DIGEST, p, conf)
    assert not v.accepted and "keyType" in v.reason


def test_any_docker_scope_parses() -> None:
    _policy("bogus/x", {"type": "reject"})


def test_exact_repository_with_a_tag_parses() -> None:
    ident = {"type": "exactRepository", "dockerRepository": "library/busybox:latest"}
    _policy("docker.io", _gpg_req(Path("/k"), signedIdentity=ident))


def test_one_bad_registries_d_section_refuses_only_its_scope(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "docker:\n  bad.example:\n    lookaside: ':nope'\n  good.example:\n    lookaside: file:///ok\n"
    )
    conf = rd.load_dir(tmp_path)
    assert rd.lookaside_for(conf, "good.example/x:1") == "file:///ok"
    with pytest.raises(ValidationError):
        rd.lookaside_for(conf, "bad.example/x:1")


def test_lookaside_wins_over_a_different_sigstore(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "default-docker:\n  lookaside: http://new/\n  sigstore: http://old/\n"
    )
    assert rd.lookaside_for(rd.load_dir(tmp_path), "a.io/b:1") == "http://new/"


def test_rootless_users_get_their_own_default_lookaside(tmp_path: Path) -> None:
    from podsec.trust import view

    (tmp_path / "etc/containers").mkdir(parents=True)
    (tmp_path / "etc/containers/policy.json").write_text('{"default":[{"type":"reject"}]}')
    trust = view.effective(Host(tmp_path), Path("/home/alice"))
    assert trust.regd.builtin == "file:///home/alice/.local/share/containers/sigstore"
    assert rd.lookaside_for(rd.RegistriesD(), "a.io/b:1") == "file:///var/lib/containers/sigstore"


def test_trailing_slash_of_the_lookaside_is_kept() -> None:
    url = rd.signature_url("http://sigstore.local:81/sigstore/", "p/a", D, 1)
    assert url == f"http://sigstore.local:81/sigstore//p/a@sha256={'1' * 64}/signature-1"


# -- not implemented before ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("req", "valid"),
    [
        ({"type": "sigstoreSigned", "keyPath": "/k"}, True),
        ({"type": "sigstoreSigned", "keyDatas": ["YWJj"]}, True),
        (
            {
                "type": "sigstoreSigned",
                "fulcio": {"caPath": "/c", "oidcIssuer": "i", "subjectEmail": "e"},
            },
            False,
        ),
        (
            {
                "type": "sigstoreSigned",
                "pki": {"caRootsPath": "/r", "subjectEmail": "e"},
                "rekorPublicKeyPath": "/r",
            },
            False,
        ),
        (
            {
                "type": "sigstoreSigned",
                "keyPath": "/k",
                "rekorPublicKeyPath": "/r",
                "rekorPublicKeyData": "YQ==",
            },
            False,
        ),
    ],
    ids=["keyPath", "keyDatas", "fulcio without rekor", "pki with rekor", "two rekor sources"],
)
def test_sigstore_signed_is_validated_and_refused_clearly(
    req: dict[str, object], valid: bool
) -> None:
    if not valid:
        with pytest.raises(ValidationError):
            _policy("a.io", req)
        return
    p = _policy("a.io", req)
    v = verify.evaluate(Host(), p, "a.io/b:1", D, [])
    # verified since issue 19: with no signature, containers/image's reason
    assert not v.accepted and v.reason == "A signature was required, but no signature exists"


def test_claims_can_be_read_without_verifying() -> None:
    claims = signature.read_claims((SIG / "image.signature").read_bytes())
    assert claims.docker_reference == "testing/manifest"
    assert claims.manifest_digest == IMAGE_DIGEST
    assert claims.key_id and claims.key_id.endswith("E932F44B23E8DD43")


def test_one_engine_decides() -> None:
    """Only trust/verify.py makes verdicts: the registry code neither verifies signatures
    nor interprets requirement types itself (load-sign reuses its own signature only)."""
    for path in (ROOT / "src/podsec/registry").glob("*.py"):
        tree = ast.parse(path.read_text())
        for cmp in (n for n in ast.walk(tree) if isinstance(n, ast.Compare)):
            consts = [c.value for c in ast.walk(cmp) if isinstance(c, ast.Constant)]
            assert not {"insecureAcceptAnything", "reject", "signedBy"} & set(consts), path
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                calls = [
                    n
                    for n in ast.walk(node)
                    if isinstance(n, ast.Attribute)
                    and n.attr in ("verify", "matches", "mismatch")
                    and isinstance(n.value, ast.Name)
                    and n.value.id == "signature"
                ]
                assert not calls or node.name == "existing_signature", (path, node.name)
