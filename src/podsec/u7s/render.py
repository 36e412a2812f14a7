"""What a :class:`~podsec.u7s.plan.NodePlan` renders into for the node: the env file of
``U7S_*`` values, the real kubeadm's argv, the flannel manifest, the image re-tags.

The planner (:mod:`podsec.u7s.wrapper`) decides the plan; deploying it
(:mod:`podsec.u7s.deploy`) writes and runs what these render — so the plan goes one way,
planner → plan → deploy → render, and never back into the planner.
"""

from __future__ import annotations

import re

from podsec.errors import UsageError
from podsec.i18n import _
from podsec.names import U7S_BIN
from podsec.u7s import images
from podsec.u7s.plan import NodePlan

ENV_FILE = "/etc/podsec/u7s/config/env"

ENV_PATH = f"PATH={U7S_BIN}:/sbin/:/usr/sbin/:/bin:/usr/bin/"

_SAFE_RE = re.compile(r"[A-Za-z0-9_./:,=@%+-]*")  # fullmatch: a newline must get quoted


def _quote(value: str) -> str:
    """A value both systemd's EnvironmentFile and a POSIX shell read back unchanged."""
    if _SAFE_RE.fullmatch(value):
        return value
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")
    )
    return f'"{escaped}"'


def render_env_file(plan: NodePlan) -> str:
    """``/etc/podsec/u7s/config/env``: the PATH line of the original's ENV template, then the
    U7S_* variables. It holds the join token and certificate key: write it 0600."""
    lines = ["# written by podsec u7s kubeadm; the u7s units and scripts read it", ENV_PATH]
    lines += [f"{k}={_quote(v)}" for k, v in plan.env.items()]
    return "\n".join(lines) + "\n"


def parse_env_file(text: str) -> dict[str, str]:
    """Read an env file written by :func:`render_env_file` back (for tests and restarts)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _eq, value = line.partition("=")
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out[key] = value
    return out


def kubeadm_argv(plan: NodePlan, config_path: str, kubeadm: str = "kubeadm") -> list[str]:
    """The real kubeadm's argv inside the namespace."""
    command = "init" if plan.role == "init" else "join"
    argv = [kubeadm, command, *plan.kubeadm_args, "--config", config_path]
    if plan.skip_phases:
        argv.append("--skip-phases=" + ",".join(plan.skip_phases))
    return argv


def flannel_manifest(plan: NodePlan) -> str:
    """kube-flannel.yml for this plan (images on the chosen registry, the plan's pod CIDR)."""
    refs = {images.component(r): r for r in plan.images}
    if plan.cni != "flannel" or "flannel" not in refs or "flannel-cni-plugin" not in refs:
        raise UsageError(_("this node does not use flannel (CNI {cni})").format(cni=plan.cni))
    return images.flannel_manifest(refs["flannel"], refs["flannel-cni-plugin"], plan.pod_cidr)


def retag_pairs(plan: NodePlan) -> list[tuple[str, str]]:
    """(pulled image, name kubeadm expects) for images substituted by U7S_SETAVAILABLEIMAGES."""
    pairs = []
    for item in plan.env.get("U7S_RETAG_IMAGES", "").split():
        pulled, _eq, expected = item.partition("=")
        if pulled and expected:
            pairs.append((pulled, expected))
    return pairs
