"""What a control plane gets once ``kubeadm init`` succeeded, through the API as the cluster
admin (admin.conf): kube-proxy's rights, the flannel network, the signed-images webhook."""

from __future__ import annotations

import time
from typing import Any

from podsec.host import files
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.kube import apply, kubeconfig
from podsec.kube.client import RBAC, APIError, Client, Unreachable, path
from podsec.names import ADMIN_CONF
from podsec.progress import Progress
from podsec.u7s import render
from podsec.u7s.layout import Layout
from podsec.u7s.lifecycle import NodeError
from podsec.u7s.plan import NodePlan

PROXIER_BINDING = "podsec-u7s-node-proxier"


def admin_client(host: Host, timeout: float = 60) -> Client:
    """The API as the cluster admin (admin.conf), from the host."""
    conn = kubeconfig.resolve(host, host.path(ADMIN_CONF), admin_conf=False)
    return Client(conn, timeout=timeout)


def wait_api(host: Host, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    with admin_client(host, timeout=10) as api:
        while True:
            try:
                if api.get_bytes("/readyz", accept="text/plain").strip() == b"ok":
                    return
                err = _("not ready")
            except (APIError, Unreachable) as exc:
                err = exc.message
            if time.monotonic() > deadline:
                raise NodeError(
                    _("the API server did not become ready: {err}").format(err=err[-200:])
                )
            time.sleep(1)


def ensure_proxier_binding(host: Host) -> None:
    """kube-proxy runs from the supervisor with the node's credentials (addon/kube-proxy is
    skipped: its image would need iptables), so nodes get the proxier role."""
    with admin_client(host) as api:
        if api.get_or_none(path(RBAC, "clusterrolebindings", PROXIER_BINDING)) is None:
            api.request("POST", path(RBAC, "clusterrolebindings"), proxier_binding())


def proxier_binding() -> dict[str, Any]:
    """``kubectl create clusterrolebinding … --clusterrole=system:node-proxier
    --group=system:nodes``."""
    rbac = "rbac.authorization.k8s.io"
    return {
        "apiVersion": f"{rbac}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": PROXIER_BINDING},
        "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": "system:node-proxier"},
        "subjects": [{"apiGroup": rbac, "kind": "Group", "name": "system:nodes"}],
    }


def register_admission(host: Host, plan: NodePlan, layout: Layout, progress: Progress) -> None:
    """Register the signed-images webhook (kube-system exempt, see podsec.u7s.admission)."""
    from podsec.u7s import admission

    progress.start("admission")
    ca = (host.path(str(layout.admission_dir)) / "ca.crt").read_bytes()
    url = f"https://{plan.advertise_address}:{admission.PORT}/validate"
    with admin_client(host) as api:
        # `kubectl label --overwrite namespace kube-system …`
        api.request(
            "PATCH",
            path("/api/v1/namespaces", "kube-system"),
            {"metadata": {"labels": {admission.SKIP_LABEL: "skip"}}},
            content_type="application/merge-patch+json",
        )
        apply.apply(api, [admission.registration(url, ca)])
    progress.finish("admission")


FLANNEL_MANIFEST = "/etc/podsec/u7s/manifests/kube-flannel.yml"


def apply_flannel(host: Host, plan: NodePlan, progress: Progress, timeout: float = 120) -> None:
    """Apply the flannel manifest (kept outside kubelet's static-pod dir), retrying until the
    API accepts it or ``timeout``."""

    text = render.flannel_manifest(plan)
    files.atomic_write(host.path(FLANNEL_MANIFEST), text)
    objects = apply.documents(text)
    progress.start("flannel")
    deadline = time.monotonic() + timeout
    with admin_client(host) as api:
        while True:
            try:
                apply.apply(api, objects)
                break
            except (APIError, Unreachable) as exc:
                if time.monotonic() > deadline:
                    raise NodeError(
                        _("applying {path} failed: {err}").format(
                            path=FLANNEL_MANIFEST, err=exc.message[-200:]
                        )
                    ) from exc
            time.sleep(2)
    progress.finish("flannel")
