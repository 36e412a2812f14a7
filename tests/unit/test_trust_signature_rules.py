"""Simple-signing payloads and containers/image identity rules (no gpg needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from podsec.trust import identity
from podsec.trust import signature as s
from podsec.trust.verify import intended_reference

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


def _ok(rule, image, signed):
    return identity.matches(rule, intended_reference("docker", image), signed)


def test_identity_rules():
    signed = "registry.local/p10/pause:3.2"
    assert _ok(None, "registry.local/p10/pause:3.2", signed)
    assert not _ok(None, "registry.local/p10/pause:latest", signed)  # other tag
    assert not _ok(None, "registry.local/other/pause:3.2", signed)  # other repo
    assert _ok(None, f"registry.local/p10/pause@{D}", signed)  # by digest: repo match
    assert _ok({"type": "matchRepository"}, "registry.local/p10/pause:9", signed)
    assert not _ok({"type": "matchExact"}, "registry.local/p10/pause:9", signed)
    exact = {"type": "exactReference", "dockerReference": "registry.local/p10/pause:3.2"}
    assert _ok(exact, "x.io/y:1", signed)
    repo = {"type": "exactRepository", "dockerRepository": "registry.local/p10/pause"}
    assert _ok(repo, "x.io/y:1", signed)
    remap = {
        "type": "remapIdentity",
        "prefix": "mirror.local/p10",
        "signedPrefix": "registry.local/p10",
    }
    assert _ok(remap, "mirror.local/p10/pause:3.2", signed)


def test_findings_of_issue_14_identity():
    # a digest image and a signature without tag (c/image fixture image.signature's identity)
    assert not _ok(None, f"registry.local/p10/pause@{D}", "registry.local/p10/pause")
    # repo:tag@digest with a signature for another tag of the same digest
    assert not _ok(None, f"registry.local/p10/pause:3.2@{D}", "registry.local/p10/pause:9")
    # remapIdentity: a rewritten name that is not canonical fails the match
    remap = {"type": "remapIdentity", "prefix": "mirror.local", "signedPrefix": "docker.io"}
    assert not _ok(remap, "mirror.local/busybox:1", "docker.io/library/busybox:1")
    # exactReference with a name-only signature
    exact = {"type": "exactReference", "dockerReference": "registry.local/p10/pause:3.2"}
    assert not _ok(exact, "x.io/y:1", "registry.local/p10/pause")


def test_a_signature_write_that_dies_midway_leaves_no_partial_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 of load-sign while it writes a signature (issue 15): readers never see a
    partial ``signature-N`` (containers/image would read it as the image's signature)."""
    real = os.fdopen

    class Dying:
        def __init__(self, fh: Any) -> None:
            self.fh = fh

        def __enter__(self) -> Dying:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

        def write(self, data: bytes) -> int:
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: Dying(real(fd, *a, **k)))
    with pytest.raises(OSError):
        s.store_signature(tmp_path, "p10/busybox", "sha256:" + "a" * 64, b"SIGNATURE")
    monkeypatch.setattr(os, "fdopen", real)
    folder = tmp_path / s.sig_dir_name("p10/busybox", "sha256:" + "a" * 64)
    assert sorted(p.name for p in folder.iterdir()) == []  # no signature-1, no temp file
    path = s.store_signature(tmp_path, "p10/busybox", "sha256:" + "a" * 64, b"SIGNATURE")
    assert path.name == "signature-1" and path.read_bytes() == b"SIGNATURE"
    assert oct(path.stat().st_mode & 0o777) == "0o644"
