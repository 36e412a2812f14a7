"""The admission verifier's verdict cache: one verification per image digest, and none
reused once policy.json, a registries.d file or a key changes (issue 17 item 6).

The verification itself (:func:`podsec.trust.verify.check_image`) is replaced by a counter,
and the registry by a dict of manifests: what is tested is when the verifier asks again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from podsec.errors import NotFoundError
from podsec.host.paths import Host
from podsec.registry import client as registry_client
from podsec.trust import verify, view
from podsec.u7s import admission, admission_cache

MANIFESTS = {
    "1.35": b'{"schemaVersion":2,"config":{"digest":"sha256:1"}}',
    "1.36": b'{"schemaVersion":2,"config":{"digest":"sha256:2"}}',
}
DIGEST = "sha256:" + hashlib.sha256(MANIFESTS["1.35"]).hexdigest()
OTHER = "sha256:" + hashlib.sha256(MANIFESTS["1.36"]).hexdigest()
IMAGE = f"registry.local/p10/busybox@{DIGEST}"


def policy(key: str = "/etc/pki/maker.pgp", extra: str | None = None) -> str:
    docker = {"registry.local": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": key}]}
    if extra:
        docker[extra] = [{"type": "reject"}]
    return json.dumps({"default": [{"type": "reject"}], "transports": {"docker": docker}})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc/containers/registries.d").mkdir(parents=True)
    (tmp_path / "etc/pki").mkdir()
    (tmp_path / "etc/containers/policy.json").write_text(policy())
    (tmp_path / "etc/containers/registries.d/default.yaml").write_text(
        "default-docker:\n  lookaside: http://sigstore.local:81/sigstore/\n"
    )
    (tmp_path / "etc/pki/maker.pgp").write_bytes(b"key one")
    (tmp_path / "etc/pki/other.pgp").write_bytes(b"key two")
    return tmp_path


class Counter:
    def __init__(self, accept: bool = True):
        self.calls: list[tuple[str, str]] = []
        self.accept = accept

    def __call__(
        self, host: Host, image: str, digest: str, pol: object, regd: object, **_kw: object
    ) -> object:
        self.calls.append((image, digest))
        return verify.Verdict(self.accept, "registry.local", (), (), None, "checked")


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> Counter:
    c = Counter()
    monkeypatch.setattr(verify, "check_image", c)

    def manifest(self: object, repo: str, ref: str) -> tuple[bytes, str, str]:
        for body in MANIFESTS.values():
            if ref == "sha256:" + hashlib.sha256(body).hexdigest():
                return body, ref, "application/vnd.oci.image.manifest.v1+json"
        if ref in MANIFESTS:
            return MANIFESTS[ref], "", "application/vnd.oci.image.manifest.v1+json"
        raise NotFoundError(ref)

    monkeypatch.setattr(registry_client.RegistryClient, "manifest", manifest)
    monkeypatch.setattr(view, "CACHE", view.Cache())  # each test reads its own tree
    return c


def test_a_tag_is_resolved_every_time(root: Path, counter: Counter) -> None:
    """The cache is keyed by digest: a tag that moves is verified again."""
    v = verifier(root)
    v("registry.local/p10/busybox:1.35")
    v("registry.local/p10/busybox:1.35")
    assert len(counter.calls) == 1
    MANIFESTS["1.35"], MANIFESTS["1.36"] = MANIFESTS["1.36"], MANIFESTS["1.35"]
    try:
        v("registry.local/p10/busybox:1.35")
    finally:
        MANIFESTS["1.35"], MANIFESTS["1.36"] = MANIFESTS["1.36"], MANIFESTS["1.35"]
    assert [d for _i, d in counter.calls] == [DIGEST, OTHER]


def verifier(root: Path) -> admission.Verifier:
    # racy=0: the test's files were all written a moment ago (see test_recent_change_is_not_cached)
    return admission.Verifier(Host(root), admission_cache.VerdictCache(ttl=300, racy=0))


def touch_later(path: Path, text: str | bytes) -> None:
    """Rewrite ``path`` in place with content of the same size (the hardest case to see)."""
    old = path.stat().st_mtime_ns
    data = text.encode() if isinstance(text, str) else text
    assert len(data) == path.stat().st_size
    while True:
        with path.open("r+b") as fh:
            fh.write(data)
        if path.stat().st_mtime_ns != old:
            return
        time.sleep(0.005)  # a coarse file clock: the same tick would look unchanged


def test_one_verification_per_digest(root: Path, counter: Counter) -> None:
    v = verifier(root)
    for _ in range(5):
        assert v(IMAGE) == (True, "checked")
    assert len(counter.calls) == 1
    v(f"registry.local/p10/busybox@{OTHER}")
    assert len(counter.calls) == 2


def test_no_cache_verifies_every_time(root: Path, counter: Counter) -> None:
    v = admission.Verifier(Host(root), None)
    v(IMAGE)
    v(IMAGE)
    assert len(counter.calls) == 2


def test_policy_change_invalidates(root: Path, counter: Counter) -> None:
    v = verifier(root)
    v(IMAGE)
    # atomic replacement (a new inode), as podsec and editors write it
    new = root / "etc/containers/policy.json.new"
    new.write_text(policy(extra="quay.io"))
    new.replace(root / "etc/containers/policy.json")
    v(IMAGE)
    assert len(counter.calls) == 2
    v(IMAGE)
    assert len(counter.calls) == 2


def test_policy_rewritten_in_place_invalidates(root: Path, counter: Counter) -> None:
    v = verifier(root)
    v(IMAGE)
    path = root / "etc/containers/policy.json"
    touch_later(path, path.read_text().replace("maker.pgp", "other.pgp"))
    v(IMAGE)
    assert len(counter.calls) == 2


def test_registries_d_change_invalidates(root: Path, counter: Counter) -> None:
    v = verifier(root)
    v(IMAGE)
    regd = root / "etc/containers/registries.d"
    touch_later(regd / "default.yaml", (regd / "default.yaml").read_text().replace("81", "82"))
    v(IMAGE)
    assert len(counter.calls) == 2
    (regd / "mirror.yaml").write_text("docker:\n  registry.local:\n    lookaside: file:///srv/s/\n")
    v(IMAGE)
    assert len(counter.calls) == 3
    (regd / "mirror.yaml").unlink()
    v(IMAGE)
    assert len(counter.calls) == 4


def test_key_change_invalidates(root: Path, counter: Counter) -> None:
    v = verifier(root)
    v(IMAGE)
    touch_later(root / "etc/pki/maker.pgp", b"key 1!!")
    v(IMAGE)
    assert len(counter.calls) == 2
    (root / "etc/pki/maker.pgp").unlink()
    v(IMAGE)
    assert len(counter.calls) == 3


def test_keys_are_those_the_new_policy_names(root: Path, counter: Counter) -> None:
    v = verifier(root)
    v(IMAGE)
    new = root / "etc/containers/policy.json.new"
    new.write_text(policy(key="/etc/pki/other.pgp"))
    new.replace(root / "etc/containers/policy.json")
    v(IMAGE)
    assert len(counter.calls) == 2
    touch_later(root / "etc/pki/maker.pgp", b"key 1!!")  # no longer named: no effect
    v(IMAGE)
    assert len(counter.calls) == 2
    touch_later(root / "etc/pki/other.pgp", b"key 2!!")
    v(IMAGE)
    assert len(counter.calls) == 3


def test_refusals_are_not_cached(root: Path, counter: Counter) -> None:
    counter.accept = False
    v = verifier(root)
    assert v(IMAGE) == (False, "checked")
    assert v(IMAGE) == (False, "checked")
    assert len(counter.calls) == 2


def test_broken_policy_refuses_and_caches_nothing(root: Path, counter: Counter) -> None:
    v = verifier(root)
    v(IMAGE)
    path = root / "etc/containers/policy.json"
    path.write_text("{not json")
    ok, reason = v(IMAGE)
    assert not ok
    assert "policy.json" in reason
    path.write_text(policy())
    assert v(IMAGE) == (True, "checked")
    assert len(counter.calls) == 2


def test_recent_change_is_not_cached(root: Path, counter: Counter) -> None:
    """Inputs changed within ``racy`` seconds: their times cannot tell the next change."""
    v = admission.Verifier(Host(root), admission_cache.VerdictCache(ttl=300, racy=3600))
    v(IMAGE)
    v(IMAGE)
    assert len(counter.calls) == 2
    old = time.time() - 7200
    for p in root.rglob("*"):
        os.utime(p, (old, old))
    # ctime cannot be set back: a cache that trusts the racy window only by mtime would cache
    v(IMAGE)
    assert len(counter.calls) == 3


def test_ttl_expires() -> None:
    now = [0.0]
    cache = admission_cache.VerdictCache(ttl=10, racy=0, clock=lambda: now[0])
    stamp: admission_cache.Stamp = (("/p", 1, 2, 3, 4),)
    ok = admission_cache.Verdict(True, "ok")
    assert cache.get(stamp, "ref", DIGEST) is None
    cache.put(stamp, "ref", DIGEST, ok)
    now[0] = 9.0
    assert cache.get(stamp, "ref", DIGEST) == ok
    now[0] = 20.0
    assert cache.get(stamp, "ref", DIGEST) is None


def test_a_verdict_reached_under_an_old_configuration_is_dropped() -> None:
    cache = admission_cache.VerdictCache(ttl=10, racy=0)
    old: admission_cache.Stamp = (("/p", 1, 2, 3, 4),)
    new: admission_cache.Stamp = (("/p", 1, 2, 3, 5),)
    assert cache.get(old, "ref", DIGEST) is None  # request 1 starts
    assert cache.get(new, "ref", DIGEST) is None  # the policy changed; request 2 starts
    cache.put(old, "ref", DIGEST, admission_cache.Verdict(True, "ok"))  # request 1 ends
    assert cache.get(new, "ref", DIGEST) is None


def test_size_bound() -> None:
    cache = admission_cache.VerdictCache(ttl=10, size=2, racy=0)
    s: admission_cache.Stamp = ()
    cache.get(s, "a", DIGEST)
    for ref in ("a", "b", "c"):
        cache.put(s, ref, DIGEST, admission_cache.Verdict(True, ref))
    assert len(cache) == 2
    assert cache.get(s, "a", DIGEST) is None
    assert cache.get(s, "c", DIGEST) is not None


def test_the_webhook_port_is_handed_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The helper that opens the port (inside the node's namespaces on a node; here, nsenter
    left out) passes the listening socket to the webhook process."""
    import socket

    from podsec.u7s import nsenter
    from podsec.u7s.layout import Layout

    layout = Layout("u7s-admin", os.getuid(), os.getgid(), tmp_path)
    monkeypatch.setattr(Layout, "runtime_dir", property(lambda self: tmp_path))
    monkeypatch.setattr(nsenter, "argv", lambda layout, command, **kw: list(command))
    listener = admission.listener_from_namespace(layout, 0, timeout=30)
    try:
        assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        assert listener.getsockname()[1] != 0
    finally:
        listener.close()
    assert not (tmp_path / admission.LISTEN_SOCKET).exists()
