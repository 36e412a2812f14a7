"""The revocation authorizer: a SubjectAccessReview webhook that refuses revoked identities.

Kubernetes has no revocation of client certificates: a certificate authenticates until it
expires. kube-apiserver with ``--authorization-mode=Node,Webhook,RBAC`` asks this webhook
before RBAC, and a *deny* from a webhook ends the decision (the union authorizer stops at the
first allow or deny). So the webhook answers:

* **denied** for every request whose user is the common name of a certificate in
  ``revoked.json`` (:mod:`podsec.revocations`) that has not expired yet — whatever groups the
  request carries, so the certificate's groups are refused *for that user only*; the other
  members of those groups never match;
* **no opinion** (``allowed: false, denied: false``) for everyone else: Node and RBAC decide
  as before. The webhook never allows anything.

Requests carry the user's name and groups, not the certificate, so a revocation is keyed by
name: a new certificate for a revoked name is refused as well, until the last revoked
certificate of that name expires (``not_after``; unknown: refused until the record is
removed) — after that the old certificate cannot authenticate, and the name is free again.

What the API server does around it (kube-apiserver 1.20, ``plugin/pkg/authorizer/webhook``):

* it caches answers per request: allowed ones for ``--authorization-webhook-cache-authorized-ttl``
  (never used here: this webhook never allows) and the others — our *deny* and *no opinion*
  alike — for ``--authorization-webhook-cache-unauthorized-ttl``. podsec sets the latter to
  :data:`UNAUTHORIZED_TTL` (0 s): a revocation takes effect on the very next request, at the
  cost of one webhook round trip per request that the Node authorizer does not decide
  (p50 0.55 ms, ~0.2 ms of the webhook's CPU, ``benchmarks/bench_rbac_authz.py``);
* a webhook that cannot be reached is an **error, treated as no opinion**: the request falls
  through to RBAC — *fail-open*, revoked certificates work again while the webhook is down
  (a refused connection fails at once; a hung webhook costs each request up to 30 s, the
  client's timeout). ``podsec monitor check-authz`` goes CRITICAL then;
* members of ``system:masters`` are allowed before any authorization mode is asked (the
  loopback privileged-group authorizer): such a certificate cannot be revoked at all.

If ``revoked.json`` cannot be read the last list read stays in force, and every answer carries
``evaluationError`` (the monitor's probe sees it).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podsec import readers, revocations
from podsec.errors import PodsecError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.names import AUTHZ_DIR, AUTHZ_KUBECONFIG, REVOKED_FILE
from podsec.webhook import server, tls

API_GROUP = "authorization.k8s.io"
VERSIONS = ("v1", "v1beta1")
PATH = "/authorize"
ADDRESS = "127.0.0.1"  # the API server calls the webhook on its own host
PORT = 9444
NAME = "podsec-authz"
CA_NAME = "podsec authorization webhook CA"
WEBHOOK_VERSION = "v1"
AUTHORIZED_TTL = "5m0s"  # kube-apiserver's default; irrelevant, the webhook never allows
UNAUTHORIZED_TTL = "0s"  # denies and no-opinions are never cached: revocation acts at once
PROBE_USER = "podsec:authz-probe"


class AuthzError(PodsecError):
    """The authorization webhook cannot be set up or reached."""


# --------------------------------------------------------------------------- the denylist
class Denylist:
    """``revoked.json`` as the webhook needs it: revoked names with their latest expiry,
    re-read when the file changes (its stat identity, checked on every lookup: ~2 µs)."""

    def __init__(self, path: Path, source: str | None = None) -> None:
        self.path = path
        self.source = source or str(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, ...] | None = None
        self._names: dict[str, list[revocations.Revoked]] = {}
        self.error = ""

    def _current_stamp(self) -> tuple[int, ...]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return ()
        except OSError as exc:
            return (-1, exc.errno or 0)
        return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)

    def _refresh(self) -> None:
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return
        with self._lock:
            if stamp == self._stamp:
                return
            try:
                records = revocations.read(self.path, self.source)
            except (PodsecError, OSError) as exc:
                # keep what was read last: a broken file must not lift revocations
                self.error = exc.message if isinstance(exc, PodsecError) else str(exc)
                self._stamp = stamp
                return
            names: dict[str, list[revocations.Revoked]] = {}
            for rec in records:
                names.setdefault(rec.cn, []).append(rec)
            self._names, self.error, self._stamp = names, "", stamp

    def lookup(self, user: str, now: dt.datetime) -> revocations.Revoked | None:
        """The revoked, unexpired certificate of ``user`` that expires last (one of unknown
        expiry first); None when the name is not refused."""
        self._refresh()
        best: revocations.Revoked | None = None
        best_end: dt.datetime | None = None
        for rec in self._names.get(user, ()):
            end = rec.expires()
            if end is not None and end.tzinfo is None:
                end = end.replace(tzinfo=dt.UTC)
            if end is None:
                return rec
            if end > now and (best_end is None or end > best_end):
                best, best_end = rec, end
        return best


def reason(rec: revocations.Revoked) -> str:
    until = rec.not_after[:19] if rec.not_after else _("its record is removed")
    return _(
        "podsec: the certificate of {user} (serial {serial}) was revoked{at}; requests of "
        "{user} are refused until {until}"
    ).format(
        user=rec.cn,
        serial=rec.serial,
        at=f" {rec.revoked_at[:19]}" if rec.revoked_at else "",
        until=until,
    )


# --------------------------------------------------------------------------- the decision
def review(
    body: dict[str, Any], denylist: Denylist, now: dt.datetime | None = None
) -> dict[str, Any]:
    """The SubjectAccessReview answer (v1 or v1beta1, as asked) for one request."""
    api = body.get("apiVersion")
    if body.get("kind") != "SubjectAccessReview" or api not in {
        f"{API_GROUP}/{v}" for v in VERSIONS
    }:
        raise ValueError(_("not a SubjectAccessReview of {group}").format(group=API_GROUP))
    spec = body.get("spec")
    user = spec.get("user") if isinstance(spec, dict) else None
    status: dict[str, Any] = {"allowed": False}
    if isinstance(user, str) and user:
        rec = denylist.lookup(user, now or dt.datetime.now(dt.UTC))
        if rec is not None:
            status["denied"] = True
            status["reason"] = reason(rec)
    if denylist.error:
        status["evaluationError"] = denylist.error
    return {"apiVersion": api, "kind": "SubjectAccessReview", "status": status}


def serve(cert_dir: Path, listener: socket.socket, denylist: Denylist) -> server.Server:
    """The HTTPS webhook on ``listener`` (call ``serve_forever``)."""

    def decide(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path.split("?", 1)[0] != PATH:
            raise KeyError(path)
        return review(body, denylist)

    return server.https_server(cert_dir, listener, decide)


def host_webhook(
    host: Host, listener: socket.socket | None = None, *, address: str = ADDRESS, port: int = PORT
) -> server.Server:
    """The webhook of ``host``: its revoked.json, its serving certificate in
    :data:`podsec.names.AUTHZ_DIR`, on ``listener`` (default: ``address``:``port``)."""
    if listener is None:
        try:
            listener = socket.create_server((address, port), backlog=128)
        except OSError as exc:
            raise AuthzError(
                _("cannot listen on {address}:{port}: {err}").format(
                    address=address, port=port, err=exc.strerror or exc
                )
            ) from exc
    cert_dir = host.path(AUTHZ_DIR)
    if not (cert_dir / tls.KEY_FILE).is_file():
        listener.close()
        raise AuthzError(
            _("no serving certificate in {path}").format(path=AUTHZ_DIR),
            hint=_("run `podsec rbac enforce-revocation` (or `podsec u7s kubeadm init`)"),
        )
    return serve(cert_dir, listener, Denylist(host.path(REVOKED_FILE), REVOKED_FILE))


# --------------------------------------------------------------------------- configuration
def url(address: str = ADDRESS, port: int = PORT) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{port}{PATH}"


def kubeconfig(webhook_url: str, ca_pem: bytes) -> str:
    """The file kube-apiserver reads (``--authorization-webhook-config-file``): the webhook's
    URL and the CA it must have been signed by (pinned: nothing else is trusted)."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": NAME,
                "cluster": {
                    "server": webhook_url,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": "kube-apiserver", "user": {}}],
        "contexts": [{"name": NAME, "context": {"cluster": NAME, "user": "kube-apiserver"}}],
        "current-context": NAME,
    }
    return json.dumps(doc, indent=2) + "\n"


def install_config(
    directory: Path, *, address: str = ADDRESS, port: int = PORT, uid: int, gid: int
) -> Path:
    """The serving certificate (made once, :mod:`podsec.webhook.tls`) and the webhook
    kubeconfig in ``directory`` (rooted :data:`podsec.names.AUTHZ_DIR`), owned by the account
    the webhook runs as; returns the kubeconfig's path."""
    from podsec.host import files

    files.ensure_dir(directory, mode=0o700, owner=uid, group=gid)
    ca = tls.serving_certificates(
        directory, ca_name=CA_NAME, name=NAME, addresses=[address], uid=uid, gid=gid
    )
    path = directory / Path(AUTHZ_KUBECONFIG).name
    files.atomic_write(path, kubeconfig(url(address, port), ca), mode=0o600, owner=uid, group=gid)
    return path


def with_webhook_mode(modes: str) -> str:
    """``--authorization-mode`` with Webhook before RBAC (after Node): a deny must come
    before RBAC's allow; other modes keep their order."""
    parts = [m.strip() for m in modes.split(",") if m.strip() and m.strip() != "Webhook"]
    at = parts.index("RBAC") if "RBAC" in parts else len(parts)
    parts.insert(at, "Webhook")
    return ",".join(parts)


def apiserver_args(modes: str = "Node,RBAC", config_file: str = AUTHZ_KUBECONFIG) -> dict[str, str]:
    """kube-apiserver's flags (without ``--``) for the webhook, given its current modes."""
    return {
        "authorization-mode": with_webhook_mode(modes),
        "authorization-webhook-config-file": config_file,
        "authorization-webhook-version": WEBHOOK_VERSION,
        "authorization-webhook-cache-authorized-ttl": AUTHORIZED_TTL,
        "authorization-webhook-cache-unauthorized-ttl": UNAUTHORIZED_TTL,
    }


# --------------------------------------------------------------------------- the client
@dataclass(frozen=True)
class Target:
    url: str
    ca_pem: bytes


@dataclass(frozen=True)
class Answer:
    seconds: float
    status: dict[str, Any]


def read_kubeconfig(path: Path, shown: str | None = None) -> Target:
    """The webhook's URL and pinned CA from its kubeconfig (as the API server reads it)."""
    name = shown or str(path)
    text = readers.read_text(path, shown=name)
    if text is None:
        raise AuthzError(
            _("{path} does not exist: the authorization webhook is not set up").format(path=name),
            hint=_("run `podsec rbac enforce-revocation` (or `podsec u7s kubeadm init`)"),
        )
    try:
        doc = readers.parse_json(text, name)  # as podsec writes it (the plugin needs no yaml)
    except PodsecError:
        doc = readers.parse_yaml(text, name)
    try:
        cluster = doc["clusters"][0]["cluster"]
        return Target(cluster["server"], base64.b64decode(cluster["certificate-authority-data"]))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise AuthzError(
            _("{path}: no cluster with a server and certificate-authority-data").format(path=name)
        ) from exc


class Client:
    """A kept-alive HTTPS connection to the webhook, verified against the pinned CA."""

    def __init__(self, target: Target, timeout: float = 5.0) -> None:
        import http.client
        import urllib.parse

        parsed = urllib.parse.urlsplit(target.url)
        if parsed.scheme != "https" or not parsed.hostname:
            raise AuthzError(_("{url}: not an https URL").format(url=target.url))
        ctx = ssl.create_default_context(cadata=target.ca_pem.decode())
        self.path = parsed.path or "/"
        self.conn = http.client.HTTPSConnection(
            parsed.hostname, parsed.port or 443, context=ctx, timeout=timeout
        )

    def close(self) -> None:
        self.conn.close()

    def connect(self) -> None:
        """Open the connection (TCP and the TLS handshake) before a timed question."""
        try:
            self.conn.connect()
        except (OSError, ssl.SSLError) as exc:
            self.conn.close()
            raise AuthzError(
                _("the authorization webhook does not answer: {err}").format(err=exc)
            ) from exc

    def ask(self, user: str, groups: tuple[str, ...] = (), path: str = "/healthz") -> Answer:
        body = json.dumps(
            {
                "apiVersion": f"{API_GROUP}/{WEBHOOK_VERSION}",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user,
                    "groups": list(groups),
                    "nonResourceAttributes": {"path": path, "verb": "get"},
                },
            }
        ).encode()
        t0 = time.perf_counter()
        try:
            self.conn.request("POST", self.path, body, {"Content-Type": "application/json"})
            resp = self.conn.getresponse()
            data = resp.read()
        except (OSError, ssl.SSLError) as exc:
            self.conn.close()
            raise AuthzError(
                _("the authorization webhook does not answer: {err}").format(err=exc)
            ) from exc
        seconds = time.perf_counter() - t0
        if resp.status != 200:
            raise AuthzError(
                _("the authorization webhook answered HTTP {code}").format(code=resp.status)
            )
        try:
            doc = json.loads(data)
            status = doc["status"]
            if not isinstance(status, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthzError(
                _("the authorization webhook's answer is not a SubjectAccessReview")
            ) from exc
        return Answer(seconds, status)
