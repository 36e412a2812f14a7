"""kubelet and kube-proxy of a rootless node: their argv and the kubelet config patch.

kubeadm writes ``/var/lib/kubelet/config.yaml``; before every kubelet start the rootless
settings are merged into it (1.20 has no ``KubeletInUserNamespace``: no QoS cgroups, no node
allocatable enforcement, no swap check, device plugins and local-storage isolation off).
kube-proxy runs with every ``--conntrack-*`` at 0 so it never writes the host's conntrack sysctls.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from podsec.names import KUBELET_CONF
from podsec.u7s.plan import NodePlan

CONFIG = "/var/lib/kubelet/config.yaml"
FLAGS_ENV = "/var/lib/kubelet/kubeadm-flags.env"
BOOTSTRAP = "/etc/kubernetes/bootstrap-kubelet.conf"


def minor(version: str) -> int:
    parts = version.lstrip("v").split(".")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def patch_config(text: str, plan: NodePlan) -> str:
    """The kubelet configuration with the rootless settings merged in (idempotent)."""
    data: dict[str, Any] = yaml.safe_load(text) or {}
    data.update(
        cgroupDriver="cgroupfs",
        cgroupsPerQOS=False,
        enforceNodeAllocatable=[],
        failSwapOn=False,
        localStorageCapacityIsolation=False,
        evictionHard={"nodefs.available": "3%", "imagefs.available": "3%"},
    )
    gates = dict(data.get("featureGates") or {})
    gates.update(DevicePlugins=False)
    if minor(plan.kube_version) >= 22:
        gates["KubeletInUserNamespace"] = True
        data.pop("localStorageCapacityIsolation", None)
        if minor(plan.kube_version) < 25:
            gates["LocalStorageCapacityIsolation"] = False
    else:
        data.pop("localStorageCapacityIsolation", None)
        gates["LocalStorageCapacityIsolation"] = False
    data["featureGates"] = gates
    return yaml.safe_dump(data, sort_keys=True)


def kubeadm_flags(text: str) -> list[str]:
    """KUBELET_KUBEADM_ARGS of kubeadm-flags.env as an argv tail."""
    for line in text.splitlines():
        if line.startswith("KUBELET_KUBEADM_ARGS="):
            value = line.split("=", 1)[1].strip().strip('"')
            return shlex.split(value)
    return []


def argv(plan: NodePlan, cri_socket: Path, flags_env: str = "") -> list[str]:
    args = [
        "kubelet",
        f"--config={CONFIG}",
        f"--kubeconfig={KUBELET_CONF}",
        f"--bootstrap-kubeconfig={BOOTSTRAP}",
        f"--container-runtime-endpoint=unix://{cri_socket}",
        f"--node-ip={plan.advertise_address}",
        f"--hostname-override={plan.node_name}",
    ]
    if minor(plan.kube_version) < 24:
        args.append("--container-runtime=remote")
    if minor(plan.kube_version) < 27:
        args.append(f"--pod-infra-container-image={plan.pause_image}")
    ours = {a.split("=", 1)[0] for a in args}
    args += [a for a in kubeadm_flags(flags_env) if a.split("=", 1)[0] not in ours]
    return args


def proxy_argv(plan: NodePlan) -> list[str]:
    return [
        "kube-proxy",
        f"--kubeconfig={KUBELET_CONF}",
        f"--hostname-override={plan.node_name}",
        f"--bind-address={plan.advertise_address}",
        f"--cluster-cidr={plan.pod_cidr}",
        "--proxy-mode=iptables",
        "--conntrack-max-per-core=0",
        "--conntrack-min=0",
        "--conntrack-tcp-timeout-established=0",
        "--conntrack-tcp-timeout-close-wait=0",
        "--metrics-bind-address=127.0.0.1:10249",
        "--healthz-bind-address=127.0.0.1:10256",
    ]
