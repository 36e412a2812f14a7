"""kubeadm configuration for v1beta2 (≤1.21), v1beta3 (1.22–1.30) and v1beta4 (≥1.31)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest
import yaml

from podsec.errors import UsageError
from podsec.u7s import kubeadm_config as kc

TOKEN = "abcdef.0123456789abcdef"
HASH = "sha256:" + "ab" * 32
KEY = "0f" * 32

BASE = kc.ConfigInput(
    api=kc.V1BETA2,
    role="init",
    kube_version="v1.20.2",
    node_name="master-1",
    advertise_address=IPv4Address("192.168.122.80"),
    bind_port=6443,
    control_plane_endpoint="192.168.122.90:8443",
    pod_cidr=IPv4Network("10.244.0.0/16"),
    service_cidr=IPv4Network("10.96.0.0/12"),
    cluster_dns=IPv4Address("10.96.0.10"),
    image_repository="registry.local/p10",
    token=TOKEN,
    token_ttl="2h0m0s",
    certificate_key=KEY,
    cert_sans=("lb.example",),
)
VERSIONS = {kc.V1BETA2: "v1.20.2", kc.V1BETA3: "v1.26.3", kc.V1BETA4: "v1.31.1"}


def docs(inp: kc.ConfigInput) -> dict[str, dict[str, Any]]:
    out = {}
    for d in yaml.safe_load_all(kc.generate(inp)):
        out[d["kind"]] = d
    return out


def args(value: Any) -> dict[str, str]:
    """extraArgs as a dict whatever the API version's shape."""
    if isinstance(value, list):
        return {a["name"]: a["value"] for a in value}
    return dict(value)


@pytest.mark.parametrize(
    ("version", "api"),
    [
        ("v1.15.0", kc.V1BETA2),
        ("v1.20.2", kc.V1BETA2),
        ("v1.21.14", kc.V1BETA2),
        ("v1.22.0", kc.V1BETA3),
        ("v1.30.10", kc.V1BETA3),
        ("v1.31.0", kc.V1BETA4),
        ("v1.33.1", kc.V1BETA4),
    ],
)
def test_api_for_kubeadm_version(version: str, api: str) -> None:
    assert kc.api_for(version) == api


def test_api_for_ancient_kubeadm() -> None:
    with pytest.raises(UsageError):
        kc.api_for("v1.14.0")


@pytest.mark.parametrize("api", [kc.V1BETA2, kc.V1BETA3, kc.V1BETA4])
def test_init_documents_per_api(api: str) -> None:
    inp = replace(BASE, api=api, kube_version=VERSIONS[api])
    d = docs(inp)
    assert list(d) == [
        "InitConfiguration",
        "ClusterConfiguration",
        "KubeletConfiguration",
        "KubeProxyConfiguration",
    ]
    init, cluster = d["InitConfiguration"], d["ClusterConfiguration"]
    assert init["apiVersion"] == cluster["apiVersion"] == api
    assert init["localAPIEndpoint"] == {"advertiseAddress": "192.168.122.80", "bindPort": 6443}
    assert init["bootstrapTokens"] == [{"token": TOKEN, "ttl": "2h0m0s"}]
    assert init["certificateKey"] == KEY
    reg = init["nodeRegistration"]
    assert reg["name"] == "master-1"
    assert args(reg["kubeletExtraArgs"]) == {"node-ip": "192.168.122.80"}
    assert cluster["kubernetesVersion"] == VERSIONS[api]
    assert cluster["controlPlaneEndpoint"] == "192.168.122.90:8443"
    assert cluster["imageRepository"] == "registry.local/p10"
    assert cluster["networking"] == {
        "dnsDomain": "cluster.local",
        "podSubnet": "10.244.0.0/16",
        "serviceSubnet": "10.96.0.0/12",
    }
    etcd = cluster["etcd"]["local"]
    assert etcd["dataDir"] == "/var/lib/podsec/u7s/etcd"
    assert etcd["imageRepository"] == "registry.local/p10"
    assert "enable-v2" not in args(etcd["extraArgs"])  # removed in etcd 3.6 (defect 41)
    assert args(etcd["extraArgs"])["listen-peer-urls"] == "https://0.0.0.0:2380"
    # tolerant of slirp latency and a loaded node: 10 heartbeats per election timeout
    assert args(etcd["extraArgs"])["heartbeat-interval"] == "300"
    assert args(etcd["extraArgs"])["election-timeout"] == "3000"
    apis = cluster["apiServer"]
    assert args(apis["extraArgs"]) == {
        "audit-policy-file": "/etc/kubernetes/audit/policy.yaml",
        "audit-log-path": "/etc/kubernetes/audit/audit.log",
        "audit-log-maxsize": "500",
        "audit-log-maxbackup": "3",
        "authorization-mode": "Node,Webhook,RBAC",
        "authorization-webhook-config-file": "/etc/kubernetes/podsec-authz/webhook.kubeconfig",
        "authorization-webhook-version": "v1",
        "authorization-webhook-cache-authorized-ttl": "5m0s",
        "authorization-webhook-cache-unauthorized-ttl": "0s",
    }
    assert apis["extraVolumes"][0]["hostPath"] == "/etc/kubernetes/audit"
    assert apis["extraVolumes"][0]["pathType"] == "DirectoryOrCreate"
    # the revocation webhook's kubeconfig, and nothing else of its directory
    assert apis["extraVolumes"][1] == {
        "name": "podsec-authz",
        "hostPath": "/etc/kubernetes/podsec-authz/webhook.kubeconfig",
        "mountPath": "/etc/kubernetes/podsec-authz/webhook.kubeconfig",
        "readOnly": True,
        "pathType": "File",
    }
    assert {"127.0.0.1", "192.168.122.80", "lb.example"} <= set(apis["certSANs"])
    proxy = d["KubeProxyConfiguration"]
    assert proxy["conntrack"] == {
        "maxPerCore": 0,
        "min": 0,
        "tcpEstablishedTimeout": "0s",
        "tcpCloseWaitTimeout": "0s",
    }
    assert proxy["clusterCIDR"] == "10.244.0.0/16"
    kubelet = d["KubeletConfiguration"]
    assert kubelet["clusterDNS"] == ["10.96.0.10"] and kubelet["cgroupDriver"] == "cgroupfs"


def test_v1beta2_specifics() -> None:
    d = docs(BASE)
    assert d["ClusterConfiguration"]["dns"] == {"type": "CoreDNS"}
    assert d["ClusterConfiguration"]["apiServer"]["timeoutForControlPlane"] == "4m0s"
    reg = d["InitConfiguration"]["nodeRegistration"]
    assert reg["criSocket"] == "/run/containerd/containerd.sock"  # 1.20 takes a plain path
    assert "imagePullPolicy" not in reg  # unknown to v1beta2
    kubelet = d["KubeletConfiguration"]
    # 1.20 has no KubeletInUserNamespace: the measured workarounds instead
    assert kubelet["cgroupsPerQOS"] is False and kubelet["enforceNodeAllocatable"] == []
    assert "KubeletInUserNamespace" not in kubelet["featureGates"]


def test_v1beta3_specifics() -> None:
    d = docs(replace(BASE, api=kc.V1BETA3, kube_version="v1.26.3", cri="crio"))
    assert "type" not in d["ClusterConfiguration"]["dns"]
    reg = d["InitConfiguration"]["nodeRegistration"]
    assert reg["criSocket"] == "unix:///run/crio/crio.sock"
    assert reg["imagePullPolicy"] == "IfNotPresent"
    assert isinstance(reg["kubeletExtraArgs"], dict)
    kubelet = d["KubeletConfiguration"]
    assert kubelet["featureGates"]["KubeletInUserNamespace"] is True
    assert kubelet["localStorageCapacityIsolation"] is False


def test_v1beta4_specifics() -> None:
    d = docs(replace(BASE, api=kc.V1BETA4, kube_version="v1.31.1"))
    cluster = d["ClusterConfiguration"]
    for section in (cluster["apiServer"], cluster["controllerManager"], cluster["etcd"]["local"]):
        assert isinstance(section["extraArgs"], list)
        assert all(set(a) == {"name", "value"} for a in section["extraArgs"])
    assert isinstance(d["InitConfiguration"]["nodeRegistration"]["kubeletExtraArgs"], list)
    assert "timeoutForControlPlane" not in cluster["apiServer"]
    assert d["InitConfiguration"]["timeouts"] == {"controlPlaneComponentHealthCheck": "4m0s"}
    join = docs(
        replace(
            BASE, api=kc.V1BETA4, kube_version="v1.31.1", role="join-worker", ca_cert_hashes=(HASH,)
        )
    )
    assert join["JoinConfiguration"]["timeouts"] == {"discovery": "5m0s"}
    assert "timeout" not in join["JoinConfiguration"]["discovery"]


@pytest.mark.parametrize("api", [kc.V1BETA2, kc.V1BETA3, kc.V1BETA4])
def test_join_worker(api: str) -> None:
    inp = replace(
        BASE,
        api=api,
        kube_version=VERSIONS[api],
        role="join-worker",
        control_plane_endpoint="192.168.122.90:8443",
        ca_cert_hashes=(HASH,),
        certificate_key=None,
    )
    d = docs(inp)
    assert list(d) == ["JoinConfiguration"]  # the cluster's own configs are fetched on join
    j = d["JoinConfiguration"]
    assert j["discovery"]["bootstrapToken"] == {
        "apiServerEndpoint": "192.168.122.90:8443",
        "token": TOKEN,
        "caCertHashes": [HASH],
    }
    assert j["discovery"]["tlsBootstrapToken"] == TOKEN
    assert "controlPlane" not in j


@pytest.mark.parametrize("api", [kc.V1BETA2, kc.V1BETA3, kc.V1BETA4])
def test_join_control_plane(api: str) -> None:
    inp = replace(
        BASE, api=api, kube_version=VERSIONS[api], role="join-control-plane", ca_cert_hashes=(HASH,)
    )
    j = docs(inp)["JoinConfiguration"]
    assert j["controlPlane"] == {
        "localAPIEndpoint": {"advertiseAddress": "192.168.122.80", "bindPort": 6443},
        "certificateKey": KEY,
    }


def test_join_discovery_file_and_unsafe() -> None:
    j = docs(
        replace(
            BASE, role="join-worker", discovery_file="/etc/kubernetes/discovery.conf", token=None
        )
    )
    assert j["JoinConfiguration"]["discovery"]["file"] == {
        "kubeConfigPath": "/etc/kubernetes/discovery.conf"
    }
    j = docs(replace(BASE, role="join-worker", unsafe_skip_ca_verification=True))
    assert j["JoinConfiguration"]["discovery"]["bootstrapToken"]["unsafeSkipCAVerification"] is True


def test_overrides_and_optional_fields() -> None:
    d = docs(
        replace(
            BASE,
            etcd_tag="3.4.14-0",
            coredns_tag="1.8.0",
            cert_dir="/pki",
            feature_gates={"PublicKeysECDSA": True},
            dns_domain="corp.internal",
        )
    )
    c = d["ClusterConfiguration"]
    assert c["etcd"]["local"]["imageTag"] == "3.4.14-0"
    assert c["dns"]["imageTag"] == "1.8.0"
    assert c["certificatesDir"] == "/pki"
    assert c["featureGates"] == {"PublicKeysECDSA": True}
    assert c["networking"]["dnsDomain"] == "corp.internal"
    assert d["KubeletConfiguration"]["clusterDomain"] == "corp.internal"


def test_user_config_merged_over_generated() -> None:
    user = kc.load_documents(
        "apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\n"
        "apiServer:\n  extraArgs:\n    enable-admission-plugins: NodeRestriction,PodSecurityPolicy\n"
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        "user.yaml",
    )
    out = list(yaml.safe_load_all(kc.generate(BASE, user, "user.yaml")))
    cluster = next(d for d in out if d["kind"] == "ClusterConfiguration")
    extra = cluster["apiServer"]["extraArgs"]
    assert extra["enable-admission-plugins"] == "NodeRestriction,PodSecurityPolicy"
    assert extra["audit-log-path"] == "/etc/kubernetes/audit/audit.log"  # ours kept
    assert out[-1]["kind"] == "ConfigMap"


def test_user_config_of_another_api_version_is_refused() -> None:
    user = kc.load_documents(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n", "u.yaml"
    )
    with pytest.raises(
        UsageError, match=r"v1beta3, but this kubeadm reads kubeadm.k8s.io/v1beta2"
    ) as exc:
        kc.generate(BASE, user, "u.yaml")
    assert exc.value.hint and "kubeadm config migrate" in exc.value.hint


@pytest.mark.parametrize("text", ["a: [", "- 1\n- 2\n", "kind: X\n"])
def test_bad_user_config(text: str) -> None:
    with pytest.raises(UsageError):
        kc.load_documents(text, "u.yaml")


def test_user_values_read_back_as_flags() -> None:
    user = kc.load_documents(
        "apiVersion: kubeadm.k8s.io/v1beta2\nkind: JoinConfiguration\n"
        "discovery:\n  bootstrapToken:\n    apiServerEndpoint: 10.0.0.1:6443\n"
        f"    token: {TOKEN}\n    caCertHashes: [{HASH}]\n"
        "controlPlane:\n  certificateKey: " + KEY + "\n",
        "u.yaml",
    )
    values, lists, cp, endpoint = kc.user_values(user)
    assert values["token"] == TOKEN and values["certificate-key"] == KEY
    assert lists["discovery-token-ca-cert-hash"] == (HASH,)
    assert cp and endpoint == "10.0.0.1:6443"


def test_patch_kubelet_config_restores_what_kubeadm_drops() -> None:
    written = yaml.safe_dump(
        {
            "apiVersion": kc.KUBELET_API,
            "kind": "KubeletConfiguration",
            "cgroupDriver": "systemd",
            "clusterDNS": ["10.96.0.10"],
            "featureGates": {"SomethingElse": True},
        }
    )
    out = yaml.safe_load(kc.patch_kubelet_config(written, "v1.20.2"))
    assert out["enforceNodeAllocatable"] == [] and out["cgroupsPerQOS"] is False
    assert out["cgroupDriver"] == "cgroupfs" and out["failSwapOn"] is False
    assert out["clusterDNS"] == ["10.96.0.10"]
    assert out["featureGates"]["SomethingElse"] is True
    new = yaml.safe_load(kc.patch_kubelet_config(written, "v1.30.2"))
    assert (
        new["featureGates"]["KubeletInUserNamespace"] is True
        and new["enforceNodeAllocatable"] == []
    )
    # idempotent
    assert kc.patch_kubelet_config(
        kc.patch_kubelet_config(written, "v1.20.2"), "v1.20.2"
    ) == kc.patch_kubelet_config(written, "v1.20.2")
    with pytest.raises(UsageError):
        kc.patch_kubelet_config("- a\n", "v1.20.2")


@pytest.mark.parametrize(
    ("api", "version"),
    [(kc.V1BETA2, "v1.20.2"), (kc.V1BETA3, "v1.26.3"), (kc.V1BETA4, "v1.31.1")],
)
def test_flexvolume_dir_is_inside_the_node(api: str, version: str) -> None:
    # kubeadm mounts the controller-manager's --flex-volume-plugin-dir as a DirectoryOrCreate
    # hostPath; its default under /usr/libexec cannot be created by the namespace's root
    # (issue 12): both the controller-manager and the kubelet use the node's own directory
    d = docs(replace(BASE, api=api, kube_version=version))
    cm = args(d["ClusterConfiguration"]["controllerManager"]["extraArgs"])
    assert cm["flex-volume-plugin-dir"] == "/var/lib/kubelet/volumeplugins"
    assert d["KubeletConfiguration"]["volumePluginDir"] == "/var/lib/kubelet/volumeplugins"
    assert "/usr/libexec/kubernetes" not in kc.generate(
        replace(BASE, api=api, kube_version=version)
    )
    # a joining node's kubelet configuration comes from the cluster: the patch sets it too
    patched = yaml.safe_load(kc.patch_kubelet_config("kind: KubeletConfiguration\n", version))
    assert patched["volumePluginDir"] == "/var/lib/kubelet/volumeplugins"
