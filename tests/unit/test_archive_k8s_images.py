"""Image naming of save-k8s: registry choice, platform path, flannel (reference §4.1, §10.3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from podsec.config import Settings
from podsec.errors import UsageError
from podsec.host.paths import Host
from podsec.registry import k8s_images


def test_registry_choice() -> None:
    assert k8s_images.registry_for(Settings()) == "registry.altlinux.org"
    assert k8s_images.registry_for(Settings(registry="")) == "registry.k8s.io"
    assert k8s_images.registry_for(Settings(registry="registry.local")) == "registry.local"
    assert k8s_images.repository("registry.local", "p10") == "registry.local/p10"
    assert k8s_images.repository("registry.k8s.io", "p10") == "registry.k8s.io"


def test_flannel_names(tmp_path: Path) -> None:
    host = Host(tmp_path)
    assert k8s_images.flannel_images(
        "registry.local", "c10f", "v0.25.1", "v1.4.0-flannel1", host
    ) == [
        "registry.local/c10f/flannel:v0.25.1",
        "registry.local/c10f/flannel-cni-plugin:v1.4.0-flannel1",
    ]
    assert k8s_images.flannel_images("registry.k8s.io", "p10", "v0.19.2", "v1.1.0", host)[0] == (
        "docker.io/flannel/flannel:v0.19.2"
    )
    with pytest.raises(UsageError, match="flannel tag"):
        k8s_images.flannel_images("registry.local", "p10", None, None, host)
    with pytest.raises(UsageError, match="flannel-cni-plugin tag"):
        k8s_images.flannel_images("registry.local", "p10", "v0.19.2", None, host)


def test_cni_tag_from_the_shipped_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "etc/podsec/u7s/manifests/kube-flannel/0/21/4/kube-flannel.yml"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(
        "spec:\n  initContainers:\n  - name: install-cni-plugin\n"
        "    image: docker.io/flannel/flannel-cni-plugin:v1.1.2\n"
    )
    host = Host(tmp_path)
    assert k8s_images.cni_tag_from_manifest(host, "v0.21.4") == "v1.1.2"
    assert k8s_images.cni_tag_from_manifest(host, "v0.22.0") is None
    names = k8s_images.flannel_images("registry.local", "p10", "v0.21.4", None, host)
    assert names[1] == "registry.local/p10/flannel-cni-plugin:v1.1.2"
