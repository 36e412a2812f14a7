"""Signature, payload, manifest-digest and scope cases written as code in containers/image.

Fixture names refer to tests/conformance/fixtures/containers-image/ (copied from
signature/fixtures and manifest/fixtures at the same commit).
"""

from __future__ import annotations

import json
from typing import Any

from handmade import Write, enc

DIGEST = "sha256:20bf21ed457b390829cdbeec8795a7bea1626991fda603e0d01b4e7f60427e55"
KEY = "08CD26E446E2E95249B7A405E932F44B23E8DD43"
SHORT = "E932F44B23E8DD43"
SUBKEY_PRIMARY = "B9F4CDB9FD8C475BFA340AC38D54A947EE396F36"
ALL_KEYS = ["public-key.gpg", "public-key-with-subkey.gpg", "public-key-with-revoked-subkey.gpg"]


def payload_tables(write: Write) -> None:
    test_digest = "sha256:" + "a" * 64
    valid = {
        "critical": {
            "identity": {"docker-reference": "reference#@!"},
            "image": {"docker-manifest-digest": test_digest},
            "type": "atomic container signature",
        },
        "optional": {"creator": "atomic 5.x", "timestamp": 1458239713},
    }
    rows: list[dict[str, Any]] = []

    def add(function: str, case: str, text: str, ok: bool) -> None:
        rows.append({"function": function, "case": case, "json": text, "valid": ok})

    def mod(path: list[str], key: str, value: Any = None, delete: bool = False) -> str:
        v = json.loads(enc(valid))
        obj = v
        for p in path:
            obj = obj[p]
        if delete:
            del obj[key]
        else:
            obj[key] = value
        return enc(v)

    f = "TestUnmarshalJSON"
    add(f, "invalid JSON &", "&", False)
    add(f, "not an object", "1", False)
    add(f, "valid", enc(valid), True)
    for case, path, key, value, delete in [
        ("critical missing", [], "critical", None, True),
        ("optional missing", [], "optional", None, True),
        ("extra top-level sub-object", [], "unexpected", 1, False),
        ("critical not an object", [], "critical", 1, False),
        ("optional not an object", [], "optional", 1, False),
        ("critical.type missing", ["critical"], "type", None, True),
        ("critical.image missing", ["critical"], "image", None, True),
        ("critical.identity missing", ["critical"], "identity", None, True),
        ("extra field of critical", ["critical"], "unexpected", 1, False),
        ("type: 1", ["critical"], "type", 1, False),
        ("type: unexpected", ["critical"], "type", "unexpected", False),
        ("image: 1", ["critical"], "image", 1, False),
        (
            "docker-manifest-digest missing",
            ["critical", "image"],
            "docker-manifest-digest",
            None,
            True,
        ),
        ("extra field of image", ["critical", "image"], "unexpected", 1, False),
        ("docker-manifest-digest: 1", ["critical", "image"], "docker-manifest-digest", 1, False),
        (
            "docker-manifest-digest: sha256:../..",
            ["critical", "image"],
            "docker-manifest-digest",
            "sha256:../..",
            False,
        ),
        ("identity: 1", ["critical"], "identity", 1, False),
        ("docker-reference missing", ["critical", "identity"], "docker-reference", None, True),
        ("extra field of identity", ["critical", "identity"], "unexpected", 1, False),
        ("docker-reference: 1", ["critical", "identity"], "docker-reference", 1, False),
        ("creator: 1", ["optional"], "creator", 1, False),
        ("timestamp: unexpected", ["optional"], "timestamp", "unexpected", False),
        ("timestamp: 0.5 (fractional)", ["optional"], "timestamp", 0.5, False),
    ]:
        add(f, case, mod(path, key, value, delete), False)
    add(f, "allowed: an unknown optional field", mod(["optional"], "unexpected", 1), True)
    no_optional = json.loads(enc(valid))
    no_optional["optional"] = {}
    add(f, "optional fields can be missing", enc(no_optional), True)

    # ParanoidUnmarshalJSONObject (internal/json_test.go: `{"b":1, "b":1}` is refused) is
    # what reads every object of a payload: a duplicated key at any level is refused.
    f = "TestParanoidUnmarshalJSONObject (duplicate key), applied to each payload object"
    text = enc(valid)
    for case, old, new in [
        (
            "duplicate critical",
            '"optional":',
            '"critical":' + enc(valid["critical"]) + ',"optional":',
        ),
        (
            "duplicate type",
            '"type":"atomic container signature"',
            '"type":"atomic container signature","type":"atomic container signature"',
        ),
        (
            "duplicate docker-reference",
            '"docker-reference":"reference#@!"',
            '"docker-reference":"other/ref:1","docker-reference":"reference#@!"',
        ),
        (
            "duplicate docker-manifest-digest",
            f'"docker-manifest-digest":"{test_digest}"',
            f'"docker-manifest-digest":"{DIGEST}","docker-manifest-digest":"{test_digest}"',
        ),
        ("duplicate identity", '"image":', '"identity":{"docker-reference":"x/y:1"},"image":'),
        (
            "duplicate image",
            '"type":',
            '"image":{"docker-manifest-digest":"' + DIGEST + '"},"type":',
        ),
        ("duplicate creator", '"timestamp":', '"creator":"x","timestamp":'),
        ("duplicate timestamp", '"creator":', '"timestamp":1,"creator":'),
    ]:
        assert old in text, case
        add(f, case, text.replace(old, new, 1), False)
    add(f, "duplicate optional", text[:-1] + ',"optional":{}}', False)
    add(
        f,
        "a duplicate inside an unknown optional value is not read, so it is allowed",
        text.replace('"timestamp":', '"x-vendor":{"a":1,"a":2},"timestamp":', 1),
        True,
    )
    f = "TestParanoidUnmarshalJSONObject"
    add(f, "extra data after the object", enc(valid) + "{}", False)
    add(f, "empty input", "", False)
    write(
        "payload_parse",
        "signature/simple_test.go",
        "TestUnmarshalJSON (+ internal/json_test.go)",
        rows,
        "the signature payload (the signed JSON) and whether containers/image's untrustedSignature parser accepts it",
    )


def mechanism_tables(write: Write) -> None:
    rows: list[dict[str, Any]] = []
    f = "TestGPGSigningMechanismVerify"

    def add(sig: str, ok: bool, content: str | None = None, fpr: str | None = None) -> None:
        rows.append(
            {
                "function": f,
                "signature": sig,
                "keys": ALL_KEYS,
                "ok": ok,
                "content": content,
                "fingerprint": fpr,
            }
        )

    for v in ("invalid-blob.signature", "invalid-blob.signature-v3"):
        add(v, True, "This is not JSON\n", KEY)
    subkey_content = (
        '{"critical":{"identity":{"docker-reference":"testing/manifest:latest"},"image":'
        '{"docker-manifest-digest":"'
        + DIGEST
        + '"},"type":"atomic container signature"},"optional":{}}'
    )
    for v in ("subkey.signature", "subkey.signature-v3"):
        add(v, True, subkey_content, SUBKEY_PRIMARY)
    add("(empty)", False)
    add("(invalid signature)", False)
    for v in (
        "unsigned-literal.signature",
        "unsigned-encrypted.signature",
        "expired.signature",
        "corrupt.signature",
        "corrupt.signature-v3",
        "unknown-key.signature",
        "unknown-key.signature-v3",
        "subkey-revoked.signature",
        "subkey-revoked.signature-v3",
    ):
        add(v, False)
    write(
        "signature_verify",
        "signature/mechanism_test.go",
        f,
        rows,
        "GPG verification with the fixture keys: ok, the signed content and the primary key fingerprint",
    )

    rows = []
    image_payload = {"docker_reference": "testing/manifest", "manifest_digest": DIGEST}
    for fn, sig, ok, expect in [
        (
            "TestGetUntrustedSignatureInformationWithoutVerifying",
            "image.signature",
            True,
            dict(image_payload, creator="atomic ", timestamp=1458239713, key=SHORT),
        ),
        (
            "TestGetUntrustedSignatureInformationWithoutVerifying",
            "no-optional-fields.signature",
            True,
            dict(image_payload, creator=None, timestamp=None, key=SHORT),
        ),
        ("TestGetUntrustedSignatureInformationWithoutVerifying", "(empty)", False, {}),
        ("TestGetUntrustedSignatureInformationWithoutVerifying", "(invalid signature)", False, {}),
        (
            "TestGetUntrustedSignatureInformationWithoutVerifying",
            "invalid-blob.signature",
            False,
            {"key": SHORT},
        ),
        (
            "TestGPGSigningMechanismUntrustedSignatureContents",
            "corrupt.signature",
            True,
            dict(image_payload, creator="atomic ", timestamp=1458239713, key=SHORT),
        ),
        (
            "TestGPGSigningMechanismUntrustedSignatureContents",
            "corrupt.signature-v3",
            True,
            dict(image_payload, creator="atomic ", timestamp=1458239713, key=SHORT),
        ),
        (
            "TestGPGSigningMechanismUntrustedSignatureContents",
            "unknown-key.signature",
            True,
            dict(
                image_payload,
                creator="atomic 0.1.13-dev",
                timestamp=1464633474,
                key="5F9470E3BC6C3B55",
            ),
        ),
        (
            "TestGPGSigningMechanismUntrustedSignatureContents",
            "unknown-key.signature-v3",
            True,
            dict(
                image_payload,
                creator="atomic 0.1.13-dev",
                timestamp=1464633474,
                key="5F9470E3BC6C3B55",
            ),
        ),
        (
            "TestGPGSigningMechanismUntrustedSignatureContents",
            "unsigned-literal.signature",
            False,
            {},
        ),
        (
            "TestGPGSigningMechanismUntrustedSignatureContents",
            "unsigned-encrypted.signature",
            False,
            {},
        ),
    ]:
        rows.append({"function": fn, "signature": sig, "ok": ok, "expected": expect})
    write(
        "signature_claims",
        "signature/simple_test.go",
        "(the functions named in each row)",
        rows,
        "claims read WITHOUT verification: identity, digest, creator, timestamp, short key id; ok false = containers/image returns an error",
    )


def signedby_tables(write: Write) -> None:
    rows: list[dict[str, Any]] = []
    exact = {"type": "matchExact"}

    def add(
        function: str,
        case: str,
        req: dict[str, Any] | None,
        image_dir: str,
        ref: str,
        sigs: list[str],
        ok: bool,
    ) -> None:
        rows.append(
            {
                "function": function,
                "case": case,
                "requirement": req,
                "image": image_dir,
                "reference": ref,
                "signatures": sigs,
                "accepted": ok,
            }
        )

    f = "TestPRSignedByIsSignatureAuthorAccepted"
    valid_sig = ["dir-img-valid/signature-1"]
    for case, keys in [
        ("keyPath", {"keyPath": "public-key.gpg"}),
        ("keyPaths 1,1", {"keyPaths": ["public-key-1.gpg", "public-key-1.gpg"]}),
        ("keyPaths 2,1", {"keyPaths": ["public-key-2.gpg", "public-key-1.gpg"]}),
        ("keyData", {"keyData": "@public-key.gpg"}),
    ]:
        add(
            f,
            f"successful validation, {case}",
            {"type": "signedBy", "keyType": "GPGKeys", **keys, "signedIdentity": exact},
            "dir-img-valid",
            "testing/manifest:latest",
            valid_sig,
            True,
        )
    for kt in ("signedByGPGKeys", "X509Certificates", "signedByX509CAs", "This is invalid"):
        add(
            f,
            f"unimplemented or invalid keyType {kt}",
            {
                "type": "signedBy",
                "keyType": kt,
                "keyData": "@public-key.gpg",
                "signedIdentity": exact,
            },
            "dir-img-valid",
            "testing/manifest:latest",
            valid_sig,
            False,
        )
    for case, keys in [
        (
            "keyPath+keyPaths+keyData",
            {
                "keyPath": "public-key.gpg",
                "keyPaths": ["public-key-1.gpg", "public-key-2.gpg"],
                "keyData": "@public-key.gpg",
            },
        ),
        (
            "keyPath+keyPaths",
            {"keyPath": "public-key.gpg", "keyPaths": ["public-key-1.gpg", "public-key-2.gpg"]},
        ),
        ("keyPath+keyData", {"keyPath": "public-key.gpg", "keyData": "@public-key.gpg"}),
        (
            "keyPaths+keyData",
            {"keyPaths": ["public-key-1.gpg", "public-key-2.gpg"], "keyData": "@public-key.gpg"},
        ),
        ("no key source", {}),
        ("keyPath does not exist", {"keyPath": "/this/does/not/exist"}),
        ("keyPaths does not exist", {"keyPaths": ["/this/does/not/exist"]}),
        (
            "one of keyPaths does not exist",
            {"keyPaths": ["public-key.gpg", "/this/does/not/exist"]},
        ),
        ("keyData has no public keys", {"keyData": ""}),
    ]:
        add(
            f,
            f"invalid key sources: {case}",
            {"type": "signedBy", "keyType": "GPGKeys", **keys, "signedIdentity": exact},
            "dir-img-valid",
            "testing/manifest:latest",
            valid_sig,
            False,
        )
    gpg = {
        "type": "signedBy",
        "keyType": "GPGKeys",
        "keyPath": "public-key.gpg",
        "signedIdentity": exact,
    }
    add(
        f,
        "a signature which does not GPG verify",
        gpg,
        "dir-img-valid",
        "testing/manifest:latest",
        ["(invalid signature)"],
        False,
    )
    add(
        f,
        "a valid signature using an unknown key",
        gpg,
        "dir-img-valid",
        "testing/manifest:latest",
        ["unknown-key.signature"],
        False,
    )
    add(
        f,
        "a valid signature of an invalid JSON",
        gpg,
        "dir-img-valid",
        "testing/manifest:latest",
        ["invalid-blob.signature"],
        False,
    )
    add(
        f,
        "a valid signature with a rejected identity",
        dict(
            gpg, signedIdentity={"type": "exactReference", "dockerReference": "this/does-not:match"}
        ),
        "dir-img-valid",
        "testing/manifest:latest",
        valid_sig,
        False,
    )
    add(
        f,
        "error reading image manifest",
        gpg,
        "dir-img-no-manifest",
        "testing/manifest:latest",
        ["dir-img-no-manifest/signature-1"],
        False,
    )
    add(
        f,
        "error computing manifest digest",
        gpg,
        "dir-img-manifest-digest-error",
        "testing/manifest:latest",
        ["dir-img-manifest-digest-error/signature-1"],
        False,
    )
    add(
        f,
        "a valid signature with a non-matching manifest",
        gpg,
        "dir-img-modified-manifest",
        "testing/manifest:latest",
        ["dir-img-modified-manifest/signature-1"],
        False,
    )

    f = "TestPRSignedByIsRunningImageAllowed"
    for case, image, ref, key, ok in [
        (
            "single valid signature",
            "dir-img-valid",
            "testing/manifest:latest",
            "public-key.gpg",
            True,
        ),
        ("no signatures", "dir-img-unsigned", "testing/manifest:latest", "public-key.gpg", False),
        (
            "1 invalid signature: non-matching reference",
            "dir-img-valid",
            "testing/manifest:notlatest",
            "public-key.gpg",
            False,
        ),
        (
            "2 valid signatures",
            "dir-img-valid-2",
            "testing/manifest:latest",
            "public-key.gpg",
            True,
        ),
        (
            "one invalid, one valid signature",
            "dir-img-mixed",
            "testing/manifest:latest",
            "public-key.gpg",
            True,
        ),
        (
            "2 invalid signatures: non-matching reference",
            "dir-img-valid-2",
            "testing/manifest:notlatest",
            "public-key.gpg",
            False,
        ),
        (
            "a valid signature using a subkey",
            "dir-img-valid-subkey",
            "testing/manifest:latest",
            "public-key-with-subkey.gpg",
            True,
        ),
    ]:
        add(
            f,
            case,
            {"type": "signedBy", "keyType": "GPGKeys", "keyPath": key, "signedIdentity": exact},
            image,
            ref,
            ["(all in the image dir)"],
            ok,
        )
    write(
        "signedby_eval",
        "signature/policy_eval_signedby_test.go",
        "(the functions named in each row)",
        rows,
        "a signedBy requirement evaluated for a dir: image of the fixtures claiming `reference`; keyData @file = that fixture's bytes",
    )


def manifest_tables(write: Write) -> None:
    s2 = "sha256:20bf21ed457b390829cdbeec8795a7bea1626991fda603e0d01b4e7f60427e55"
    s1 = "sha256:7364fea9d84ee548ab67d4c46c6006289800c98de3fbf8c0a97138dfcc23f000"
    empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    rows: list[dict[str, Any]] = [
        {"function": "TestDigest", "manifest": "v2s2.manifest.json", "digest": s2},
        {"function": "TestDigest", "manifest": "v2s1.manifest.json", "digest": s1},
        {"function": "TestDigest", "manifest": "v2s1-unsigned.manifest.json", "digest": s1},
        {
            "function": "TestDigest",
            "manifest": "v2s1-invalid-signatures.manifest.json",
            "digest": None,
        },
        {"function": "TestDigest", "manifest": "(empty)", "digest": empty},
    ]
    for m, d, ok in [
        ("v2s2.manifest.json", s2, True),
        ("v2s1.manifest.json", s1, True),
        ("v2s2.manifest.json", s1, False),
        ("v2s1.manifest.json", s2, False),
        ("v2s2.manifest.json", "md5:2872f31c5c1f62a694fbd20c1e85257c", False),
        ("v2s2.manifest.json", s2 + "abc", False),
        ("v2s2.manifest.json", s2[:20], False),
        ("v2s2.manifest.json", "", False),
        ("v2s1-invalid-signatures.manifest.json", "(sha256 of the file)", False),
        ("(empty)", empty, True),
    ]:
        rows.append({"function": "TestMatchesDigest", "manifest": m, "expected": d, "matches": ok})
    write(
        "manifest_digest",
        "manifest/manifest_test.go",
        "TestDigest, TestMatchesDigest",
        rows,
        "the digest a signature signs, computed from the manifest bytes (signed schema1: signatures stripped)",
    )


def scope_tables(write: Write) -> None:
    scopes = [
        ("docker", ""),
        ("docker", "unmatched"),
        ("docker", "deep.com"),
        ("docker", "*.very.deep.com"),
        ("docker", "*.deep.com"),
        ("docker", "deep.com/n1"),
        ("docker", "deep.com/n1/n2"),
        ("docker", "deep.com/n1/n2/n3"),
        ("docker", "deep.com/n1/n2/n3/repo"),
        ("docker", "deep.com/n1/n2/n3/repo:tag2"),
        ("atomic", "unmatched"),
    ]
    policy: dict[str, Any] = {"default": [{"type": "reject"}], "transports": {}}
    for transport, scope in scopes:
        policy["transports"].setdefault(transport, {})[scope] = [
            {"type": "signedBy", "keyType": "GPGKeys", "keyPath": f"/{transport}/{scope}"}
        ]
    rows = []
    for t, ref, mt, m in [
        ("docker", "deep.com/n1/n2/n3/repo:tag2", "docker", "deep.com/n1/n2/n3/repo:tag2"),
        ("docker", "deep.com/n1/n2/n3/repo:nottag2", "docker", "deep.com/n1/n2/n3/repo"),
        ("docker", "deep.com/n1/n2/n3/notrepo:tag2", "docker", "deep.com/n1/n2/n3"),
        ("docker", "deep.com/n1/n2/notn3/repo:tag2", "docker", "deep.com/n1/n2"),
        ("docker", "deep.com/n1/notn2/n3/repo:tag2", "docker", "deep.com/n1"),
        ("docker", "deep.com/notn1/n2/n3/repo:tag2", "docker", "deep.com"),
        ("docker", "very.deep.com/n1/n2/n3/repo:tag2", "docker", "*.deep.com"),
        ("docker", "not.very.deep.com/n1/n2/n3/repo:tag2", "docker", "*.very.deep.com"),
        ("docker", "this.does-not/match:anything", "docker", ""),
        ("atomic", "this.does-not/match:anything", "", ""),
        ("dir", "what/ever", "", ""),
    ]:
        rows.append({"transport": t, "input": ref, "matched_transport": mt, "matched": m})
    write(
        "scope_lookup",
        "signature/policy_eval_test.go",
        "TestPolicyContextRequirementsForImageRef",
        [{"policy": policy, "cases": rows}],
        "one policy and the scope each image resolves to (matched_transport \"\" = the global default); the test's mock names every transport's images the docker way",
    )


def transport_tables(write: Write) -> None:
    """PolicyConfigurationIdentity/Namespaces of the path transports (their known-path cases)."""
    rows: list[dict[str, Any]] = []
    for file, fn, transport, image in [
        (
            "directory/directory_transport_test.go",
            "TestReferencePolicyConfigurationNamespaces",
            "dir",
            None,
        ),
        (
            "oci/layout/oci_transport_test.go",
            "TestReferencePolicyConfigurationNamespaces",
            "oci",
            "someimage",
        ),
        (
            "oci/archive/oci_transport_test.go",
            "TestReferencePolicyConfigurationNamespaces",
            "oci-archive",
            "someimage",
        ),
    ]:
        parent_only = transport == "dir"
        for path in ("/usr/share", "/usr/share/./."):
            ref = path if image is None else f"{path}:{image}"
            rows.append(
                {
                    "source": f"{file} {fn}",
                    "transport": transport,
                    "ref": ref,
                    "identity": "/usr/share",
                    "namespaces": ["/usr"] if parent_only else ["/usr/share", "/usr"],
                }
            )
        ref = "/" if image is None else "/:image3"
        rows.append(
            {
                "source": f"{file} {fn}",
                "transport": transport,
                "ref": ref,
                "identity": "/",
                "namespaces": [],
            }
        )
    write(
        "transport_namespaces",
        "directory/directory_transport_test.go",
        "(the files and functions named in each row)",
        rows,
        "the scope identity and namespaces of path-transport images (paths are cleaned; podsec does not resolve symlinks)",
    )
