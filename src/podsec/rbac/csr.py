"""The CertificateSigningRequest round trip: create, approve, wait, fetch — and always delete.

The CSR object gets a unique name (``podsec-USER-<random>``, labelled ``podsec.alt/user``) and
is deleted in every outcome the process lives through. A run that cannot (killed, or the API
server gone between the create and the delete) leaves it behind; the next run for the same
user removes it first (:func:`remove_stale`), under a host-wide lock that keeps two runs of
this host from issuing at once (:func:`podsec.rbac.issue` holds it). Only names of exactly
podsec's form for that user are removed.

Kubernetes < 1.22 does not know ``spec.expirationSeconds``: a 1.20 API server drops the
field and the signer issues for ``--cluster-signing-duration`` (default one year). Newer
signers cap the request at that duration too. :func:`issue` returns what was actually
issued; the caller compares it with what was asked.
"""

from __future__ import annotations

import base64
import re
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
    try:
        # inside the try: a create whose answer is lost may still have made the object
        api.request("POST", path(CERTS, "certificatesigningrequests"), body)
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


def stale(api: Client, user: str) -> list[str]:
    """The CSR objects an earlier run for ``user`` left behind: labelled for the user and
    named exactly as :func:`issue` names them (``podsec-USER-`` and 8 hex digits)."""
    listing = api.get(
        path(CERTS, "certificatesigningrequests"),
        {"labelSelector": f"podsec.alt/user={_label(user)}"},
    )
    form = re.compile(re.escape(f"podsec-{user}-") + "[0-9a-f]{8}")
    names = []
    for item in (listing or {}).get("items") or []:
        name = str((item.get("metadata") or {}).get("name") or "")
        if len(name) <= 253 and form.fullmatch(name):
            names.append(name)
    return sorted(names)


def remove_stale(api: Client, user: str) -> list[str]:
    """Delete what :func:`stale` finds (the caller holds the issuing lock); the names."""
    removed = []
    for name in stale(api, user):
        try:
            api.request("DELETE", path(CERTS, "certificatesigningrequests", name))
        except APIError as exc:
            if exc.status != 404:
                raise
        removed.append(name)
    return removed


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
