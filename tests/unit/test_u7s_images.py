"""Image set: kubeadm's list, registry tag checks, U7S_SETAVAILABLEIMAGES, flannel."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest
import yaml
from tests.unit.u7s_fakes import FakeProbe, registry_with

from podsec import config
from podsec.errors import NotFoundError, PodsecError, UsageError
from podsec.registry import platform
from podsec.u7s import images

REPO = "registry.local/p10"
SRC = platform.ImageSource("registry.local", "p10", REPO, REPO, explicit=False)
S = config.Settings()
S_AVAIL = config.Settings(set_available_images=True)


def test_split_ref_with_port() -> None:
    assert images.split_ref("reg:5000/p10/etcd:3.4.13-0") == ("reg:5000/p10/etcd", "3.4.13-0")
    assert images.component("reg:5000/p10/etcd:3.4.13-0") == "etcd"


def test_all_images_present() -> None:
    probe = FakeProbe(registry=registry_with(REPO))
    s = images.resolve(probe, SRC, S, version="v1.20.2", role="init", cni="flannel")
    assert s.kube_version == "v1.20.2"
    assert s.images == (
        f"{REPO}/kube-apiserver:v1.20.2",
        f"{REPO}/kube-controller-manager:v1.20.2",
        f"{REPO}/kube-scheduler:v1.20.2",
        f"{REPO}/kube-proxy:v1.20.2",
        f"{REPO}/pause:3.2",
        f"{REPO}/etcd:3.4.13-0",
        f"{REPO}/coredns:1.7.0",
        f"{REPO}/flannel:v0.25.1",
        f"{REPO}/flannel-cni-plugin:v1.4.0-flannel1",
    )
    assert s.pause_image == f"{REPO}/pause:3.2" and s.cni == "flannel"
    assert not s.substitutions and not s.retag


def test_worker_needs_only_proxy_pause_and_flannel() -> None:
    probe = FakeProbe(registry=registry_with(REPO))
    s = images.resolve(probe, SRC, S, version="v1.20.2", role="join-worker", cni="flannel")
    assert [images.component(r) for r in s.images] == [
        "kube-proxy",
        "pause",
        "flannel",
        "flannel-cni-plugin",
    ]


def test_skipped_addons_need_no_images() -> None:
    reg = registry_with(REPO, flannel=None, cni=None)
    del reg[f"{REPO}/coredns"]
    probe = FakeProbe(registry=reg)
    s = images.resolve(
        probe,
        SRC,
        S,
        version="v1.20.2",
        role="init",
        cni="bridge",
        skip_phases=("addon/coredns", "addon/kube-proxy"),
    )
    assert {images.component(r) for r in s.images} == {
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "pause",
        "etcd",
    }


def test_missing_kube_tag_lists_available_versions() -> None:
    probe = FakeProbe(registry=registry_with(REPO, versions=("v1.20.2", "v1.20.10", "v1.20.9")))
    with pytest.raises(UsageError) as exc:
        images.resolve(probe, SRC, S, version="v1.20.1", role="init", cni="bridge")
    msg = str(exc.value)
    assert "kube-apiserver:v1.20.1 is not in the registry" in msg
    assert "v1.20.2, v1.20.9, v1.20.10" in msg
    assert exc.value.hint and "U7S_KUBEVERSION=v1.20.10" in exc.value.hint
    assert "U7S_SETAVAILABLEIMAGES=yes" in exc.value.hint


def test_set_available_images_takes_newest_patch_of_the_minor() -> None:
    probe = FakeProbe(
        registry=registry_with(
            REPO, versions=("v1.20.2", "v1.20.10", "v1.20.9"), flannel=None, cni=None
        )
    )
    s = images.resolve(probe, SRC, S_AVAIL, version="v1.20.1", role="init", cni="bridge")
    assert s.kube_version == "v1.20.10"  # not v1.20.9 (defect 26)
    assert f"{REPO}/kube-apiserver:v1.20.10" in s.images
    assert s.substitutions


def test_set_available_images_with_nothing_in_the_minor_still_fails() -> None:
    probe = FakeProbe(registry=registry_with(REPO, versions=("v1.26.3",), flannel=None, cni=None))
    probe.version = "v1.26.3"
    with pytest.raises(UsageError, match="not in the registry"):
        images.resolve(probe, SRC, S_AVAIL, version="v1.20.2", role="init", cni="bridge")


def test_companion_images_substituted_by_tag() -> None:
    reg = registry_with(REPO, flannel=None, cni=None)
    reg[f"{REPO}/etcd"] = ["3.4.3-0", "3.4.14-0"]
    reg[f"{REPO}/pause"] = ["3.1", "3.4.1"]
    probe = FakeProbe(registry=reg)
    with pytest.raises(UsageError) as exc:
        images.resolve(probe, SRC, S, version="v1.20.2", role="init", cni="bridge")
    assert "pause:3.2 is not in the registry; available tags: 3.1, 3.4.1" in str(exc.value)
    s = images.resolve(probe, SRC, S_AVAIL, version="v1.20.2", role="init", cni="bridge")
    assert s.etcd_tag == "3.4.14-0" and s.pause_image == f"{REPO}/pause:3.4.1"
    assert s.retag == ((f"{REPO}/pause:3.4.1", f"{REPO}/pause:3.2"),)


def test_wrong_registry_clear_messages() -> None:
    with pytest.raises(
        NotFoundError, match=r"no repository registry.local/p10/kube-apiserver"
    ) as exc:
        images.resolve(FakeProbe(registry={}), SRC, S, version="v1.20.2", role="init", cni="bridge")
    assert exc.value.hint and "U7S_REGISTRY" in exc.value.hint
    with pytest.raises(PodsecError, match=r"cannot read image tags from registry registry.local"):
        images.resolve(
            FakeProbe(unreachable=True), SRC, S, version="v1.20.2", role="init", cni="bridge"
        )


def test_no_registry_check_when_offline_planning() -> None:
    probe = FakeProbe(unreachable=True)
    s = images.resolve(probe, SRC, S, version="v1.20.2", role="init", cni="flannel", check=False)
    assert s.cni == "flannel" and s.flannel_tag == "v0.26.7" and not probe.asked


def test_flannel_missing_falls_back_to_bridge_with_a_note() -> None:
    probe = FakeProbe(registry=registry_with(REPO, flannel=None, cni=None))
    s = images.resolve(probe, SRC, S, version="v1.20.2", role="init", cni="flannel")
    assert s.cni == "bridge" and s.flannel_image is None
    assert s.notes and "bridge" in s.notes[0]


def test_flannel_newest_tag_with_manifest_data() -> None:
    reg = registry_with(REPO, flannel=None, cni="v1.4.0-flannel1")
    reg[f"{REPO}/flannel"] = ["v0.25.1", "v0.25.7", "v0.99.0", "latest"]
    s = images.resolve(
        FakeProbe(registry=reg), SRC, S, version="v1.20.2", role="init", cni="flannel"
    )
    assert s.flannel_image == f"{REPO}/flannel:v0.25.7"  # v0.99.0 has no known manifest
    assert s.flannel_cni_image == f"{REPO}/flannel-cni-plugin:v1.4.0-flannel1"


def test_pinned_flannel_tags_are_honoured() -> None:
    reg = registry_with(REPO, flannel="v0.22.3", cni="v1.2.0")
    reg[f"{REPO}/flannel-cni-plugin"].append("v1.9.9")
    st = config.Settings(flannel_tag="v0.22.3", flannel_cni_plugin_tag="v1.9.9")
    s = images.resolve(
        FakeProbe(registry=reg), SRC, st, version="v1.20.2", role="init", cni="flannel"
    )
    # the original ignored U7S_FLANNELCNIPLUGIN_TAG's value (defect 19)
    assert s.flannel_cni_image == f"{REPO}/flannel-cni-plugin:v1.9.9"
    bad = config.Settings(flannel_tag="v0.21.5")
    with pytest.raises(NotFoundError, match=r"flannel:v0.21.5 is not in the registry"):
        images.resolve(
            FakeProbe(registry=reg), SRC, bad, version="v1.20.2", role="init", cni="flannel"
        )


def test_upstream_flannel_comes_from_docker_io() -> None:
    src = platform.ImageSource(
        "registry.k8s.io", None, "registry.k8s.io", "docker.io/flannel", explicit=True
    )
    reg = registry_with("registry.k8s.io", flannel_repo="docker.io/flannel")
    probe = FakeProbe(registry=reg)
    s = images.resolve(probe, src, S, version="v1.20.2", role="init", cni="flannel")
    assert s.flannel_image == "docker.io/flannel/flannel:v0.25.1"
    assert "docker.io/flannel/flannel" in probe.asked  # not registry.k8s.io (defect 20)


def test_flannel_manifest_renders_images_and_pod_network() -> None:
    text = images.flannel_manifest(
        "registry.local/p10/flannel:v0.26.7",
        "registry.local/p10/flannel-cni-plugin:v1.7.1-flannel1",
        IPv4Network("10.250.0.0/16"),
    )
    docs = list(yaml.safe_load_all(text))
    assert [d["kind"] for d in docs] == [
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "ServiceAccount",
        "ConfigMap",
        "DaemonSet",
    ]
    spec = docs[-1]["spec"]["template"]["spec"]
    assert (
        spec["initContainers"][0]["image"]
        == "registry.local/p10/flannel-cni-plugin:v1.7.1-flannel1"
    )
    assert spec["containers"][0]["image"] == "registry.local/p10/flannel:v0.26.7"
    import json

    net = json.loads(docs[4]["data"]["net-conf.json"])
    assert net["Network"] == "10.250.0.0/16" and net["EnableNFTables"] is False
    old = images.flannel_manifest(
        "r/p/flannel:v0.25.1",
        "r/p/flannel-cni-plugin:v1.4.0-flannel1",
        IPv4Network("10.244.0.0/16"),
    )
    net = json.loads(list(yaml.safe_load_all(old))[4]["data"]["net-conf.json"])
    assert "EnableNFTables" not in net and net["Backend"]["Type"] == "vxlan"


def test_coredns_is_needed_only_where_the_addon_is_deployed() -> None:
    refs = ["r/p10/kube-apiserver:v1.20.2", "r/p10/pause:3.2", "r/p10/coredns:1.7.0"]
    assert "r/p10/coredns:1.7.0" in images._needed(refs, "init", ())
    assert "r/p10/coredns:1.7.0" not in images._needed(refs, "init", ("addon/coredns",))
    # `kubeadm join --control-plane` has no addon phase: a missing CoreDNS must not block it
    assert images._needed(refs, "join-control-plane", ()) == refs[:2]
    assert images._needed(refs, "join-worker", ()) == ["r/p10/pause:3.2"]
