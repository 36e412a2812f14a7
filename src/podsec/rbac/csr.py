"""The CertificateSigningRequest round trip: create, approve, wait, fetch — and always delete.

The CSR object gets a unique name (``podsec-USER-<random>``) so concurrent runs never delete
each other's requests, and it is deleted in every outcome: no orphaned CSR is left behind.

Kubernetes < 1.22 does not know ``spec.expirationSeconds``: a 1.20 API server drops the
field and the signer issues for ``--cluster-signing-duration`` (default one year). Newer
signers cap the request at that duration too. :func:`issue` returns what was actually
issued; the caller compares it with what was asked.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass

from podsec.errors import PodsecError
from podsec.i18n import _
from podsec.kube.client import CERTS, APIError, Client, path
from podsec.progress import NULL_PROGRESS, Progress

SIGNER = "kubernetes.io/kube-apiserver-client"
POLL_INTERVAL = 0.2


class CsrError(PodsecError):
    """The cluster denied or did not sign the request."""


@dataclass(frozen=True)
class Issued:
    name: str
    cert_pem: bytes


def _conditions(obj: dict[str, object]) -> list[dict[str, str]]:
    status = obj.get("status") or {}
    assert isinstance(status, dict)
    conds = status.get("conditions") or []
    return [c for c in conds if isinstance(c, dict)]


def issue(
    api: Client,
    user: str,
    request_pem: bytes,
    *,
    expiration: int | None,
    timeout: float = 60.0,
    approve: bool = True,
    progress: Progress = NULL_PROGRESS,
) -> Issued:
    name = f"podsec-{user}-{secrets.token_hex(4)}"[:253]
    spec: dict[str, object] = {
        "request": base64.b64encode(request_pem).decode(),
        "signerName": SIGNER,
        "usages": ["client auth"],
    }
    if expiration is not None:
        spec["expirationSeconds"] = expiration
    body = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name, "labels": {"podsec.alt/user": _label(user)}},
        "spec": spec,
    }
    url = path(CERTS, "certificatesigningrequests", name)
    progress.start(_("certificate request"))
    api.request("POST", path(CERTS, "certificatesigningrequests"), body)
    try:
        if approve:
            _approve(api, url)
        cert = _wait(api, url, name, timeout)
    finally:
        try:
            api.request("DELETE", url)
        except APIError as exc:
            if exc.status != 404:
                raise
    progress.finish(_("certificate request"))
    return Issued(name, cert)


def _label(user: str) -> str:
    """A label value (63 chars of [A-Za-z0-9_.-]) naming the user, for `kubectl get csr -l`."""
    text = "".join(c if c.isalnum() or c in "-_." else "_" for c in user)[:63]
    return text.strip("-_.") or "user"


def _approve(api: Client, url: str) -> None:
    def attempt() -> None:
        obj = api.request("GET", url)
        conds = [c for c in _conditions(obj) if c.get("type") != "Approved"]
        conds.append(
            {
                "type": "Approved",
                "status": "True",
                "reason": "PodsecApprove",
                "message": "approved by podsec rbac create-kubeconfig",
            }
        )
        obj.setdefault("status", {})["conditions"] = conds
        api.request("PUT", url + "/approval", obj)

    api.retry_conflicts(attempt)


def _wait(api: Client, url: str, name: str, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        obj = api.request("GET", url)
        for cond in _conditions(obj):
            if cond.get("type") in ("Denied", "Failed") and cond.get("status", "True") == "True":
                raise CsrError(
                    _("the certificate request {name} was {state}: {why}").format(
                        name=name,
                        state=_("denied") if cond["type"] == "Denied" else _("not signed"),
                        why=cond.get("message") or cond.get("reason") or "-",
                    )
                )
        cert = (obj.get("status") or {}).get("certificate")
        if cert:
            return base64.b64decode(cert)
        if time.monotonic() >= deadline:
            raise CsrError(
                _("the certificate request {name} was not signed within {seconds:g} s").format(
                    name=name, seconds=timeout
                ),
                hint=_(
                    "is kube-controller-manager running with --cluster-signing-cert-file and "
                    "--cluster-signing-key-file?"
                ),
            )
        time.sleep(POLL_INTERVAL)
