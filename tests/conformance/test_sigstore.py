"""Sigstore key signatures: payload parsing, VerifySigstorePayload, prepareTrustRoot and the
sigstoreSigned verdicts — containers/image's tables and its cosign-signed fixtures, row by row.

Rows marked ``podsec_differs`` are containers/image acceptances through a Fulcio
certificate, a Rekor SET or a PKI chain: podsec verifies offline key signatures only and
refuses them (README, "Decided as containers/image decides"); the test asserts that refusal.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from podsec.errors import PodsecError
from podsec.host.paths import Host
from podsec.trust import manifest, policy, signature, sigstore, verify, verify_sigstore
from tests.conformance.tables import FIXTURES, rows

SIG = FIXTURES / "containers-image" / "signature"


def _data(value: str) -> str:
    """``@file`` → base64 of that fixture; anything else is already base64."""
    if value.startswith("@"):
        return base64.b64encode((SIG / value[1:]).read_bytes()).decode()
    return value


def _path(value: str) -> str:
    return value if value.startswith("/") else str(SIG / value)


def _resolved(req: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in req.items() if k != "go_struct"}
    for key in ("keyPath", "rekorPublicKeyPath"):
        if key in out:
            out[key] = _path(out[key])
    for key in ("keyPaths", "rekorPublicKeyPaths"):
        if key in out:
            out[key] = [_path(p) for p in out[key]]
    for key in ("keyData", "rekorPublicKeyData"):
        if key in out:
            out[key] = _data(out[key])
    for key in ("keyDatas", "rekorPublicKeyDatas"):
        if key in out:
            out[key] = [_data(d) for d in out[key]]
    for key in ("fulcio", "pki"):
        if isinstance(out.get(key), dict):
            sub = dict(out[key])
            for name in ("caPath", "caRootsPath", "caIntermediatesPath"):
                if name in sub:
                    sub[name] = _path(sub[name])
            out[key] = sub
    return out


def requirement(req: dict[str, Any]) -> policy.Requirement:
    """The Requirement of a row: parsed like policy.json, or built as the Go struct."""
    fields = _resolved(req)
    if not req.get("go_struct"):
        return policy.parse(json.dumps({"default": [fields]}), "policy.json").default[0]
    extra = tuple(
        (k, v)
        for k, v in fields.items()
        if k not in ("type", "keyPath", "keyPaths", "keyData", "signedIdentity")
    )
    return policy.Requirement(
        policy.SIGSTORE_SIGNED,
        key_path=fields.get("keyPath"),
        key_paths=tuple(fields["keyPaths"]) if "keyPaths" in fields else None,
        key_data=fields.get("keyData"),
        signed_identity=fields.get("signedIdentity"),
        extra=extra,
    )


def _sig(spec: dict[str, Any]) -> bytes:
    found = sigstore.from_blob((SIG / spec["file"]).read_bytes())
    assert found is not None
    annotations = dict(found.annotations)
    if "annotations" in spec:
        annotations = dict(spec["annotations"])
    for name in spec.get("drop", []):
        assert name in annotations
        del annotations[name]
    annotations.update(spec.get("set", {}))
    for name, other in spec.get("set_from", {}).items():
        source = sigstore.from_blob((SIG / other).read_bytes())
        assert source is not None
        annotations[name] = source.annotations[name]
    return sigstore.Sigstore(found.mime_type, found.payload, annotations).blob()


def _signatures(row: dict[str, Any]) -> Any:
    if row["signatures"] == "(unreadable)":

        def unreadable() -> list[bytes]:
            raise PodsecError("reading signature-1: too many levels of symbolic links")

        return unreadable
    if row["signatures"] == "(all in the image dir)":
        found, n = [], 1
        while (SIG / row["image"] / f"signature-{n}").exists():
            found.append((SIG / row["image"] / f"signature-{n}").read_bytes())
            n += 1
        return found
    return [_sig(s) for s in row["signatures"]]


@pytest.mark.parametrize("row", rows("sigstore_eval"))
def test_sigstore_eval(row: dict[str, Any]) -> None:
    try:
        req = requirement(row["requirement"])
        data = (SIG / row["image"] / "manifest.json").read_bytes()
        digest = manifest.digest(data)
    except (PodsecError, OSError):
        accepted = False  # refused before any signature is looked at
    else:
        p = policy.Policy((req,))
        verdict = verify.evaluate(Host(), p, row["reference"], digest, _signatures(row))
        accepted = verdict.accepted
        assert verdict.reason and "\n" not in verdict.reason
        if row.get("podsec_differs"):
            assert "podsec verifies sigstore key signatures only" in verdict.reason
    expected = row["accepted"] and not row.get("podsec_differs")
    assert accepted is expected, row["case"]


class _Ev:
    """What public_keys reads of an Evaluation: the host."""

    host = Host()


@pytest.mark.parametrize("row", rows("sigstore_trust_root"))
def test_sigstore_trust_root(row: dict[str, Any]) -> None:
    try:
        req = requirement(row["requirement"])
        keys = verify_sigstore.public_keys(_Ev(), req)  # type: ignore[arg-type]
    except PodsecError:
        ok = False
    else:
        ok = True
        assert len(keys) == row["keys"]
    assert ok is (row["ok"] and not row.get("podsec_differs")), row["case"]


@pytest.mark.parametrize("row", rows("sigstore_payload_parse"))
def test_sigstore_payload_parse(row: dict[str, Any]) -> None:
    try:
        sigstore.parse_payload(row["json"].encode())
    except signature.PayloadError:
        ok = False
    else:
        ok = True
    assert ok is row["valid"], row["json"]


def _valid_signature() -> sigstore.Sigstore:
    found = sigstore.from_blob((SIG / "internal/testdata/valid.signature").read_bytes())
    assert found is not None
    return found


@pytest.mark.parametrize("row", rows("sigstore_verify_payload"))
def test_sigstore_verify_payload(row: dict[str, Any]) -> None:
    keys = [sigstore.load_public_key((SIG / k).read_bytes()) for k in row["keys"]]
    payload = row["payload"].encode() if "payload" in row else _valid_signature().payload
    try:
        parsed, _signer = sigstore.verify_payload(keys, payload, row["signature"])
    except sigstore.SigstoreError as exc:
        assert exc.message and "\n" not in exc.message
        assert not row["ok"], row["case"]
        return
    wanted = row.get("wanted")
    ok = wanted is None or (
        parsed.manifest_digest == wanted["digest"]
        and parsed.docker_reference == wanted["reference"]
    )
    assert ok is row["ok"], row["case"]


def test_the_fixture_signatures_are_what_the_tables_say(tmp_path: Path) -> None:
    """The cosign fixture verifies with cosign.pub and not with cosign2.pub (guards the
    runner against a vacuous pass: every refusal above would pass with a broken verifier)."""
    sig = sigstore.from_blob((SIG / "dir-img-cosign-valid/signature-1").read_bytes())
    assert sig is not None
    b64 = sig.annotations[sigstore.SIGNATURE_ANNOTATION]
    key1 = sigstore.load_public_key((SIG / "cosign.pub").read_bytes())
    key2 = sigstore.load_public_key((SIG / "cosign2.pub").read_bytes())
    parsed, signer = sigstore.verify_payload([key2, key1], sig.payload, b64)
    assert signer == 1
    assert parsed.docker_reference == "192.168.64.2:5000/cosign-signed-single-sample"
    with pytest.raises(sigstore.SigstoreError, match="verification failed"):
        sigstore.verify_payload([key2], sig.payload, b64)
