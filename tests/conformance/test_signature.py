"""Simple signatures: payload parsing, GPG verification, claims, signedBy evaluation and the
manifest digest — containers/image's tables and fixtures, row by row."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from podsec.errors import PodsecError
from podsec.host.paths import Host
from podsec.trust import manifest, policy, signature, verify
from tests.conformance.tables import FIXTURES, rows

SIG = FIXTURES / "containers-image" / "signature"
MAN = FIXTURES / "containers-image" / "manifest"


def blob(name: str, base: Path = SIG) -> bytes:
    if name == "(empty)":
        return b""
    if name == "(invalid signature)":
        return b"invalid signature"
    return (base / name).read_bytes()


@pytest.mark.parametrize("row", rows("payload_parse"))
def test_payload_parse(row: dict[str, Any]) -> None:
    try:
        signature.parse_payload(row["json"].encode())
    except signature.PayloadError:
        ok = False
    else:
        ok = True
    assert ok is row["valid"], row["json"]


@pytest.mark.parametrize("row", rows("signature_verify"))
def test_signature_verify(row: dict[str, Any]) -> None:
    keys = [SIG / k for k in row["keys"]]
    try:
        content, fingerprint = signature.gpg_verify(blob(row["signature"]), keys)
    except signature.SignatureError:
        assert not row["ok"]
        return
    assert row["ok"]
    assert content.decode() == row["content"]
    assert fingerprint == row["fingerprint"]


@pytest.mark.parametrize("row", rows("signature_claims"))
def test_signature_claims(row: dict[str, Any]) -> None:
    claims = signature.read_claims(blob(row["signature"]))
    want = row["expected"]
    if "key" in want:
        assert claims.key_id is not None and claims.key_id.endswith(want["key"])
    if not row["ok"]:
        assert claims.docker_reference is None  # containers/image: an error, no claims
        return
    assert claims.docker_reference == want["docker_reference"]
    assert claims.manifest_digest == want["manifest_digest"]
    assert claims.creator == want["creator"]
    assert claims.timestamp == want["timestamp"]


def _requirement(req: dict[str, Any]) -> dict[str, Any]:
    out = dict(req)
    for key in ("keyPath",):
        if key in out and not out[key].startswith("/"):
            out[key] = str(SIG / out[key])
    if "keyPaths" in out:
        out["keyPaths"] = [p if p.startswith("/") else str(SIG / p) for p in out["keyPaths"]]
    if isinstance(out.get("keyData"), str) and out["keyData"].startswith("@"):
        out["keyData"] = base64.b64encode((SIG / out["keyData"][1:]).read_bytes()).decode()
    return out


def _signatures(row: dict[str, Any]) -> list[bytes]:
    if row["signatures"] == ["(all in the image dir)"]:
        found, n = [], 1
        while (SIG / row["image"] / f"signature-{n}").exists():
            found.append((SIG / row["image"] / f"signature-{n}").read_bytes())
            n += 1
        return found
    return [blob(s) for s in row["signatures"]]


@pytest.mark.parametrize("row", rows("signedby_eval"))
def test_signedby_eval(row: dict[str, Any]) -> None:
    text = json.dumps({"default": [_requirement(row["requirement"])]})
    try:
        p = policy.parse(text, "policy.json")
        data = (SIG / row["image"] / "manifest.json").read_bytes()
        digest = manifest.digest(data)
    except (PodsecError, OSError):
        accepted = False  # refused before any signature is looked at
    else:
        verdict = verify.evaluate(Host(), p, row["reference"], digest, _signatures(row))
        accepted = verdict.accepted
        assert verdict.reason and "\n" not in verdict.reason
    assert accepted is row["accepted"]


@pytest.mark.parametrize("row", rows("manifest_digest"))
def test_manifest_digest(row: dict[str, Any]) -> None:
    data = blob(row["manifest"], MAN)
    if row["function"] == "TestDigest":
        if row["digest"] is None:
            with pytest.raises(PodsecError):
                manifest.digest(data)
        else:
            assert manifest.digest(data) == row["digest"]
        return
    expected = row["expected"]
    if expected == "(sha256 of the file)":
        import hashlib

        expected = "sha256:" + hashlib.sha256(data).hexdigest()
    assert manifest.matches_digest(data, expected) is row["matches"]


@pytest.mark.parametrize("row", rows("scope_lookup"))
def test_scope_lookup(row: dict[str, Any]) -> None:
    p = policy.parse(json.dumps(row["policy"]), "policy.json")
    for case in row["cases"]:
        scope, reqs = policy.scope_for(p, case["transport"], case["input"])
        if case["matched_transport"] == "":
            assert scope == policy.DEFAULT_SCOPE, case
        else:
            assert scope == case["matched"], case
            assert reqs[0].key_path == f"/{case['matched_transport']}/{case['matched']}"


@pytest.mark.parametrize("row", rows("transport_namespaces"))
def test_transport_namespaces(row: dict[str, Any]) -> None:
    identity, namespaces = policy.path_identity(row["transport"], row["ref"])
    assert (identity, namespaces) == (row["identity"], row["namespaces"])
