"""Talking to the Kubernetes API.

Changes (CSRs, approvals, bindings) go through the official ``kubernetes`` client's transport
(``ApiClient``: TLS, auth, URL building) with plain JSON bodies: the generated models of a
new client are stricter than a 1.20 server's objects, so podsec sends and reads dicts.

Bulk reads for ``roles`` and ``who-can`` use :meth:`Api.get` — ``http.client`` with the same
credentials — because importing the official client alone costs ~0.37 s, as much as the whole
``kubectl get … | jq`` pipeline these commands must beat (benchmarks/bench_rbac_roles.py).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from podsec.errors import PodsecError
from podsec.i18n import _
from podsec.rbac.kubeconfig import Connection

DEFAULT_TIMEOUT = 15.0
RBAC = "/apis/rbac.authorization.k8s.io/v1"
CERTS = "/apis/certificates.k8s.io/v1"


class ApiError(PodsecError):
    """The API server answered with an error status."""

    def __init__(self, message: str, status: int, reason: str = "", hint: str | None = None):
        super().__init__(message, hint=hint)
        self.status = status
        self.reason = reason


class Unreachable(PodsecError):
    """The API server cannot be reached (network, TLS)."""


def path(*segments: str) -> str:
    """Join URL path segments, quoting each (role names may hold ':')."""
    return "/".join(quote(s, safe=":") if i else s for i, s in enumerate(segments))


@dataclass
class _Creds:
    """Client credentials as paths for the TLS libraries (they read only files).

    On Linux they are anonymous memory files (``memfd``, reached as ``/proc/self/fd/N``): a
    key never touches a disk and nothing is left behind even if the process is killed.
    Elsewhere a private temp dir (0700, files 0600) is used and removed by :meth:`close`.
    """

    directory: Path | None = None
    fds: list[int] = field(default_factory=list)
    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    @classmethod
    def write(cls, conn: Connection) -> _Creds:
        creds = cls()
        if not (conn.ca_pem or conn.cert_pem):
            return creds
        memfd = getattr(os, "memfd_create", None)

        def put(name: str, data: bytes | None) -> str | None:
            if data is None:
                return None
            if memfd is not None:
                fd = memfd(name, os.MFD_CLOEXEC)  # never inherited by a child
                os.write(fd, data)
                creds.fds.append(fd)
                return f"/proc/self/fd/{fd}"
            if creds.directory is None:
                creds.directory = Path(tempfile.mkdtemp(prefix="podsec-rbac-"))  # 0700
            target = creds.directory / name
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return str(target)

        creds.ca, creds.cert, creds.key = (
            put("ca.crt", conn.ca_pem),
            put("client.crt", conn.cert_pem),
            put("client.key", conn.key_pem),
        )
        return creds

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def _status_message(status: int, body: bytes, method: str, url: str) -> ApiError:
    reason, message = "", ""
    try:
        data = json.loads(body)
        reason, message = str(data.get("reason", "")), str(data.get("message", ""))
    except (ValueError, AttributeError):
        message = body.decode(errors="replace").strip()[:200]
    hint = None
    if status == 401:
        hint = _("the credentials in the kubeconfig were not accepted (expired or revoked?)")
    elif status == 403:
        hint = _("use an administrator's kubeconfig (--kubeconfig)")
    text = _("API request {method} {url} failed ({status}): {message}").format(
        method=method, url=url, status=status, message=message or reason
    )
    if status == 404:
        return ApiError(text, status, reason or "NotFound", hint)
    return ApiError(text, status, reason, hint)


class Api:
    """One API server, one identity. Use as a context manager (temp credentials)."""

    def __init__(self, conn: Connection, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.conn = conn
        self.timeout = timeout
        url = urlsplit(conn.server)
        self._host = url.hostname or ""
        self._port = url.port or 443
        self._prefix = url.path.rstrip("/")
        self._creds = _Creds.write(conn)
        self._ssl: ssl.SSLContext | None = None
        self._local = threading.local()
        self._official: Any = None

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._official is not None:
            self._official.close()
            self._official = None
        self._creds.close()

    # ------------------------------------------------------------------ fast reads
    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = ssl.create_default_context(cafile=self._creds.ca)
            if self.conn.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if self._creds.cert and self._creds.key:
                ctx.load_cert_chain(self._creds.cert, self._creds.key)
            self._ssl = ctx
        return self._ssl

    def _connection(self) -> http.client.HTTPSConnection:
        conn: http.client.HTTPSConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(
                self._host, self._port, context=self._context(), timeout=self.timeout
            )
            self._local.conn = conn
        return conn

    def _unreachable(self, exc: BaseException) -> Unreachable:
        return Unreachable(
            _("cannot reach the Kubernetes API at {server}: {err}").format(
                server=self.conn.server, err=getattr(exc, "strerror", None) or exc
            ),
            hint=_(
                "check that the cluster is running and the kubeconfig ({source}) names it"
            ).format(source=self.conn.source or "?"),
        )

    def get(self, url: str, query: dict[str, str] | None = None) -> Any:
        """GET a JSON document (raises ApiError/Unreachable)."""
        full = self._prefix + url + ("?" + urlencode(query) if query else "")
        headers = {"Accept": "application/json"}
        if self.conn.token:
            headers["Authorization"] = f"Bearer {self.conn.token}"
        for attempt in (0, 1):  # a kept-alive connection the server closed: retry once
            conn = self._connection()
            try:
                conn.request("GET", full, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                conn.close()
                self._local.conn = None
                if attempt:
                    raise self._unreachable(exc) from exc
            except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
                conn.close()
                self._local.conn = None
                raise self._unreachable(exc) from exc
        if resp.status >= 400:
            raise _status_message(resp.status, body, "GET", url)
        return json.loads(body)

    def get_many(self, urls: Iterable[str]) -> list[Any]:
        """GET several documents in parallel (one connection per worker thread)."""
        todo = list(urls)
        if len(todo) <= 1:
            return [self.get(u) for u in todo]
        with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
            return list(pool.map(self.get, todo))

    def get_or_none(self, url: str) -> Any:
        try:
            return self.get(url)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    # ------------------------------------------------------------------ changes
    def _client(self) -> Any:
        if self._official is None:
            from kubernetes import client

            cfg = client.Configuration()
            cfg.host = self.conn.server
            cfg.verify_ssl = not self.conn.insecure
            cfg.ssl_ca_cert = self._creds.ca
            cfg.cert_file = self._creds.cert
            cfg.key_file = self._creds.key
            cfg.retries = 0
            if self.conn.token:
                cfg.api_key = {"authorization": self.conn.token}
                cfg.api_key_prefix = {"authorization": "Bearer"}
            self._official = client.ApiClient(cfg)
        return self._official

    def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """A JSON request through the official client; returns the decoded answer."""
        import urllib3

        client = self._client()
        headers = {"Accept": "application/json", "Content-Type": content_type}
        _method, full, headers, _body, _post = client.param_serialize(
            method=method,
            resource_path=url,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"] if self.conn.token else [],
        )
        try:
            resp = client.call_api(
                method, full, header_params=headers, body=_body, _request_timeout=self.timeout
            )
            data = resp.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unreachable(exc) from exc
        except Exception as exc:  # the client wraps TLS failures in ApiException(status=0)
            if getattr(exc, "status", None) == 0:
                raise self._unreachable(exc) from exc
            raise
        if resp.status >= 400:
            raise _status_message(resp.status, data or b"", method, url)
        return json.loads(data) if data else None

    def retry_conflicts(self, action: Callable[[], Any], attempts: int = 5) -> Any:
        """Run a read-modify-write ``action`` again when another writer got there first."""
        for attempt in range(attempts):
            try:
                return action()
            except ApiError as exc:
                if exc.status != 409 or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")
