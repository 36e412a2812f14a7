"""kubelet and kube-proxy of a rootless node: their argv and the kubelet config patch.

kubeadm writes ``/var/lib/kubelet/config.yaml``; before every kubelet start the rootless
settings are merged into it (1.20 has no ``KubeletInUserNamespace``: no QoS cgroups, no node
allocatable enforcement, no swap check, device plugins and local-storage isolation off).
kube-proxy runs with every ``--conntrack-*`` at 0 so it never writes the host's conntrack sysctls.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import time
from pathlib import Path
from typing import Any

import yaml

from podsec.names import KUBELET_CONF
from podsec.u7s.plan import NodePlan

CONFIG = "/var/lib/kubelet/config.yaml"
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


def argv(
    plan: NodePlan, cri_socket: Path, flags_env: str = "", docker_shim: Path | None = None
) -> list[str]:
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
    if docker_shim is not None and needs_docker_shim(plan):
        args.append(f"--docker=unix://{docker_shim}")
    ours = {a.split("=", 1)[0] for a in args}
    args += [a for a in kubeadm_flags(flags_env) if a.split("=", 1)[0] not in ours]
    return args


# --- kubelet < 1.24: cAdvisor's five-second wait for Docker ---------------------------------
#
# The cAdvisor in kubelet < 1.24 asks Docker for its root directory at every start and, when
# there is no Docker, retries five times a second apart: every kubelet start of a node without
# Docker waits 5 s (twice during `kubeadm init`: the first start, and the restart that makes
# the mirror pods; measured in benchmarks/bench_u7s_node.py). A socket that answers the two
# questions — ``/info`` with a root directory and no storage driver (so cAdvisor registers no
# Docker factory) and ``/version`` — ends the wait at once. It is served by a short-lived
# process that exits ``DOCKER_SHIM_IDLE`` seconds after the last question, or after
# ``DOCKER_SHIM_SECONDS`` if none comes (cAdvisor asks only while it starts).

DOCKER_SHIM_SECONDS = 30.0
DOCKER_SHIM_IDLE = 3.0
_DOCKER_INFO = json.dumps(
    {"DockerRootDir": "/var/lib/docker", "Driver": "", "ServerVersion": "0.0.0"}
).encode()
_DOCKER_VERSION = json.dumps({"Version": "0.0.0", "ApiVersion": "1.40"}).encode()


def needs_docker_shim(plan: NodePlan) -> bool:
    return minor(plan.kube_version) < 24


def _docker_answer(request: bytes) -> bytes:
    line = request.split(b"\r\n", 1)[0].split()
    target = line[1].split(b"?", 1)[0] if len(line) > 1 else b""
    if target.endswith(b"/info"):
        status, body = b"200 OK", _DOCKER_INFO
    elif target.endswith(b"/version"):
        status, body = b"200 OK", _DOCKER_VERSION
    elif target.endswith(b"/_ping"):
        status, body = b"200 OK", b"OK"
    else:
        status, body = b"404 Not Found", b'{"message":"not docker"}'
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nApi-Version: 1.40\r\n"
        b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def serve_docker_shim(path: Path, seconds: float = DOCKER_SHIM_SECONDS) -> None:
    """Listen on ``path``, then answer cAdvisor from a forked child for ``seconds``; returns
    in the parent as soon as the socket is ready (the kubelet may start right away)."""
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    path.chmod(0o600)
    server.listen(16)
    if os.fork() != 0:
        server.close()
        return
    code = 0
    try:
        os.setsid()
        # leave the caller's output pipes alone: it is waiting for them to close
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        hard = deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            server.settimeout(left)
            try:
                conn, _addr = server.accept()
            except TimeoutError:
                break
            # cAdvisor asks within a second or two of its start: once asked, an idle pause ends
            # the shim (it does not linger on a node that is up)
            deadline = min(hard, time.monotonic() + DOCKER_SHIM_IDLE)
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    data = b""
                    while b"\r\n\r\n" not in data and len(data) < 65536:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(_docker_answer(data))
    except BaseException:
        code = 1
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os._exit(code)


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
