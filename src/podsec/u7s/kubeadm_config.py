"""kubeadm configuration for the detected kubeadm API version.

* ``kubeadm.k8s.io/v1beta2`` for kubeadm ≤ 1.21 (what this machine runs: 1.20.2),
  ``v1beta3`` for 1.22 … 1.30, ``v1beta4`` for ≥ 1.31 (``extraArgs`` become name/value lists,
  the control-plane and discovery timeouts move to ``timeouts``);
* init: InitConfiguration + ClusterConfiguration + KubeletConfiguration +
  KubeProxyConfiguration; join (worker or control plane): JoinConfiguration only — a joining
  node gets the cluster, kubelet and kube-proxy configuration from the cluster;
* contents follow the original (reference §5.7) with its defects fixed: etcd in
  ``/var/lib/podsec/u7s/etcd`` without the removed ``enable-v2``, the audit flags and volume
  in the ClusterConfiguration (not patched into the manifest afterwards), kube-proxy with
  every conntrack write disabled, the kubelet's rootless settings;
* a user's own ``--config`` file is merged over the generated documents (the user wins);
* :func:`patch_kubelet_config` re-applies the rootless kubelet settings to
  ``/var/lib/kubelet/config.yaml`` after kubeadm wrote it (kubeadm drops the empty
  ``enforceNodeAllocatable``; a joining node's kubelet config comes from the cluster).

Kept as one module over 500 lines: one document, kubeadm's configuration, whose three API
versions differ in the same fields; split by version every fix would be made three times.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import yaml

from podsec.errors import UsageError
from podsec.i18n import _
from podsec.names import AUDIT_DIR, AUDIT_LOG, AUDIT_POLICY, AUTHZ_KUBECONFIG
from podsec.u7s.layout import CRI_SOCKETS
from podsec.u7s.plan import ETCD_DATA_DIR, VOLUME_PLUGIN_DIR, Cri, Role
from podsec.webhook import authz

V1BETA2 = "kubeadm.k8s.io/v1beta2"
V1BETA3 = "kubeadm.k8s.io/v1beta3"
V1BETA4 = "kubeadm.k8s.io/v1beta4"
KUBELET_API = "kubelet.config.k8s.io/v1beta1"
KUBE_PROXY_API = "kubeproxy.config.k8s.io/v1alpha1"
KUBE_PROXY_KUBECONFIG = "/var/lib/kube-proxy/kubeconfig.conf"
_KINDS = (
    "InitConfiguration",
    "ClusterConfiguration",
    "JoinConfiguration",
    "KubeletConfiguration",
    "KubeProxyConfiguration",
)
Doc = dict[str, Any]


def version_tuple(version: str) -> tuple[int, int]:
    parts = version.lstrip("v").split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError) as exc:
        raise UsageError(_("{version}: not a Kubernetes version").format(version=version)) from exc


def api_for(kubeadm_version: str) -> str:
    """The kubeadm configuration API a kubeadm binary of this version reads."""
    v = version_tuple(kubeadm_version)
    if v < (1, 15):
        raise UsageError(
            _("kubeadm {version} is too old (need 1.15 or newer)").format(version=kubeadm_version)
        )
    if v <= (1, 21):
        return V1BETA2
    if v <= (1, 30):
        return V1BETA3
    return V1BETA4


@dataclass(frozen=True)
class ConfigInput:
    """Everything the generated configuration depends on."""

    api: str
    role: Role
    kube_version: str  # "v1.20.2"
    node_name: str
    advertise_address: IPv4Address
    bind_port: int
    control_plane_endpoint: str  # init: HOST:PORT clients use; join: HOST:PORT to join
    pod_cidr: IPv4Network
    service_cidr: IPv4Network
    cluster_dns: IPv4Address
    image_repository: str
    cri: Cri = "containerd"
    cri_socket: str | None = None  # --cri-socket; default per CRI
    dns_domain: str = "cluster.local"
    etcd_tag: str | None = None
    coredns_tag: str | None = None
    cert_sans: tuple[str, ...] = ()
    cert_dir: str | None = None
    feature_gates: Mapping[str, bool] = field(default_factory=dict)
    token: str | None = None
    token_ttl: str | None = None
    certificate_key: str | None = None
    ca_cert_hashes: tuple[str, ...] = ()
    unsafe_skip_ca_verification: bool = False
    discovery_file: str | None = None
    discovery_token: str | None = None
    tls_bootstrap_token: str | None = None

    @property
    def minor(self) -> tuple[int, int]:
        return version_tuple(self.kube_version)


def cri_socket(inp: ConfigInput) -> str:
    sock = inp.cri_socket or CRI_SOCKETS[inp.cri]
    # v1beta3+ kubeadm warns about (1.24+: requires) the URL form
    if inp.api != V1BETA2 and sock.startswith("/"):
        return "unix://" + sock
    if inp.api == V1BETA2 and sock.startswith("unix://"):
        return sock.removeprefix("unix://")
    return sock


def _args(api: str, args: Mapping[str, str]) -> Any:
    """extraArgs: a map up to v1beta3, a list of {name, value} from v1beta4."""
    if api == V1BETA4:
        return [{"name": k, "value": v} for k, v in args.items()]
    return dict(args)


def _node_registration(inp: ConfigInput, *, control_plane: bool) -> Doc:
    reg: Doc = {
        "name": inp.node_name,
        "criSocket": cri_socket(inp),
        # the node is reached at its host address (forwarded into the namespace)
        "kubeletExtraArgs": _args(inp.api, {"node-ip": str(inp.advertise_address)}),
    }
    if inp.api != V1BETA2:
        reg["imagePullPolicy"] = "IfNotPresent"
    if not control_plane:
        reg["taints"] = []
    return reg


def _local_endpoint(inp: ConfigInput) -> Doc:
    return {"advertiseAddress": str(inp.advertise_address), "bindPort": inp.bind_port}


def init_configuration(inp: ConfigInput) -> Doc:
    doc: Doc = {
        "apiVersion": inp.api,
        "kind": "InitConfiguration",
        "localAPIEndpoint": _local_endpoint(inp),
        "nodeRegistration": _node_registration(inp, control_plane=True),
    }
    if inp.token or inp.token_ttl:
        token: Doc = {}
        if inp.token:
            token["token"] = inp.token
        if inp.token_ttl:
            token["ttl"] = inp.token_ttl
        doc["bootstrapTokens"] = [token]
    if inp.certificate_key:
        doc["certificateKey"] = inp.certificate_key
    if inp.api == V1BETA4:
        doc["timeouts"] = {"controlPlaneComponentHealthCheck": "4m0s"}
    return doc


def cluster_configuration(inp: ConfigInput) -> Doc:
    api = inp.api
    adv = str(inp.advertise_address)
    etcd: Doc = {
        "imageRepository": inp.image_repository,
        "dataDir": ETCD_DATA_DIR,
        # rootlesskit's builtin port driver connects to the namespace's loopback, so the
        # peer port must listen on every address, not only the advertised one
        # members talk through slirp4netns and port forwards: etcd's LAN defaults (heartbeat
        # 100 ms, election 1 s) make a busy node drop leadership; etcd's tuning guide scales
        # both for slower links
        "extraArgs": _args(
            api,
            {
                "listen-peer-urls": "https://0.0.0.0:2380",
                "heartbeat-interval": "300",
                "election-timeout": "3000",
            },
        ),
        "serverCertSANs": [adv, "127.0.0.1"],
        "peerCertSANs": [adv],
    }
    if inp.etcd_tag:
        etcd["imageTag"] = inp.etcd_tag
    sans = ["127.0.0.1", "localhost", adv]
    sans += [s for s in inp.cert_sans if s not in sans]
    api_server: Doc = {
        "certSANs": sans,
        "extraArgs": _args(
            api,
            {
                "audit-policy-file": AUDIT_POLICY,
                "audit-log-path": AUDIT_LOG,
                "audit-log-maxsize": "500",
                "audit-log-maxbackup": "3",
                # revoked certificates refused before RBAC (podsec.webhook.authz; the node's
                # supervisor runs the webhook on 127.0.0.1 of the namespace)
                **authz.apiserver_args("Node,RBAC"),
            },
        ),
        "extraVolumes": [
            {
                "name": "audit",
                "hostPath": AUDIT_DIR,
                "mountPath": AUDIT_DIR,
                "readOnly": False,
                "pathType": "DirectoryOrCreate",
            },
            {  # the webhook's kubeconfig only: its serving key stays with the webhook
                "name": "podsec-authz",
                "hostPath": AUTHZ_KUBECONFIG,
                "mountPath": AUTHZ_KUBECONFIG,
                "readOnly": True,
                "pathType": "File",
            },
        ],
    }
    if api != V1BETA4:
        api_server["timeoutForControlPlane"] = "4m0s"
    dns: Doc = {"type": "CoreDNS"} if api == V1BETA2 else {}
    if inp.coredns_tag:
        dns["imageTag"] = inp.coredns_tag
    doc: Doc = {
        "apiVersion": api,
        "kind": "ClusterConfiguration",
        "clusterName": "kubernetes",
        "kubernetesVersion": inp.kube_version,
        "controlPlaneEndpoint": inp.control_plane_endpoint,
        "imageRepository": inp.image_repository,
        "networking": {
            "dnsDomain": inp.dns_domain,
            "podSubnet": str(inp.pod_cidr),
            "serviceSubnet": str(inp.service_cidr),
        },
        "etcd": {"local": etcd},
        "apiServer": api_server,
        # kubeadm mounts the flag's value as the flexvolume hostPath (plan.VOLUME_PLUGIN_DIR)
        "controllerManager": {
            "extraArgs": _args(
                api, {"allocate-node-cidrs": "true", "flex-volume-plugin-dir": VOLUME_PLUGIN_DIR}
            )
        },
        "scheduler": {},
        "dns": dns,
    }
    if inp.cert_dir:
        doc["certificatesDir"] = inp.cert_dir
    if inp.feature_gates:
        doc["featureGates"] = dict(inp.feature_gates)
    return doc


def join_configuration(inp: ConfigInput) -> Doc:
    discovery: Doc = {}
    if inp.discovery_file:
        discovery["file"] = {"kubeConfigPath": inp.discovery_file}
    else:
        bootstrap: Doc = {
            "apiServerEndpoint": inp.control_plane_endpoint,
            "token": inp.discovery_token or inp.token or "",
        }
        if inp.ca_cert_hashes:
            bootstrap["caCertHashes"] = list(inp.ca_cert_hashes)
        if inp.unsafe_skip_ca_verification:
            bootstrap["unsafeSkipCAVerification"] = True
        discovery["bootstrapToken"] = bootstrap
    tls = inp.tls_bootstrap_token or inp.token
    if tls:
        discovery["tlsBootstrapToken"] = tls
    if inp.api != V1BETA4:
        discovery["timeout"] = "5m0s"
    control_plane = inp.role == "join-control-plane"
    doc: Doc = {
        "apiVersion": inp.api,
        "kind": "JoinConfiguration",
        "discovery": discovery,
        "nodeRegistration": _node_registration(inp, control_plane=control_plane),
    }
    if control_plane:
        cp: Doc = {"localAPIEndpoint": _local_endpoint(inp)}
        if inp.certificate_key:
            cp["certificateKey"] = inp.certificate_key
        doc["controlPlane"] = cp
    if inp.api == V1BETA4:
        doc["timeouts"] = {"discovery": "5m0s"}
    return doc


def kubelet_settings(kube_version: str) -> Doc:
    """The kubelet settings a rootless node needs, for its version (k8s-feasibility.md §3):
    1.20/1.21 have no KubeletInUserNamespace, so no QoS cgroups and no node-allocatable
    enforcement; from 1.22 the feature gate does the work (the original's settings)."""
    minor = version_tuple(kube_version)
    out: Doc = {
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        "evictionHard": {"nodefs.available": "3%"},
        "enforceNodeAllocatable": [],
        "volumePluginDir": VOLUME_PLUGIN_DIR,  # the controller-manager's, inside the node
    }
    if minor < (1, 22):
        out["cgroupsPerQOS"] = False
        out["featureGates"] = {"DevicePlugins": False, "LocalStorageCapacityIsolation": False}
    else:
        out["cgroupsPerQOS"] = True
        gates: Doc = {"KubeletInUserNamespace": True}
        if minor < (1, 25):
            gates["LocalStorageCapacityIsolation"] = False
        else:
            out["localStorageCapacityIsolation"] = False
        out["featureGates"] = gates
    return out


def kubelet_configuration(inp: ConfigInput) -> Doc:
    doc: Doc = {"apiVersion": KUBELET_API, "kind": "KubeletConfiguration"}
    doc.update(kubelet_settings(inp.kube_version))
    doc["clusterDNS"] = [str(inp.cluster_dns)]
    doc["clusterDomain"] = inp.dns_domain
    return doc


def kube_proxy_configuration(inp: ConfigInput) -> Doc:
    """kube-proxy that never writes conntrack sysctls (forbidden in a user namespace)."""
    return {
        "apiVersion": KUBE_PROXY_API,
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clusterCIDR": str(inp.pod_cidr),
        "clientConnection": {"kubeconfig": KUBE_PROXY_KUBECONFIG},
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }


def documents(inp: ConfigInput) -> list[Doc]:
    if inp.role == "init":
        return [
            init_configuration(inp),
            cluster_configuration(inp),
            kubelet_configuration(inp),
            kube_proxy_configuration(inp),
        ]
    return [join_configuration(inp)]


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(over)


def load_documents(text: str, source: str) -> list[Doc]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise UsageError(
            _("{source}: invalid YAML: {err}").format(source=source, err=str(exc).splitlines()[0])
        ) from exc
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise UsageError(
                _("{source}: every document needs apiVersion and kind").format(source=source)
            )
    return docs


def merge_user_documents(generated: list[Doc], user: list[Doc], api: str, source: str) -> list[Doc]:
    """The user's documents over ours (the user wins); other kinds are appended as given."""
    out = [copy.deepcopy(d) for d in generated]
    for doc in user:
        kind, version = doc["kind"], doc["apiVersion"]
        if str(version).startswith("kubeadm.k8s.io/") and version != api:
            raise UsageError(
                _("{source}: {kind} uses {version}, but this kubeadm reads {api}").format(
                    source=source, kind=kind, version=version, api=api
                ),
                hint=_("convert it with: kubeadm config migrate --old-config {source}").format(
                    source=source
                ),
            )
        for i, mine in enumerate(out):
            if mine["kind"] == kind and mine["apiVersion"] == version:
                out[i] = _merge(mine, doc)
                break
        else:
            if kind in ("InitConfiguration", "ClusterConfiguration") and not any(
                d["kind"] == "InitConfiguration" for d in out
            ):
                raise UsageError(
                    _("{source}: {kind} does not belong to kubeadm join").format(
                        source=source, kind=kind
                    )
                )
            out.append(copy.deepcopy(doc))
    return out


def _get(doc: Doc, *path: str) -> Any:
    cur: Any = doc
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


# user config field → the kubeadm flag it stands for
_USER_FIELDS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("InitConfiguration", ("localAPIEndpoint", "advertiseAddress"), "apiserver-advertise-address"),
    ("InitConfiguration", ("localAPIEndpoint", "bindPort"), "apiserver-bind-port"),
    ("InitConfiguration", ("nodeRegistration", "name"), "node-name"),
    ("InitConfiguration", ("nodeRegistration", "criSocket"), "cri-socket"),
    ("InitConfiguration", ("certificateKey",), "certificate-key"),
    ("ClusterConfiguration", ("networking", "podSubnet"), "pod-network-cidr"),
    ("ClusterConfiguration", ("networking", "serviceSubnet"), "service-cidr"),
    ("ClusterConfiguration", ("networking", "dnsDomain"), "service-dns-domain"),
    ("ClusterConfiguration", ("kubernetesVersion",), "kubernetes-version"),
    ("ClusterConfiguration", ("imageRepository",), "image-repository"),
    ("ClusterConfiguration", ("controlPlaneEndpoint",), "control-plane-endpoint"),
    ("ClusterConfiguration", ("certificatesDir",), "cert-dir"),
    ("JoinConfiguration", ("nodeRegistration", "name"), "node-name"),
    ("JoinConfiguration", ("nodeRegistration", "criSocket"), "cri-socket"),
    (
        "JoinConfiguration",
        ("controlPlane", "localAPIEndpoint", "advertiseAddress"),
        "apiserver-advertise-address",
    ),
    ("JoinConfiguration", ("controlPlane", "localAPIEndpoint", "bindPort"), "apiserver-bind-port"),
    ("JoinConfiguration", ("controlPlane", "certificateKey"), "certificate-key"),
    ("JoinConfiguration", ("discovery", "bootstrapToken", "token"), "token"),
    ("JoinConfiguration", ("discovery", "tlsBootstrapToken"), "tls-bootstrap-token"),
    ("JoinConfiguration", ("discovery", "file", "kubeConfigPath"), "discovery-file"),
)


def user_values(  # noqa: PLR0912 - one branch per document kind
    docs: list[Doc],
) -> tuple[dict[str, str], dict[str, tuple[str, ...]], bool, str | None]:
    """What a user's config says, as kubeadm flag values: (values, lists, control_plane,
    join endpoint) — so it is validated and planned like the flags."""
    values: dict[str, str] = {}
    lists: dict[str, tuple[str, ...]] = {}
    control_plane = False
    endpoint = None
    for doc in docs:
        kind = doc.get("kind")
        for k, path, flag in _USER_FIELDS:
            if k == kind:
                v = _get(doc, *path)
                if v is not None and v != "":
                    values[flag] = str(v)
        if kind == "JoinConfiguration":
            control_plane = control_plane or "controlPlane" in doc
            ep = _get(doc, "discovery", "bootstrapToken", "apiServerEndpoint")
            endpoint = str(ep) if ep else endpoint
            hashes = _get(doc, "discovery", "bootstrapToken", "caCertHashes")
            if hashes:
                lists["discovery-token-ca-cert-hash"] = tuple(str(h) for h in hashes)
            if _get(doc, "discovery", "bootstrapToken", "unsafeSkipCAVerification"):
                lists["_unsafe"] = ("true",)
        if kind == "InitConfiguration":
            tokens = doc.get("bootstrapTokens") or []
            if tokens and isinstance(tokens[0], dict):
                if tokens[0].get("token"):
                    values["token"] = str(tokens[0]["token"])
                if tokens[0].get("ttl"):
                    values["token-ttl"] = str(tokens[0]["ttl"])
        if kind == "ClusterConfiguration":
            sans = _get(doc, "apiServer", "certSANs")
            if sans:
                lists["apiserver-cert-extra-sans"] = tuple(str(s) for s in sans)
    return values, lists, control_plane, endpoint


def render(docs: list[Doc]) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False, default_flow_style=False) for d in docs)


def generate(inp: ConfigInput, user_docs: list[Doc] | None = None, source: str = "") -> str:
    """The multi-document YAML given to the real kubeadm with ``--config``."""
    docs = documents(inp)
    if user_docs:
        docs = merge_user_documents(docs, user_docs, inp.api, source)
    return render(docs)


def patch_kubelet_config(text: str, kube_version: str) -> str:
    """``/var/lib/kubelet/config.yaml`` with the rootless settings re-applied (the node
    runtime calls this after every kubeadm init/join, before starting the kubelet)."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise UsageError(_("kubelet config: invalid YAML: {err}").format(err=exc)) from exc
    if not isinstance(doc, dict):
        raise UsageError(_("kubelet config: not a KubeletConfiguration"))
    for key, value in kubelet_settings(kube_version).items():
        if key == "featureGates":
            doc["featureGates"] = {**(doc.get("featureGates") or {}), **value}
        else:
            doc[key] = value
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
