"""Signed images only, on containerd nodes: a validating admission webhook.

CRI-O verifies images against /etc/containers/policy.json when it pulls; containerd does not.
On containerd nodes every pod is therefore checked at admission: each container image is
resolved to its manifest digest in its registry and evaluated with the same policy and
registries.d that podman/skopeo/CRI-O use (:func:`podsec.trust.verify.check_image`); a pod with
any image the policy does not accept is refused with the policy's reason.

One process as u7s-admin (``podsec u7s admission serve``, :func:`node_webhook`), on the
host's network where the registries and signature servers are, serving the HTTPS webhook the
API server calls (``https://NODE_IP:9443/validate``, TLS with a certificate made here with
``cryptography``) on a port opened inside the node's network namespace and handed over.
Accepted verdicts are cached per image digest (:mod:`podsec.u7s.admission_cache`).

kube-system is exempt (labelled ``podsec.alt/admission=skip``): its control-plane images were
verified by policy when podsec pulled them, and the kubelet must be able to create the
static pods' mirror pods while the webhook itself is down.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podsec.errors import NotFoundError, PodsecError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.u7s import admission_cache
from podsec.webhook import server, tls

if TYPE_CHECKING:
    from podsec.trust.policy import Policy, Requirement
    from podsec.trust.view import TrustView
    from podsec.u7s.layout import Layout

PORT = 9443
NAME = "podsec-u7s-signed-images"
LISTEN_SOCKET = "admission-listen.sock"  # in the node's runtime dir: the port's hand-over
SKIP_LABEL = "podsec.alt/admission"

Verify = Callable[[str], tuple[bool, str]]


class AdmissionError(PodsecError):
    """The admission webhook cannot be set up or reached."""


# --- certificates -----------------------------------------------------------------------


def make_certificates(directory: Path, addresses: list[str], uid: int, gid: int) -> bytes:
    """A CA and a server certificate for the webhook (re-used when present); returns the CA
    certificate (PEM) for the webhook registration's caBundle."""
    return tls.serving_certificates(
        directory,
        ca_name="podsec u7s admission CA",
        name=NAME,
        addresses=addresses,
        uid=uid,
        gid=gid,
    )


# --- the decision -----------------------------------------------------------------------


def pod_images(pod: dict[str, Any]) -> list[str]:
    spec = pod.get("spec") or {}
    out: list[str] = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            image = c.get("image")
            if image and image not in out:
                out.append(image)
    return out


def review(body: dict[str, Any], verify: Verify) -> dict[str, Any]:
    """The AdmissionReview response for a request (pure: ``verify`` decides per image)."""
    request = body.get("request") or {}
    uid = request.get("uid", "")
    allowed, message = True, ""
    obj = request.get("object") or {}
    if request.get("kind", {}).get("kind", "Pod") == "Pod":
        for image in pod_images(obj):
            ok, reason = verify(image)
            if not ok:
                allowed = False
                message = _("image {image} is not signed as the policy requires: {reason}").format(
                    image=image, reason=reason
                )
                break
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        response["status"] = {"code": 403, "reason": "Forbidden", "message": message}
    return {
        "apiVersion": body.get("apiVersion", "admission.k8s.io/v1"),
        "kind": "AdmissionReview",
        "response": response,
    }


def verify_image(host: Host, image: str) -> tuple[bool, str]:
    """Evaluate the host's policy for ``image`` as it is now in its registry (no cache)."""
    return Verifier(host, cache=None)(image)


class Verifier:
    """The webhook's decision: the node's trust view (:func:`podsec.trust.view.effective`,
    re-read when a file changes) and, with a cache, accepted verdicts remembered per digest
    while none of their inputs changed (:mod:`podsec.u7s.admission_cache`)."""

    def __init__(self, host: Host, cache: admission_cache.VerdictCache | None):
        self.host = host
        self.cache = cache
        self._lock = threading.Lock()
        self._keys: tuple[Policy | None, list[Path]] = (None, [])

    def _trust(self) -> tuple[admission_cache.Stamp, TrustView]:
        """The identity of every input (taken first: a change while the view is read makes
        the next request look again) and the trust view."""
        from podsec.trust import view

        policy_path, regd_path = view.paths(self.host, None)
        base = admission_cache.stamp(admission_cache.config_files(policy_path, regd_path))
        trust = view.effective(self.host, None)
        with self._lock:
            if self._keys[0] is not trust.policy:
                named = {self.host.path(k) for r in _requirements(trust.policy) for k in r.keys}
                self._keys = (trust.policy, sorted(named))
            keys = self._keys[1]
        return base + admission_cache.stamp(keys), trust

    def __call__(self, image: str) -> tuple[bool, str]:
        from podsec.registry import client as registry_client
        from podsec.trust import manifest, reference, verify

        try:
            ref = reference.parse(image)
            current, trust = self._trust()
            client = registry_client.RegistryClient(
                registry_client.base_url(ref.domain), timeout=15
            )
            try:
                body = client.manifest(ref.path, ref.digest or ref.tag or "latest")[0]
            except NotFoundError:
                return False, _("{image} is not in its registry").format(image=image)
            # what a signature signs: the digest of these bytes (never Docker-Content-Digest);
            # a tag is resolved on every request, so a moved tag is never served from the cache
            digest = manifest.digest(body)
            if ref.digest is not None and digest != ref.digest:
                return False, _(
                    "{image}: the registry served a manifest with digest {digest}"
                ).format(image=image, digest=digest)
            if self.cache is not None:
                hit = self.cache.get(current, str(ref), digest)
                if hit is not None:
                    return hit.accepted, hit.reason
            verdict = verify.check_image(
                self.host, image, digest, trust.policy, trust.regd, registry=lambda _h: client
            )
            if self.cache is not None:
                self.cache.put(
                    current,
                    str(ref),
                    digest,
                    admission_cache.Verdict(verdict.accepted, verdict.reason),
                )
        except PodsecError as exc:
            return False, exc.message
        except OSError as exc:
            return False, str(exc)
        return verdict.accepted, verdict.reason


def _requirements(pol: Policy) -> list[Requirement]:
    reqs = list(pol.default)
    for scopes in pol.transports.values():
        for scope_reqs in scopes.values():
            reqs.extend(scope_reqs)
    return reqs


# --- servers ------------------------------------------------------------------------------


def webhook_server(cert_dir: Path, listener: socket.socket, verify: Verify) -> server.Server:
    """The HTTPS webhook on ``listener`` (a listening TCP socket; call ``serve_forever``),
    deciding each pod with ``verify``."""

    def decide(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if not path.startswith("/validate"):
            raise KeyError(path)
        return review(body, verify)

    return server.https_server(cert_dir, listener, decide)


def node_webhook(
    host: Host, layout: Layout, *, port: int = PORT, ttl: float = admission_cache.DEFAULT_TTL
) -> server.Server:
    """The signed-images webhook of a containerd node, one process on the host side.

    The API server dials ``NODE_IP:9443`` inside the node's network namespace, while the
    registries and signature servers are reached from the host's: the TCP port is opened in
    the namespace by a short-lived helper (:func:`send_listener`, through nsenter) and handed
    over as a file descriptor, so the verdicts are reached here — one resident process, no
    second hop — with accepted verdicts cached for ``ttl`` seconds (0: none)."""
    listener = listener_from_namespace(layout, port)
    verifier = Verifier(host, admission_cache.VerdictCache(ttl) if ttl > 0 else None)
    return webhook_server(host.path(str(layout.admission_dir)), listener, verifier)


def listener_from_namespace(
    layout: Layout,
    port: int,
    timeout: float = 60.0,
    *,
    address: str = "0.0.0.0",  # noqa: S104 - the API server dials the node IP
    box_name: str = LISTEN_SOCKET,
) -> socket.socket:
    """A TCP socket listening on ``address``:``port`` in the node's network namespace
    (``box_name``: the hand-over socket in the node's runtime dir, one per webhook)."""
    import sys
    import time

    from podsec.host import run as hostrun
    from podsec.u7s import nsenter

    box_path = layout.runtime_dir / box_name
    box_path.unlink(missing_ok=True)
    fds: list[int] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as box:
        box.bind(str(box_path))
        box_path.chmod(0o600)
        box.listen(1)
        box.settimeout(timeout)
        helper = hostrun.spawn(
            nsenter.argv(
                layout,
                [
                    sys.executable,
                    "-m",
                    "podsec.cli.daemon",
                    "admission-listen",
                    f"port={port}",
                    f"address={address}",
                    f"to={box_path}",
                ],
            ),
            new_session=False,
        )
        try:
            conn, _addr = box.accept()
            with conn:
                _msg, fds, _flags, _addr = socket.recv_fds(conn, 64, 1)
        except OSError as exc:
            raise AdmissionError(
                _("cannot open port {port} in the node's namespace: {err}").format(
                    port=port, err=exc
                )
            ) from exc
        finally:
            box_path.unlink(missing_ok=True)
            deadline = time.monotonic() + 10
            while helper.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
    if not fds:
        raise AdmissionError(
            _("cannot open port {port} in the node's namespace: {err}").format(
                port=port, err="no socket received"
            )
        )
    return socket.socket(fileno=fds[0])


def send_listener(port: int, to: Path, address: str = "0.0.0.0") -> None:  # noqa: S104
    """Inside the node's namespaces: listen on ``address``:``port`` and hand the socket to
    ``to``."""
    listener = socket.create_server((address, port), backlog=128)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(to))
            socket.send_fds(conn, [b"listener"], [listener.fileno()])
    finally:
        listener.close()


# --- registration -------------------------------------------------------------------------


def registration(url: str, ca_pem: bytes) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration (pods, CREATE and UPDATE, fail closed)."""
    import base64

    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": NAME},
        "webhooks": [
            {
                "name": "signed-images.podsec.alt",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 30,
                "clientConfig": {
                    "url": url,
                    "caBundle": base64.b64encode(ca_pem).decode(),
                },
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": SKIP_LABEL, "operator": "NotIn", "values": ["skip"]}
                    ]
                },
            }
        ],
    }
