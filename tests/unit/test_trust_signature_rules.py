"""Simple-signing payloads and containers/image identity rules (no gpg needed)."""

from __future__ import annotations

import json

from podsec.trust import signature as s

D = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def test_payload_shape():
    doc = json.loads(s.make_payload("registry.local/p10/pause:3.2", D, timestamp=5))
    assert doc["critical"] == {
        "identity": {"docker-reference": "registry.local/p10/pause:3.2"},
        "image": {"docker-manifest-digest": D},
        "type": "atomic container signature",
    }
    assert doc["optional"]["timestamp"] == 5
    assert s._parse_payload(s.make_payload("a.b/c:1", D), "F").docker_reference == "a.b/c:1"


def test_identity_rules():
    v = s.VerifiedSignature("F", "registry.local/p10/pause:3.2", D)
    assert s.matches(v, "registry.local/p10/pause:3.2", D)
    assert not s.matches(v, "registry.local/p10/pause:3.2", D2)  # digest
    assert not s.matches(v, "registry.local/p10/pause:latest", D)  # other tag
    assert not s.matches(v, "registry.local/other/pause:3.2", D)  # other repo
    assert s.matches(v, f"registry.local/p10/pause@{D}", D)  # by digest: repo match
    assert s.matches(v, "registry.local/p10/pause:9", D, {"type": "matchRepository"})
    assert not s.matches(v, "registry.local/p10/pause:9", D, {"type": "matchExact"})
    assert s.matches(
        v,
        "x.io/y:1",
        D,
        {"type": "exactReference", "dockerReference": "registry.local/p10/pause:3.2"},
    )
    assert s.matches(
        v,
        "x.io/y:1",
        D,
        {"type": "exactRepository", "dockerRepository": "registry.local/p10/pause"},
    )
    remap = {
        "type": "remapIdentity",
        "prefix": "mirror.local/p10",
        "signedPrefix": "registry.local/p10",
    }
    assert s.matches(v, "mirror.local/p10/pause:3.2", D, remap)
    assert "is not accepted" in (s.mismatch(v, "registry.local/x/pause:3.2", D) or "")
