"""drift() on a node tree against a published policy and keys (no network: the published
files are given), and the check-drift states from its findings."""

from __future__ import annotations

from pathlib import Path

from podsec.host.paths import Host
from podsec.monitor import drift_check
from podsec.monitor.plugin import Range, Thresholds
from podsec.trust import policy as pol
from podsec.trust import setup, sync

K = setup.KEYS_DIR


def _policy(*keys: str) -> bytes:
    docker = {f"registry.local/{Path(k).stem}": (pol.sigstore_signed(k),) for k in keys}
    return pol.render(pol.Policy((pol.reject(),), {"docker": docker})).encode()


def _node(root: Path, policy: bytes, keys: dict[str, bytes]) -> Host:
    (root / "etc/containers").mkdir(parents=True)
    (root / K.lstrip("/")).mkdir(parents=True)
    (root / "etc/containers/policy.json").write_bytes(policy)
    for name, data in keys.items():
        (root / K.lstrip("/") / name).write_bytes(data)
    host = Host(root)
    (root / "etc/containers/registries.d").mkdir()
    text = setup.registries_d_text(host, pol.parse(policy.decode(), "p"))
    (root / setup.REGISTRIES_D_FILE.lstrip("/")).write_text(text)
    return host


def test_in_sync_then_each_kind_of_drift(tmp_path: Path) -> None:
    published = {"policy.json": _policy(f"{K}/a.pub"), "a.pub": b"A"}
    host = _node(tmp_path, published["policy.json"], {"a.pub": b"A"})
    assert sync.drift(host, published).in_sync
    # the registry node retired a.pub for b.pub: this node still trusts a.pub
    moved = {"policy.json": _policy(f"{K}/b.pub"), "b.pub": b"B"}
    d = sync.drift(host, moved)
    assert d.stale_keys == (f"{K}/a.pub",) and d.missing_keys == (f"{K}/b.pub",)
    assert d.policy_differs and d.registries_d_differs
    # same policy, a key file that differs
    (tmp_path / K.lstrip("/") / "a.pub").write_bytes(b"X")
    d = sync.drift(host, published)
    assert d.changed_keys == (f"{K}/a.pub",) and not d.stale_keys and not d.policy_differs


def test_states() -> None:
    t = Thresholds(warning=None, critical=Range(0, 100, text="100"))
    ok = drift_check.report(drift_check.Result(), t, 0)
    warn = drift_check.report(drift_check.Result(differs=("policy differs",)), t, 0)
    crit = drift_check.report(drift_check.Result(stale=("trusts x",)), t, 0)
    assert [int(r.state) for r in (ok, warn, crit)] == [0, 1, 2]
