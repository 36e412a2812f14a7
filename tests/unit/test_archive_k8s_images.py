"""Image naming of save-k8s: registry choice, platform path, flannel (reference §4.1, §10.3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from podsec.config import Settings
from podsec.errors import NotFoundError, UsageError
from podsec.host.paths import Host
from podsec.registry import k8s_images, platform


def test_registry_choice(tmp_path: Path) -> None:
    host = Host(tmp_path)

    def repo(settings: Settings) -> str:
        return platform.choose(
            settings, host, platform="p10", default_registry=platform.ALT_REGISTRY
        ).repository

    assert repo(Settings()) == "registry.altlinux.org/k8s-p10"  # the seed's name
    assert repo(Settings(registry="")) == "registry.k8s.io"
    assert repo(Settings(registry="registry.local")) == "registry.local/p10"


def test_flannel_names(tmp_path: Path) -> None:
    host = Host(tmp_path)
    local = platform.choose(Settings(registry="registry.local"), host, platform="c10f")
    upstream = platform.choose(Settings(registry=""), host, platform="p10")
    p10 = platform.choose(Settings(registry="registry.local"), host, platform="p10")
    assert k8s_images.flannel_images(
        local.flannel_repository, "v0.25.1", "v1.4.0-flannel1", host
    ) == [
        "registry.local/c10f/flannel:v0.25.1",
        "registry.local/c10f/flannel-cni-plugin:v1.4.0-flannel1",
    ]
    assert k8s_images.flannel_images(upstream.flannel_repository, "v0.19.2", "v1.1.0", host)[0] == (
        "docker.io/flannel/flannel:v0.19.2"
    )
    with pytest.raises(UsageError, match="flannel tag"):
        k8s_images.flannel_images(p10.flannel_repository, None, None, host)
    with pytest.raises(UsageError, match="flannel-cni-plugin tag"):
        k8s_images.flannel_images(p10.flannel_repository, "v0.19.2", None, host)


def test_cni_tag_from_the_shipped_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "etc/podsec/u7s/manifests/kube-flannel/0/21/4/kube-flannel.yml"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(
        "spec:\n  initContainers:\n  - name: install-cni-plugin\n"
        "    image: docker.io/flannel/flannel-cni-plugin:v1.1.2\n"
    )
    host = Host(tmp_path)
    assert k8s_images.cni_tag_from_manifest(host, "v0.21.4") == "v1.1.2"
    # no manifest installed for v0.22.0: podsec's shipped versions.json knows it (issue 16:
    # `U7S_FLANNEL_TAG=v0.25.1 podsec images save-k8s …` failed "tag not known")
    assert k8s_images.cni_tag_from_manifest(host, "v0.22.0") == "v1.1.2"
    assert k8s_images.cni_tag_from_manifest(host, "v0.25.1") == "v1.4.0-flannel1"
    assert k8s_images.cni_tag_from_manifest(host, "v0.99.0") is None
    p10 = platform.choose(Settings(registry="registry.local"), host, platform="p10")
    names = k8s_images.flannel_images(p10.flannel_repository, "v0.21.4", None, host)
    assert names[1] == "registry.local/p10/flannel-cni-plugin:v1.1.2"


def test_set_available_picks_the_release_not_its_candidate() -> None:
    """U7S_SETAVAILABLEIMAGES: the newest of v1.30.0 and v1.30.0-rc.1 is the release (the
    former digits-only key ranked the candidate above it)."""
    registry = {
        "registry.local/p10/kube-apiserver": ["v1.30.0-rc.1", "v1.30.0", "v1.29.9", "latest"],
        "registry.local/p10/etcd": ["3.5.12-0", "3.5.10-0", "latest"],
    }
    sources = k8s_images.resolve_tags(
        ("registry.local/p10/kube-apiserver:v1.30.2", "registry.local/p10/etcd:3.5.15-0"),
        set_available=True,
        list_tags=registry.get,
    )
    assert [(s.image, s.save_as) for s in sources] == [
        ("registry.local/p10/kube-apiserver:v1.30.0", "registry.local/p10/kube-apiserver:v1.30.2"),
        ("registry.local/p10/etcd:3.5.12-0", "registry.local/p10/etcd:3.5.15-0"),
    ]
    with pytest.raises(
        NotFoundError, match=r"available tags: v1\.29\.9, v1\.30\.0-rc\.1, v1\.30\.0"
    ):
        k8s_images.resolve_tags(
            ("registry.local/p10/kube-apiserver:v1.30.2",),
            set_available=False,
            list_tags=registry.get,
        )
