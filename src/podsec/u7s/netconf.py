"""The network settings of a rootless node, in one place, as measured on this kind of machine
(``benchmarks/bench_u7s_network.py`` measures every setting podsec controls against the
rootful paths; ``benchmarks/bench_u7s_node.py`` measures the chosen one in a real cluster).

* ``MTU``: the tap device slirp4netns serves. slirp4netns is a user-space TCP/IP stack: it
  costs per packet, so a larger MTU moves more bytes per CPU second — up to a point: at the
  usual 65520 its TCP stalls on its own window (measured: pod → host 1.9 Gbps at 65520, 5.8 at
  16384, 1.2 at 1500). The other host's link keeps its own MTU (slirp4netns terminates TCP and
  re-sends from a host socket).
* ``PORT_DRIVER``: ``builtin`` forwards ports with one user-space copy in rootlesskit's parent;
  the ``slirp4netns`` driver pushes every byte through slirp's stack as well.
* ``POD_MTU``: the pods' bridge and veths (the CNI configuration). Left at the default 1500,
  every pod's traffic reaches slirp4netns in 1500-byte packets and the tap MTU buys nothing;
  flannel derives its own from the tap's.
* the slirp4netns sandbox and seccomp filter stay on: they cost nothing measurable.
"""

from __future__ import annotations

MTU = 16384
PORT_DRIVER = "builtin"
SLIRP_SANDBOX = "auto"
SLIRP_SECCOMP = "auto"
POD_MTU: int | None = 16384  # None: the CNI plugin's default (1500)


def rootlesskit_flags() -> list[str]:
    """rootlesskit's network flags (slirp4netns, the port driver)."""
    return [
        "--net=slirp4netns",
        f"--mtu={MTU}",
        "--disable-host-loopback",
        f"--slirp4netns-sandbox={SLIRP_SANDBOX}",
        f"--slirp4netns-seccomp={SLIRP_SECCOMP}",
    ]
