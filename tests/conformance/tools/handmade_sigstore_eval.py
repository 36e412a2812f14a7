"""sigstoreSigned *evaluation* cases, transcribed from containers/image's Go tests as data.

Sources (same commit as every table): ``signature/policy_eval_sigstore_test.go``
(TestPRSigstoreSignedPrepareTrustRoot, TestPRrSigstoreSignedIsSignatureAccepted,
TestPRSigstoreSignedIsRunningImageAllowed) and ``signature/internal/sigstore_payload_test.go``
(TestUntrustedSigstorePayloadUnmarshalJSON, TestVerifySigstorePayload).

Row vocabulary (the runner, tests/conformance/test_sigstore.py, reads it):

- ``requirement``: a policy.json requirement; ``"go_struct": true`` marks one the Go test
  builds as a struct that ``NewPRSigstoreSigned`` would refuse (the runner builds the
  Requirement directly, bypassing the parser). ``"@file"`` as a ``*Data`` value means the
  base64 of that fixture's bytes; paths are relative to the fixtures' ``signature/`` folder.
- ``signatures``: ``"(all in the image dir)"``, ``"(unreadable)"`` (containers/image's
  createInvalidSigDir: reading the signatures fails), or a list of specs ``{"file": F,
  "drop": [annotation…], "set": {annotation: value}, "set_from": {annotation: F},
  "annotations": {…}}`` applied to the signature in ``F``.
- ``podsec_differs``: containers/image accepts with a Fulcio certificate, a Rekor SET or a
  PKI chain, which podsec does not verify (offline key signatures only): podsec refuses.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from handmade import Write, enc

EVAL_TEST = "signature/policy_eval_sigstore_test.go"
PAYLOAD_TEST = "signature/internal/sigstore_payload_test.go"
MR = {"type": "matchRepository"}
RDOE = {"type": "matchRepoDigestOrExact"}
EXACT = {"type": "matchExact"}
FULCIO = {
    "caPath": "fulcio_v1.crt.pem",
    "oidcIssuer": "https://github.com/login/oauth",
    "subjectEmail": "mitr@redhat.com",
}
PKI = {
    "caRootsPath": "pki_root_crts.pem",
    "caIntermediatesPath": "pki_intermediate_crts.pem",
    "subjectEmail": "qiwan@redhat.com",
    "subjectHostname": "myhost.example.com",
}
KEY_IMG = ("dir-img-cosign-valid", "192.168.64.2:5000/cosign-signed-single-sample")
KEY_SIG = "dir-img-cosign-valid/signature-1"
REKOR_IMG = ("dir-img-cosign-key-rekor-valid", "192.168.64.2:5000/cosign-signed/key-1")
REKOR_SIG = "dir-img-cosign-key-rekor-valid/signature-1"
FULCIO_IMG = ("dir-img-cosign-fulcio-rekor-valid", "192.168.64.2:5000/cosign-signed/fulcio-rekor-1")
FULCIO_SIG = "dir-img-cosign-fulcio-rekor-valid/signature-1"
PKI_IMG = ("dir-img-cosign-pki-valid", "localhost:5000/test")
PKI_SIG = "dir-img-cosign-pki-valid/signature-1"
SET = "dev.sigstore.cosign/bundle"
CERT = "dev.sigstore.cosign/certificate"
CHAIN = "dev.sigstore.cosign/chain"
SIGNATURE = "dev.cosignproject.cosign/signature"


def _req(ident: dict[str, Any] = MR, **fields: Any) -> dict[str, Any]:
    return {"type": "sigstoreSigned", **fields, "signedIdentity": ident}


def _annotations(root: Path, name: str) -> dict[str, str]:
    blob = (root / "signature/fixtures" / name).read_bytes()
    doc = json.loads(blob[1:].partition(b"\n")[2])
    return dict(doc["annotations"])


def trust_root_tables(write: Write) -> None:
    rows: list[dict[str, Any]] = []

    def add(case: str, req: dict[str, Any], ok: bool, keys: int = 0, differs: str = "") -> None:
        row: dict[str, Any] = {"case": case, "requirement": req, "ok": ok}
        if ok:
            row["keys"] = keys
        if differs:
            row["podsec_differs"] = differs
        rows.append(row)

    k1, k2 = "cosign.pub", "cosign2.pub"
    add("keyPath", _req(RDOE, keyPath=k1), True, 1)
    add("keyPaths", _req(RDOE, keyPaths=[k1, k2]), True, 2)
    add("keyData", _req(RDOE, keyData="@" + k1), True, 1)
    add("keyDatas", _req(RDOE, keyDatas=["@" + k1, "@" + k2]), True, 2)
    add(
        "Fulcio + rekorPublicKeyData",
        _req(RDOE, fulcio=FULCIO, rekorPublicKeyData="@rekor.pub"),
        True,
        differs="fulcio",
    )
    for kname, kopt in (
        ("keyData", {"keyData": "@" + k1}),
        ("keyPaths", {"keyPaths": [k1, k2]}),
        ("keyData (again)", {"keyData": "@" + k1}),
        ("keyDatas", {"keyDatas": ["@" + k1, "@" + k2]}),
    ):
        for rname, ropt in (
            ("rekorPublicKeyPath", {"rekorPublicKeyPath": "rekor.pub"}),
            ("rekorPublicKeyPaths", {"rekorPublicKeyPaths": ["rekor.pub", k1]}),
            ("rekorPublicKeyData", {"rekorPublicKeyData": "@rekor.pub"}),
            ("rekorPublicKeyDatas", {"rekorPublicKeyDatas": ["@rekor.pub", "@" + k1]}),
        ):
            add(f"{kname} + {rname}", _req(RDOE, **kopt, **ropt), True, differs="rekor")
    add("PKI", _req(RDOE, pki=PKI), True, differs="pki")

    bad = "image.signature"
    missing = "this/does/not/exist"
    go = {"go_struct": True}
    for case, req in [
        ("both keyPath and keyData", _req(RDOE, keyPath=k1, keyData="@" + k1, **go)),
        ("invalid public key path", _req(RDOE, keyPath=bad)),
        ("unusable public key path", _req(RDOE, keyPath=missing)),
        ("both keyPath and keyPaths", _req(RDOE, keyPath=k1, keyPaths=[k1, k2], **go)),
        ("empty keyPaths", _req(RDOE, keyPaths=[], **go)),
        ("invalid keyPaths element (first)", _req(RDOE, keyPaths=[bad, k2])),
        ("invalid keyPaths element (second)", _req(RDOE, keyPaths=[k2, bad])),
        ("unusable keyPaths element (first)", _req(RDOE, keyPaths=[missing, k2])),
        ("unusable keyPaths element (second)", _req(RDOE, keyPaths=[k2, missing])),
        ("invalid public key data", _req(RDOE, keyData=base64.b64encode(b"this is invalid").decode())),
        ("both keyData and keyDatas", _req(RDOE, keyData="@" + k1, keyDatas=["@" + k1, "@" + k2], **go)),
        ("empty keyDatas", _req(RDOE, keyDatas=[], **go)),
        ("invalid keyDatas element (first)", _req(RDOE, keyDatas=[base64.b64encode(b"this is invalid").decode(), "@" + k2])),
        ("invalid keyDatas element (second)", _req(RDOE, keyDatas=["@" + k1, base64.b64encode(b"this is invalid").decode()])),
        ("invalid Fulcio configuration", _req(RDOE, fulcio={}, rekorPublicKeyData="@" + k1, **go)),
        ("both rekorPublicKeyPath and rekorPublicKeyData", _req(RDOE, keyData="@" + k1, rekorPublicKeyPath="rekor.pub", rekorPublicKeyData="@rekor.pub", **go)),
        ("invalid Rekor public key path", _req(RDOE, keyData="@" + k1, rekorPublicKeyPath=bad)),
        ("both rekorPublicKeyPath and rekorPublicKeyPaths", _req(RDOE, keyData="@" + k1, rekorPublicKeyPath="rekor.pub", rekorPublicKeyPaths=["rekor.pub", k1], **go)),
        ("empty rekorPublicKeyPaths", _req(RDOE, keyData="@" + k1, rekorPublicKeyPaths=[], **go)),
        ("invalid rekorPublicKeyPaths (first)", _req(RDOE, keyData="@" + k1, rekorPublicKeyPaths=[bad, "rekor.pub"])),
        ("invalid rekorPublicKeyPaths (second)", _req(RDOE, keyData="@" + k1, rekorPublicKeyPaths=["rekor.pub", bad])),
        ("invalid Rekor public key data", _req(RDOE, keyData="@" + k1, rekorPublicKeyData=base64.b64encode(b"this is invalid").decode())),
        ("both rekorPublicKeyData and rekorPublicKeyDatas", _req(RDOE, keyData="@" + k1, rekorPublicKeyData="@rekor.pub", rekorPublicKeyDatas=["@rekor.pub", "@" + k1], **go)),
        ("empty rekorPublicKeyDatas", _req(RDOE, keyData="@" + k1, rekorPublicKeyDatas=[], **go)),
        ("invalid rekorPublicKeyDatas (first)", _req(RDOE, keyData="@" + k1, rekorPublicKeyDatas=[base64.b64encode(b"this is invalid").decode(), "@rekor.pub"])),
        ("invalid rekorPublicKeyDatas (second)", _req(RDOE, keyData="@" + k1, rekorPublicKeyDatas=["@rekor.pub", base64.b64encode(b"this is invalid").decode()])),
        ("Rekor public key is not ECDSA", _req(RDOE, keyData="@" + k1, rekorPublicKeyPath="some-rsa-key.pub")),
        ("invalid PKI configuration", _req(RDOE, pki={}, **go)),
    ]:  # fmt: skip
        add(case, req, False)
    write(
        "sigstore_trust_root",
        EVAL_TEST,
        "TestPRSigstoreSignedPrepareTrustRoot",
        rows,
        "prepareTrustRoot of a sigstoreSigned requirement: ok (and how many public keys) or an "
        "error; podsec_differs rows are Fulcio/Rekor/PKI roots podsec does not verify",
    )


def accepted_tables(root: Path, write: Write) -> None:
    rows: list[dict[str, Any]] = []
    f = "TestPRrSigstoreSignedIsSignatureAccepted"

    def add(
        case: str,
        req: dict[str, Any],
        image: tuple[str, str],
        sig: dict[str, Any] | str,
        accepted: bool,
        differs: str = "",
        function: str = f,
    ) -> None:
        sigs: Any = [sig] if isinstance(sig, dict) else sig
        row: dict[str, Any] = {
            "function": function,
            "case": case,
            "requirement": req,
            "image": image[0],
            "reference": image[1],
            "signatures": sigs,
            "accepted": accepted,
        }
        if differs:
            row["podsec_differs"] = differs
        rows.append(row)

    k1, k2 = "cosign.pub", "cosign2.pub"
    go = {"go_struct": True}
    key_sig = {"file": KEY_SIG}
    add("prepareTrustRoot fails", _req(keyPath=k1, keyData="@" + k1, **go), KEY_IMG, key_sig, False)
    add(
        "signature has no cryptographic signature",
        _req(keyPath=k1),
        KEY_IMG,
        {"file": KEY_SIG, "annotations": {}},
        False,
    )
    add("none of public key, Fulcio or PKI", _req(**go), KEY_IMG, key_sig, False)
    add(
        "both a public key and Fulcio",
        _req(keyPath=k1, fulcio=FULCIO, **go),
        KEY_IMG,
        key_sig,
        False,
    )
    pki_email = {k: v for k, v in PKI.items() if k != "subjectHostname"}
    add("both Fulcio and PKI", _req(fulcio=FULCIO, pki=pki_email, **go), KEY_IMG, key_sig, False)
    add(
        "both PKI and a Rekor public key",
        _req(pki=pki_email, rekorPublicKeyPath="rekor.pub", **go),
        KEY_IMG,
        key_sig,
        False,
    )
    key_paths = ([k2], [k2, k1], [k1, k2])
    for kp in key_paths:
        for rp in (["rekor.pub"], ["rekor.pub", k1], [k1, "rekor.pub"]):
            add(
                f"key+Rekor success keyPaths={kp} rekorPublicKeyPaths={rp}",
                _req(keyPaths=kp, rekorPublicKeyPaths=rp),
                REKOR_IMG,
                {"file": REKOR_SIG},
                True,
                "rekor",
            )
    add(
        "key+Rekor, missing Rekor SET annotation",
        _req(keyPath=k2, rekorPublicKeyPath="rekor.pub"),
        KEY_IMG,
        {"file": REKOR_SIG, "drop": [SET]},
        False,
    )
    add(
        "key+Rekor, invalid Rekor SET",
        _req(keyPath=k2, rekorPublicKeyPath="rekor.pub"),
        KEY_IMG,
        {"file": REKOR_SIG, "set": {SET: "this is not a valid SET"}},
        False,
    )
    for kp in key_paths:
        add(
            f"key+Rekor, a SET we do not accept, keyPaths={kp}",
            _req(keyPaths=kp, rekorPublicKeyPath=k1),
            KEY_IMG,
            {"file": REKOR_SIG},
            False,
        )
    add(
        "key+Rekor, a valid SET for one accepted key, a signature by another",
        _req(keyPaths=[k1, k2], rekorPublicKeyPath="rekor.pub"),
        KEY_IMG,
        {"file": KEY_SIG, "set_from": {SET: REKOR_SIG}},
        False,
    )
    fulcio_rekor = ["cosign.pub", "rekor.pub"]
    for rp in (["rekor.pub"], ["rekor.pub", k1], fulcio_rekor):
        add(
            f"Fulcio success rekorPublicKeyPaths={rp}",
            _req(fulcio=FULCIO, rekorPublicKeyPaths=rp),
            FULCIO_IMG,
            {"file": FULCIO_SIG},
            True,
            "fulcio",
        )
    add(
        "Fulcio, no Rekor requirement",
        _req(fulcio=FULCIO, **go),
        KEY_IMG,
        {"file": FULCIO_SIG, "drop": [SET]},
        False,
    )
    fr = _req(fulcio=FULCIO, rekorPublicKeyPaths=fulcio_rekor)
    add(
        "Fulcio, missing Rekor SET annotation",
        fr,
        KEY_IMG,
        {"file": FULCIO_SIG, "drop": [SET]},
        False,
    )
    add(
        "Fulcio, missing certificate annotation",
        fr,
        KEY_IMG,
        {"file": FULCIO_SIG, "drop": [CERT]},
        False,
    )
    add(
        "Fulcio, missing chain annotation",
        fr,
        KEY_IMG,
        {"file": FULCIO_SIG, "drop": [CHAIN]},
        False,
    )
    chain = _annotations(root, FULCIO_SIG)[CHAIN]
    add(
        "Fulcio, no chain annotation but the issuer is trusted directly",
        _req(
            fulcio={**{k: v for k, v in FULCIO.items() if k != "caPath"},
                    "caData": base64.b64encode(chain.encode()).decode()},
            rekorPublicKeyPath="rekor.pub",
        ),
        FULCIO_IMG,
        {"file": FULCIO_SIG, "drop": [CHAIN]},
        True,
        "fulcio",
    )  # fmt: skip
    add(
        "Fulcio, invalid certificate",
        fr,
        KEY_IMG,
        {"file": FULCIO_SIG, "set": {CERT: "this is not a valid certificate"}},
        False,
    )
    add(
        "Fulcio, a certificate we do not accept (email)",
        _req(
            fulcio={**FULCIO, "subjectEmail": "this-does-not-match@example.com"},
            rekorPublicKeyPath="rekor.pub",
        ),
        KEY_IMG,
        {"file": FULCIO_SIG},
        False,
    )
    add(
        "Fulcio, invalid Rekor SET",
        fr,
        KEY_IMG,
        {"file": FULCIO_SIG, "set": {SET: "this is not a valid SET"}},
        False,
    )
    add(
        "Fulcio, a Rekor SET we do not accept",
        _req(fulcio=FULCIO, rekorPublicKeyPath=k1),
        KEY_IMG,
        {"file": FULCIO_SIG},
        False,
    )
    add("PKI success", _req(pki=PKI), PKI_IMG, {"file": PKI_SIG}, True, "pki")
    add(
        "PKI, missing certificate annotation",
        _req(pki=PKI),
        KEY_IMG,
        {"file": PKI_SIG, "drop": [CERT]},
        False,
    )
    add(
        "PKI, missing chain annotation, issuer trusted through the intermediates",
        _req(pki=PKI),
        PKI_IMG,
        {"file": PKI_SIG, "drop": [CHAIN]},
        True,
        "pki",
    )
    pki2 = {k: v for k, v in PKI.items() if k != "caIntermediatesPath"}
    add(
        "PKI, missing chain annotation, no intermediates",
        _req(pki=pki2),
        KEY_IMG,
        {"file": PKI_SIG, "drop": [CHAIN]},
        False,
    )
    for name, opt in (
        ("keyPath", {"keyPath": k1}),
        ("keyPaths cosign,cosign2", {"keyPaths": [k1, k2]}),
        ("keyPaths cosign2,cosign", {"keyPaths": [k2, k1]}),
        ("keyData", {"keyData": "@" + k1}),
        ("keyDatas cosign,cosign2", {"keyDatas": ["@" + k1, "@" + k2]}),
        ("keyDatas cosign2,cosign", {"keyDatas": ["@" + k2, "@" + k1]}),
    ):
        add(f"successful validation, {name}", _req(**opt), KEY_IMG, key_sig, True)
    add(
        "a signature which does not verify",
        _req(keyPath=k1),
        KEY_IMG,
        {
            "file": KEY_SIG,
            "annotations": {SIGNATURE: base64.b64encode(b"invalid signature").decode()},
        },
        False,
    )
    add(
        "a valid signature using an unknown key",
        _req(keyPath=k1),
        KEY_IMG,
        {"file": "unknown-cosign-key.signature"},
        False,
    )
    add(
        "a valid signature with a rejected identity",
        _req({"type": "exactReference", "dockerReference": "this/does-not:match"}, keyPath=k1),
        KEY_IMG,
        key_sig,
        False,
    )
    for case, img in (
        ("error reading image manifest", "dir-img-cosign-no-manifest"),
        ("error computing manifest digest", "dir-img-cosign-manifest-digest-error"),
        ("a valid signature with a non-matching manifest", "dir-img-cosign-modified-manifest"),
    ):
        add(case, _req(keyPath=k1), (img, KEY_IMG[1]), {"file": f"{img}/signature-1"}, False)
    tag_img = "dir-img-cosign-valid-with-tag"
    tag_sig = {"file": f"{tag_img}/signature-1"}
    add(
        "matchExact, matching tag",
        _req(EXACT, keyPath=k1),
        (tag_img, "192.168.64.2:5000/skopeo-signed:tag"),
        tag_sig,
        True,
    )
    add(
        "matchExact, non-matching tag",
        _req(EXACT, keyPath=k1),
        (tag_img, "192.168.64.2:5000/skopeo-signed:othertag"),
        tag_sig,
        False,
    )
    add(
        "matchExact, cosign-created signature (no tag)",
        _req(EXACT, keyPath=k1),
        KEY_IMG,
        key_sig,
        False,
    )

    f = "TestPRSigstoreSignedIsRunningImageAllowed"
    everything = "(all in the image dir)"
    for case, req, img, sigs, ok in (
        ("single valid signature", _req(keyPath=k1), KEY_IMG, everything, True),
        ("error reading signatures", _req(keyPath=k1), KEY_IMG, "(unreadable)", False),
        ("no signatures", _req(keyPath=k1), ("dir-img-unsigned", "testing/manifest:latest"), everything, False),
        ("only non-sigstore signatures", _req(keyPath=k1), ("dir-img-valid", "testing/manifest:latest"), everything, False),
        ("only non-signature sigstore attachments", _req(keyPath=k1), ("dir-img-cosign-other-attachment", "testing/manifest:latest"), everything, False),
        ("1 invalid signature (reference)", _req(keyPath=k1), ("dir-img-cosign-valid", "testing/manifest:notlatest"), everything, False),
        ("2 valid signatures", _req(keyPath=k1), ("dir-img-cosign-valid-2", KEY_IMG[1]), everything, True),
        ("one invalid, one valid signature", _req(keyPath=k1), ("dir-img-cosign-mixed", KEY_IMG[1]), everything, True),
        ("2 invalid signatures (reference)", _req(keyPath=k1), ("dir-img-cosign-valid-2", "this/does-not:match"), everything, False),
        ("matchExact, matching tag", _req(EXACT, keyPath=k1), (tag_img, "192.168.64.2:5000/skopeo-signed:tag"), everything, True),
        ("matchExact, non-matching tag", _req(EXACT, keyPath=k1), (tag_img, "192.168.64.2:5000/skopeo-signed:othertag"), everything, False),
        ("matchExact, cosign-created signature", _req(EXACT, keyPath=k1), KEY_IMG, everything, False),
    ):  # fmt: skip
        add(case, req, img, sigs, ok, function=f)
    write(
        "sigstore_eval",
        EVAL_TEST,
        "(the functions named in each row)",
        rows,
        "a sigstoreSigned requirement evaluated for a dir: image of the fixtures claiming "
        "`reference`; isSignatureAccepted cases are evaluated with that one signature",
    )


def payload_tables(root: Path, write: Write) -> None:
    test_digest = "sha256:" + "a" * 64
    valid = {
        "critical": {
            "identity": {"docker-reference": "reference#@!"},
            "image": {"docker-manifest-digest": test_digest},
            "type": "cosign container image signature",
        },
        "optional": {"creator": "containers/image 5.x", "timestamp": 1484683104},
    }
    rows: list[dict[str, Any]] = []
    f = "TestUntrustedSigstorePayloadUnmarshalJSON"

    def add(case: str, text: str, ok: bool) -> None:
        rows.append({"function": f, "case": case, "json": text, "valid": ok})

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

    add("invalid JSON &", "&", False)
    add("not an object", "1", False)
    add("valid", enc(valid), True)
    add(
        "a /usr/bin/cosign-generated payload (optional: null)",
        '{"critical":{"identity":{"docker-reference":"192.168.64.2:5000/cosign-signed-multi"},'
        '"image":{"docker-manifest-digest":"sha256:43955d6857268cc948ae9b370b221091057de83c4962'
        'da0826f9a2bdc9bd6b44"},"type":"cosign container image signature"},"optional":null}',
        True,
    )
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
        ("docker-manifest-digest missing", ["critical", "image"], "docker-manifest-digest", None, True),
        ("extra field of image", ["critical", "image"], "unexpected", 1, False),
        ("docker-manifest-digest: 1", ["critical", "image"], "docker-manifest-digest", 1, False),
        ("docker-manifest-digest: sha256:../..", ["critical", "image"], "docker-manifest-digest", "sha256:../..", False),
        ("identity: 1", ["critical"], "identity", 1, False),
        ("docker-reference missing", ["critical", "identity"], "docker-reference", None, True),
        ("extra field of identity", ["critical", "identity"], "unexpected", 1, False),
        ("docker-reference: 1", ["critical", "identity"], "docker-reference", 1, False),
        ("creator: 1", ["optional"], "creator", 1, False),
        ("timestamp: unexpected", ["optional"], "timestamp", "unexpected", False),
        ("timestamp: 0.5 (fractional)", ["optional"], "timestamp", 0.5, False),
    ]:  # fmt: skip
        add(case, mod(path, key, value, delete), False)
    add("allowed: an unknown optional field", mod(["optional"], "unexpected", 1), True)
    no_optional = json.loads(enc(valid))
    no_optional["optional"] = {}
    add("optional fields can be missing", enc(no_optional), True)
    write(
        "sigstore_payload_parse",
        PAYLOAD_TEST,
        f,
        rows,
        "a sigstore payload and whether UntrustedSigstorePayload.UnmarshalJSON accepts it",
    )

    # TestVerifySigstorePayload: internal/testdata/valid.signature, cosign.pub / cosign2.pub
    blob = (root / "signature/internal/testdata/valid.signature").read_bytes()
    chunk = json.loads(blob[1:].partition(b"\n")[2])
    good = chunk["annotations"][SIGNATURE]
    raw = base64.b64decode(good)
    rows = []
    f = "TestVerifySigstorePayload"

    def vrow(case: str, keys: list[str], sig: str, ok: bool, payload: str | None = None,
             wanted: dict[str, str] | None = None) -> None:  # fmt: skip
        row: dict[str, Any] = {
            "function": f,
            "case": case,
            "keys": keys,
            "signature": sig,
            "ok": ok,
        }
        if payload is not None:
            row["payload"] = payload
        if wanted is not None:
            row["wanted"] = wanted
        rows.append(row)

    pub, pub2 = "internal/testdata/cosign.pub", "internal/testdata/cosign2.pub"
    for keys in ([pub], [pub, pub2], [pub2, pub]):
        vrow(f"successful verification, keys {keys}", keys, good, True)
    for case, sig in (
        ("invalid base64 &", "&"),
        ("extra padding", good + "="),
        ("truncated base64", good[:-1]),
    ):
        vrow(case, [pub], sig, False)
    vrow("no public keys", [], good, False)
    for case, bad in (
        ("empty signature", b""),
        ("invalid signature", b"invalid signature"),
        ("valid signature repeated", raw * 2),
    ):
        vrow(case, [pub], base64.b64encode(bad).decode(), False)
    for keys in ([pub2], [pub2, pub2]):
        vrow(f"no matching public keys {keys}", keys, good, False)
    vrow(
        "valid signature of non-JSON",
        [pub],
        "MEUCIARnnxZQPALBfqkB4aNAYXad79Qs6VehcrgIeZ8p7I2FAiEAzq2HXwXlz1iJeh+ucUR3L0zpjynQk6Rk0+/gXYp49RU=",
        False,
        "&",
    )
    vrow(
        "valid signature of an unacceptable JSON",
        [pub],
        "MEUCIQDkySOBGxastVP0+koTA33NH5hXjwosFau4rxTPN6g48QIgb7eWKkGqfEpHMM3aT4xiqyP/170jEkdFuciuwN4mux4=",
        False,
        "{}",
    )
    signed = json.loads(base64.b64decode(chunk["payload"]))["critical"]
    ref, digest = signed["identity"]["docker-reference"], signed["image"]["docker-manifest-digest"]
    vrow(
        "valid signature, the rules accept it",
        [pub],
        good,
        True,
        wanted={"reference": ref, "digest": digest},
    )
    vrow(
        "valid signature with a wrong manifest digest",
        [pub],
        good,
        False,
        wanted={"reference": ref, "digest": "invalid digest"},
    )
    vrow("valid signature with a wrong image reference", [pub], good, False, wanted={"reference": "unexpected docker reference", "digest": digest})  # fmt: skip
    write(
        "sigstore_verify_payload",
        PAYLOAD_TEST,
        f,
        rows,
        "VerifySigstorePayload over internal/testdata/valid.signature's payload (unless "
        "`payload` is given) with the named keys; `wanted` is what the acceptance rules want",
    )


def sigstore_eval_tables(root: Path, write: Write) -> None:
    trust_root_tables(write)
    accepted_tables(root, write)
    payload_tables(root, write)
