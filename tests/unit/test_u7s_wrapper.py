"""build_plan: command line + environment + host facts → NodePlan; env file; refusals."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
import yaml
from tests.unit.u7s_fakes import FakeProbe, registry_with

from podsec import config
from podsec.errors import PodsecError, UsageError
from podsec.host.paths import Host
from podsec.u7s import flags, render, wrapper
from podsec.u7s.plan import NodePlan

TOKEN = "abcdef.0123456789abcdef"
HASH = "sha256:" + "ab" * 32
KEY = "0f" * 32
REPO = "registry.local/k8s-p10"


@pytest.fixture
def host(tmp_path: Path) -> Host:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "hosts").write_text(
        "127.0.0.1 localhost\n192.168.122.80 registry.local sigstore.local\n"
    )
    (etc / "os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    return Host(tmp_path)


def plan(host: Host, argv: list[str], probe: FakeProbe | None = None, **env: str) -> NodePlan:
    settings = config.load(host.root, env)
    probe = probe or FakeProbe(registry=registry_with(REPO))
    return wrapper.build_plan(settings, host, flags.parse(argv), probe)


def kinds(p: NodePlan) -> dict[str, dict]:  # type: ignore[type-arg]
    return {d["kind"]: d for d in yaml.safe_load_all(p.kubeadm_config)}


def test_plain_init_on_debian(host: Host) -> None:
    p = plan(host, ["init"])
    assert p.role == "init" and p.kube_version == "v1.20.2"
    assert p.kubeadm_api == "kubeadm.k8s.io/v1beta2"
    assert p.advertise_address == IPv4Address("192.168.122.57")
    assert p.control_plane_endpoint == "192.168.122.57:6443"  # port always present (defect 23)
    assert p.image_repository == "registry.local/k8s-p10"
    assert p.pause_image == "registry.local/k8s-p10/pause:3.2"
    assert p.pod_cidr == IPv4Network("10.244.0.0/16")
    assert p.service_cidr == IPv4Network("10.96.0.0/12")
    assert (p.cluster_ip, p.cluster_dns) == (IPv4Address("10.96.0.1"), IPv4Address("10.96.0.10"))
    assert p.slirp_cidr == IPv4Network("10.0.2.0/24")
    assert p.cri == "containerd" and p.cni == "flannel"
    assert p.node_name == "node1" and p.uid == 990
    assert p.kubeadm_args == ("--upload-certs",)
    assert {x.spec() for x in p.ports} >= {"0.0.0.0:6443:6443/tcp", "0.0.0.0:8472:8472/udp"}
    assert "registry.local/k8s-p10/flannel:v0.25.1" in p.images
    # NodePlan survives its JSON form
    assert NodePlan.from_json(p.to_json()) == p


def test_every_user_flag_is_honoured(host: Host) -> None:
    p = plan(
        host,
        [
            "-v",
            "4",
            "init",
            "--apiserver-advertise-address",
            "192.168.122.57",
            "--apiserver-bind-port=7443",
            "--control-plane-endpoint",
            "192.168.122.90",
            "--pod-network-cidr",
            "10.50.0.0/16",
            "--service-cidr",
            "10.60.0.0/20",
            "--service-dns-domain",
            "corp.internal",
            "--token",
            TOKEN,
            "--token-ttl",
            "1h",
            "--certificate-key",
            KEY,
            "--node-name",
            "Master-1".lower(),
            "--skip-phases",
            "addon/coredns",
            "--ignore-preflight-errors=all",
            "--dry-run",
            "--kubernetes-version",
            "1.20.2",
            "--feature-gates",
            "PublicKeysECDSA=true",
            "--apiserver-cert-extra-sans",
            "lb.example",
            "--patches",
            "/etc/kubeadm-patches",
            "--cri-socket",
            "unix:///run/crio/crio.sock",
        ],
    )
    assert p.bind_port == 7443
    assert p.control_plane_endpoint == "192.168.122.90:7443"
    assert p.pod_cidr == IPv4Network("10.50.0.0/16") and p.service_cidr == IPv4Network(
        "10.60.0.0/20"
    )
    assert p.cluster_dns == IPv4Address("10.60.0.10")
    assert p.node_name == "master-1" and p.cri == "crio"
    assert p.skip_phases == ("addon/coredns",)
    assert "registry.local/k8s-p10/coredns:1.7.0" not in p.images
    # kubeadm ≤ 1.21 spells it --experimental-patches; no --upload-certs on a dry run
    assert p.kubeadm_args == (
        "--v=4",
        "--ignore-preflight-errors=all",
        "--dry-run",
        "--experimental-patches=/etc/kubeadm-patches",
    )
    d = kinds(p)
    init, cluster = d["InitConfiguration"], d["ClusterConfiguration"]
    assert init["bootstrapTokens"] == [{"token": TOKEN, "ttl": "1h"}]
    assert init["certificateKey"] == KEY
    assert init["nodeRegistration"]["criSocket"] == "/run/crio/crio.sock"
    assert init["localAPIEndpoint"]["bindPort"] == 7443
    assert cluster["networking"]["dnsDomain"] == "corp.internal"
    assert cluster["featureGates"] == {"PublicKeysECDSA": True}
    assert "lb.example" in cluster["apiServer"]["certSANs"]
    argv = render.kubeadm_argv(p, "/cfg.yaml")
    assert argv[:2] == ["kubeadm", "init"] and argv[-1] == "--skip-phases=addon/coredns"
    assert "--config" in argv


def test_ha_endpoint_equal_to_advertise_is_refused(host: Host) -> None:
    with pytest.raises(UsageError, match="must differ from --apiserver-advertise-address"):
        plan(
            host,
            [
                "init",
                "--apiserver-advertise-address",
                "192.168.122.57",
                "--control-plane-endpoint",
                "192.168.122.57:8443",
            ],
        )


def test_advertise_address_must_be_on_this_host(host: Host) -> None:
    with pytest.raises(UsageError, match="not an address of this host"):
        plan(host, ["init", "--apiserver-advertise-address", "10.9.9.9"])


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["init", "--pod-network-cidr", "192.168.0.0/16"], "overlaps network 192.168.122.0/24"),
        (["init", "--pod-network-cidr", "10.96.0.0/16"], "overlaps service network"),
        (["init", "--service-cidr", "192.168.122.0/28"], "service network"),
        (["init", "--pod-network-cidr", "10.244.0.0/99"], "--pod-network-cidr"),
    ],
)
def test_bad_networks(host: Host, argv: list[str], words: str) -> None:
    with pytest.raises(UsageError, match=words):
        plan(host, argv)


def test_missing_tag_with_and_without_set_available_images(host: Host) -> None:
    probe = FakeProbe(registry=registry_with(REPO, versions=("v1.20.0",)))
    with pytest.raises(
        UsageError,
        match=r"kube-apiserver:v1.20.2 is not in the registry; available versions: v1.20.0",
    ):
        plan(host, ["init"], probe)
    p = plan(host, ["init"], probe, U7S_SETAVAILABLEIMAGES="yes")
    assert p.kube_version == "v1.20.0"
    assert kinds(p)["ClusterConfiguration"]["kubernetesVersion"] == "v1.20.0"


def test_wrong_registry(host: Host) -> None:
    with pytest.raises(PodsecError, match=r"no repository myreg.example/p10/kube-apiserver"):
        plan(host, ["init"], None, U7S_REGISTRY="myreg.example")
    with pytest.raises(PodsecError, match="cannot read image tags"):
        plan(host, ["init"], FakeProbe(unreachable=True))


def test_upstream_registry_when_set_but_empty(host: Host) -> None:
    probe = FakeProbe(registry=registry_with("registry.k8s.io", flannel_repo="docker.io/flannel"))
    p = plan(host, ["init"], probe, U7S_REGISTRY="")
    assert p.image_repository == "registry.k8s.io"
    assert "docker.io/flannel/flannel:v0.25.1" in p.images
    assert p.env["U7S_PLATFORM"] == ""


def test_flannel_unavailable_gives_bridge_and_env_override(host: Host) -> None:
    probe = FakeProbe(registry=registry_with(REPO, flannel=None, cni=None))
    p = plan(host, ["init"], probe)
    assert p.cni == "bridge" and not any("8472" in x.spec() for x in p.ports)
    p = plan(host, ["init"], None, U7S_CNI_PLUGIN="bridge")
    assert p.cni == "bridge" and not any("flannel" in i for i in p.images)
    with pytest.raises(UsageError):
        render.flannel_manifest(p)


def test_crio_detected_on_path(host: Host) -> None:
    p = plan(host, ["init"], FakeProbe(registry=registry_with(REPO), programs={"crio"}))
    assert p.cri == "crio"
    assert kinds(p)["InitConfiguration"]["nodeRegistration"]["criSocket"] == "/run/crio/crio.sock"


def test_join_worker(host: Host) -> None:
    p = plan(
        host,
        ["join", "192.168.122.80:6443", "--token", TOKEN, "--discovery-token-ca-cert-hash", HASH],
    )
    assert p.role == "join-worker"
    assert p.control_plane_endpoint == "192.168.122.80:6443"
    assert [x.spec() for x in p.ports] == [
        "0.0.0.0:10250:10250/tcp",
        "0.0.0.0:10256:10256/tcp",
        "0.0.0.0:8472:8472/udp",
    ]
    assert p.kubeadm_args == ()
    j = kinds(p)["JoinConfiguration"]
    assert j["discovery"]["bootstrapToken"]["caCertHashes"] == [HASH]
    assert p.env["U7S_CONTROLPLANE"] == "" and p.env["U7S_TOKEN"] == TOKEN
    assert render.kubeadm_argv(p, "/c.yaml")[:2] == ["kubeadm", "join"]


def test_join_control_plane(host: Host) -> None:
    p = plan(
        host,
        [
            "join",
            "192.168.122.90:8443",
            "--token",
            TOKEN,
            "--discovery-token-ca-cert-hash",
            HASH,
            "--control-plane",
            "--certificate-key",
            KEY,
        ],
    )
    assert p.role == "join-control-plane"
    assert kinds(p)["JoinConfiguration"]["controlPlane"]["certificateKey"] == KEY
    assert p.env["U7S_CONTROLPLANE"] == "master"
    assert p.env["U7S_CERIFICATEKEY"] == KEY == p.env["U7S_CERTIFICATEKEY"]


def test_join_itself_refused(host: Host) -> None:
    with pytest.raises(UsageError, match="own address"):
        plan(
            host,
            [
                "join",
                "192.168.122.57:6443",
                "--token",
                TOKEN,
                "--discovery-token-ca-cert-hash",
                HASH,
            ],
        )


def test_user_config_file_is_honoured(host: Host, tmp_path: Path) -> None:
    cfg = tmp_path / "kubeadm.yaml"
    cfg.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\n"
        "networking:\n  podSubnet: 10.30.0.0/16\n"
        "apiServer:\n  extraArgs:\n    profiling: 'false'\n"
    )
    p = plan(host, ["init", "--config", str(cfg)])
    assert p.pod_cidr == IPv4Network("10.30.0.0/16")  # planned like the flag
    cluster = kinds(p)["ClusterConfiguration"]
    assert cluster["apiServer"]["extraArgs"]["profiling"] == "false"
    assert cluster["networking"]["podSubnet"] == "10.30.0.0/16"
    # a flag beats the file
    p = plan(host, ["init", "--config", str(cfg), "--pod-network-cidr", "10.31.0.0/16"])
    assert p.pod_cidr == IPv4Network("10.31.0.0/16")
    with pytest.raises(UsageError, match="cannot read"):
        plan(host, ["init", "--config", str(tmp_path / "missing.yaml")])


def test_kubeadm_newer_version_than_kubeadm_refused(host: Host) -> None:
    with pytest.raises(UsageError, match=r"cannot deploy Kubernetes v1.21.0"):
        plan(host, ["init"], None, U7S_KUBEVERSION="v1.21.0")


def test_v1beta3_with_newer_kubeadm(host: Host) -> None:
    probe = FakeProbe(version="v1.26.3", registry=registry_with(REPO, versions=("v1.26.3",)))
    p = plan(host, ["init", "--patches", "/p"], probe)
    assert p.kubeadm_api == "kubeadm.k8s.io/v1beta3"
    assert "--patches=/p" in p.kubeadm_args
    assert kinds(p)["KubeletConfiguration"]["featureGates"]["KubeletInUserNamespace"] is True


def test_env_file_has_the_originals_variables(host: Host) -> None:
    p = plan(host, ["init", "--token", TOKEN])
    text = render.render_env_file(p)
    assert "PATH=/usr/libexec/podsec/u7s/bin:/sbin/:/usr/sbin/:/bin:/usr/bin/" in text.splitlines()
    env = render.parse_env_file(text)
    assert env == {"PATH": env["PATH"], **p.env}
    expected = {
        "U7S_KUBEVERSION": "v1.20.2",
        "U7S_PLATFORM": "p10",
        "U7S_REGISTRY": "registry.local",
        "U7S_REGISTRY_PLATFORM": "registry.local/k8s-p10",
        "U7S_ALTREGISTRY": "registry.altlinux.org",
        "U7S_PAUSE_IMAGE": "k8s-p10/pause:3.2",
        "U7S__KUBEPROXY_IMAGE": "k8s-p10/kube-proxy:v1.20.2",
        "U7S_FLANNEL_IMAGE": "k8s-p10/flannel:v0.25.1",
        "U7S_FLANNEL_REGISTRY": "registry.local/k8s-p10",
        "U7S_CONTROLPLANE": "initMaster",
        "U7S_APISERVERENDPOINT": "192.168.122.57:6443",
        "U7S_EXTIP": "192.168.122.57",
        "U7S_EXTDEV": "eth0",
        "U7S_UID": "990",
        "U7S_SERVICECIDR": "10.96.0.0/12",
        "U7S_SERVICECIDRIP": "10.96.0.0",
        "U7S_SERVICEMASK": "12",
        "U7S_PODNETWORKCIDR": "10.244.0.0/16",
        "U7S_PODNETWORKMASK": "16",
        "U7S_KUBERNETESCLUSTERIP": "10.96.0.1",
        "U7S_KUBERNETESCLUSTERDNS": "10.96.0.10",
        "U7S_ROOTLESSKIT_FLAGS": "--cidr=10.0.2.0/24",
        "U7S_SLIRP4IP": "10.0.2.100",
        "U7S_KUBEADMFLAGS": "--upload-certs",
        "U7S_TOKEN": TOKEN,
        "U7S_CNI_PLUGIN": "flannel",
        "_CONTAINERS_ROOTLESS_UID": "990",
        "_CONTAINERS_USERNS_CONFIGURED": "1",
    }
    assert {k: env[k] for k in expected} == expected
    assert env["U7S_IMAGES"].split()[0] == "k8s-p10/kube-apiserver:v1.20.2"


def test_env_quoting_round_trips() -> None:
    text = render._quote('a b "c" $x `y` \\z')
    assert render.parse_env_file(f"K={text}\n") == {"K": 'a b "c" $x `y` \\z'}


def test_flannel_manifest_and_retag(host: Host) -> None:
    p = plan(host, ["init", "--pod-network-cidr", "10.77.0.0/16"])
    manifest = render.flannel_manifest(p)
    assert (
        "registry.local/k8s-p10/flannel:v0.25.1" in manifest
        and '"Network": "10.77.0.0/16"' in manifest
    )
    reg = registry_with(REPO)
    reg[f"{REPO}/pause"] = ["3.4.1"]
    p = plan(host, ["init"], FakeProbe(registry=reg), U7S_SETAVAILABLEIMAGES="yes")
    assert render.retag_pairs(p) == [(f"{REPO}/pause:3.4.1", f"{REPO}/pause:3.2")]
    assert p.pause_image == f"{REPO}/pause:3.4.1"


def test_only_init_and_join_are_planned(host: Host) -> None:
    with pytest.raises(UsageError):
        wrapper.build_plan(config.Settings(), host, flags.parse(["reset"]), FakeProbe())


def test_oci_layout_images_choose_bridge_and_skip_coredns(host: Host, tmp_path: Path) -> None:
    import json

    from podsec.u7s import probe

    layout = tmp_path / "oci"
    layout.mkdir()
    names = [
        f"{REPO}/{n}"
        for n in (
            "pause:3.2",
            "etcd:3.4.13-0",
            "kube-apiserver:v1.20.2",
            "kube-controller-manager:v1.20.2",
            "kube-scheduler:v1.20.2",
            "kube-proxy:v1.20.2",
            "busybox:1.35",
        )
    ]
    index = {
        "manifests": [{"annotations": {"org.opencontainers.image.ref.name": n}} for n in names]
    }
    (layout / "index.json").write_text(json.dumps(index))
    local = probe.LocalImagesProbe(FakeProbe(unreachable=True), probe.oci_layout_refs(layout))
    notes: list[str] = []
    p = wrapper.build_plan(
        config.load(host.root, {}), host, flags.parse(["init"]), local, notes=notes
    )
    assert p.cni == "bridge"
    assert "addon/coredns" in p.skip_phases
    assert not any("coredns" in i for i in p.images)
    assert len(notes) == 2 and "CoreDNS" in notes[0] and "bridge" in notes[1]
    with pytest.raises(PodsecError, match="not an OCI image layout"):
        probe.oci_layout_refs(tmp_path)


def test_missing_etcd_is_still_an_error(host: Host) -> None:
    reg = registry_with(REPO)
    del reg[f"{REPO}/etcd"]
    with pytest.raises(PodsecError, match=r"no repository registry.local/k8s-p10/etcd"):
        plan(host, ["init"], FakeProbe(registry=reg))
