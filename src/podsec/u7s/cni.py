"""CNI configuration of the node: the ``bridge`` network for single-host use (no flannel images
here) or flannel's conflist, and applying the flannel manifest after init."""

from __future__ import annotations

import json
from ipaddress import IPv4Network

from podsec.u7s import netconf
from podsec.u7s.plan import NodePlan

BRIDGE_NAME = "u7s-bridge"


def node_subnet(plan: NodePlan) -> IPv4Network:
    """This node's slice of the pod CIDR for the bridge plugin: the first /24 on the
    control plane that ran init, a slice picked from the node address on other nodes."""
    subnets = list(plan.pod_cidr.subnets(new_prefix=max(24, plan.pod_cidr.prefixlen)))
    if plan.role == "init" or len(subnets) == 1:
        return subnets[0]
    index = 1 + int(plan.advertise_address) % (len(subnets) - 1)
    return subnets[index]


def bridge_conflist(plan: NodePlan) -> str:
    subnet = node_subnet(plan)
    bridge: dict[str, object] = {
        "type": "bridge",
        "bridge": "cni0",
        "isGateway": True,
        "ipMasq": True,
        "hairpinMode": True,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": str(subnet)}]],
            "routes": [{"dst": "0.0.0.0/0"}],
        },
    }
    if netconf.POD_MTU is not None:
        bridge["mtu"] = netconf.POD_MTU
    conf = {
        "cniVersion": "0.4.0",
        "name": BRIDGE_NAME,
        "plugins": [bridge, {"type": "portmap", "capabilities": {"portMappings": True}}],
    }
    return json.dumps(conf, indent=2) + "\n"


def flannel_conflist() -> str:
    conf = {
        "name": "cbr0",
        "cniVersion": "0.4.0",
        "plugins": [
            {"type": "flannel", "delegate": {"hairpinMode": True, "isDefaultGateway": True}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(conf, indent=2) + "\n"


LOOPBACK = json.dumps({"cniVersion": "0.3.0", "name": "lo", "type": "loopback"}, indent=2) + "\n"


def net_conf_files(plan: NodePlan) -> dict[str, str]:
    """Files of the namespace's /etc/cni/net.d (a per-user directory; the host's is untouched)."""
    if plan.cni == "flannel":
        return {"10-flannel.conflist": flannel_conflist(), "99-loopback.conf": LOOPBACK}
    return {"10-bridge.conflist": bridge_conflist(plan), "99-loopback.conf": LOOPBACK}
