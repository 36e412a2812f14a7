"""One version order for image tags (registry/versions.py), used by u7s and save-k8s."""

from __future__ import annotations

from podsec.registry import versions


def test_version_ordering_is_numeric() -> None:
    tags = ["v1.30.9", "v1.30.10", "v1.30.2", "latest", "v1.30.11-rc.0", "v1.9.0", "v1.26.3"]
    assert versions.sort_versions(tags) == [
        "v1.9.0",
        "v1.26.3",
        "v1.30.2",
        "v1.30.9",
        "v1.30.10",
        "v1.30.11-rc.0",
    ]
    assert versions.newest(tags, "v1.30") == "v1.30.10"  # releases beat release candidates
    assert versions.newest(tags) == "v1.30.10"
    assert versions.newest(["3.4.13-0", "3.4.3-0", "3.5.6-0"]) == "3.5.6-0"
    assert versions.newest(["v1.4.0-flannel1", "v1.1.2", "v1.7.1-flannel1"]) == "v1.7.1-flannel1"
    assert versions.newest(["latest"]) is None
    assert versions.version_key("v1.30.0-rc.1") < versions.version_key("v1.30.0")  # type: ignore[operator]
