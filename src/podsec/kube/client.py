"""One Kubernetes API client, one error hierarchy.

Reads — bulk ``GET`` for ``rbac roles``/``who-can``, ``list`` and ``watch`` for the port-sync
daemon, ``/readyz`` for a starting node — use ``http.client`` with the kubeconfig's
credentials: importing the official client alone costs ~0.37 s, as much as the whole
``kubectl get … | jq`` pipeline those commands must beat (benchmarks/bench_rbac_roles.py), and
its generated ``CoreV1Api`` ~20 MB of the port-sync daemon's 60 MB budget.

Changes (CSRs, approvals, bindings, applied manifests) go through the official ``kubernetes``
client's transport (``ApiClient``: TLS, auth, URL building), imported only then, with plain
JSON bodies: the generated models of a new client are stricter than a 1.20 server's objects,
so podsec sends and reads dicts.

Every error status becomes one exception, built in one place (:func:`check_response`, as
kopf's): :class:`APIError` → :class:`APIClientError` (:class:`APIUnauthorizedError` 401,
:class:`APIForbiddenError` 403, :class:`APINotFoundError` 404, :class:`APIConflictError` 409,
:class:`APIGoneError` 410) or :class:`APIServerError` (5xx); a server that cannot be reached is
:class:`Unreachable`.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from podsec.errors import PodsecError
from podsec.i18n import _
from podsec.kube.kubeconfig import Connection

DEFAULT_TIMEOUT = 15.0
RBAC = "/apis/rbac.authorization.k8s.io/v1"
CERTS = "/apis/certificates.k8s.io/v1"


class APIError(PodsecError):
    """The API server answered with an error status."""

    def __init__(self, message: str, status: int, reason: str = "", hint: str | None = None):
        super().__init__(message, hint=hint)
        self.status = status
        self.reason = reason


class APIClientError(APIError):
    """A 4xx answer: the request was refused."""


class APIServerError(APIError):
    """A 5xx answer: the server failed."""


class APIUnauthorizedError(APIClientError):
    """401: the credentials were not accepted."""


class APIForbiddenError(APIClientError):
    """403: this identity may not do that."""


class APINotFoundError(APIClientError):
    """404: no such object (or API)."""


class APIConflictError(APIClientError):
    """409: another writer changed the object first (or it exists already)."""


class APIGoneError(APIClientError):
    """410: the resourceVersion is too old to watch from."""


_BY_STATUS: dict[int, type[APIError]] = {
    401: APIUnauthorizedError,
    403: APIForbiddenError,
    404: APINotFoundError,
    409: APIConflictError,
    410: APIGoneError,
}


class Unreachable(PodsecError):
    """The API server cannot be reached (network, TLS)."""


def check_response(status: int, body: bytes, method: str, url: str) -> None:
    """Raise the :class:`APIError` of an error status (the one place they are built)."""
    if status < 400:
        return
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
    cls = _BY_STATUS.get(status) or (
        APIClientError if status < 500 else APIServerError if status < 600 else APIError
    )
    raise cls(text, status, reason or ("NotFound" if status == 404 else ""), hint)


class APIMalformedError(APIError):
    """A success status whose body is not the JSON document asked for (a proxy's HTML page,
    a truncated answer, bytes that are not UTF-8)."""


def decode(body: bytes, method: str, url: str, status: int = 200) -> Any:
    """The JSON document of a successful answer, bounded like a config file (the readers'
    limits); anything else is an :class:`APIMalformedError` naming the request."""
    from podsec import readers

    try:
        return readers.parse_json(body, f"{method} {url}")
    except readers.FileFormatError as exc:
        raise APIMalformedError(
            _("the API server answered {method} {url} with a non-JSON body ({problem})").format(
                method=method, url=url, problem=exc.problem
            ),
            status,
            hint=_("is the kubeconfig's server a Kubernetes API server (not a proxy page)?"),
        ) from None


def _root_cause(exc: BaseException) -> BaseException:
    """The system error under urllib3's wrappers (MaxRetryError → NewConnectionError or
    ProtocolError → ConnectionRefusedError…): what the one-line message names."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.strerror:
            return exc
        inner = getattr(exc, "reason", None)  # MaxRetryError
        if not isinstance(inner, BaseException):
            args = [a for a in exc.args if isinstance(a, BaseException)]  # ProtocolError
            inner = args[-1] if args else exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    return exc


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


class Client:
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

    def __enter__(self) -> Client:
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
        cause = _root_cause(exc)
        return Unreachable(
            _("cannot reach the Kubernetes API at {server}: {err}").format(
                server=self.conn.server, err=getattr(cause, "strerror", None) or cause
            ),
            hint=_(
                "check that the cluster is running and the kubeconfig ({source}) names it"
            ).format(source=self.conn.source or "?"),
        )

    def _headers(self, accept: str = "application/json") -> dict[str, str]:
        headers = {"Accept": accept}
        if self.conn.token:
            headers["Authorization"] = f"Bearer {self.conn.token}"
        return headers

    def _full(self, url: str, query: dict[str, str] | None) -> str:
        return self._prefix + url + ("?" + urlencode(query) if query else "")

    def get_bytes(
        self, url: str, query: dict[str, str] | None = None, accept: str = "application/json"
    ) -> bytes:
        """GET ``url``'s body (raises :class:`APIError`/:class:`Unreachable`)."""
        full = self._full(url, query)
        headers = self._headers(accept)
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
        check_response(resp.status, body, "GET", url)
        return body

    def get(self, url: str, query: dict[str, str] | None = None) -> Any:
        """GET a JSON document (raises :class:`APIError`/:class:`Unreachable`)."""
        return decode(self.get_bytes(url, query), "GET", url)

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
        except APINotFoundError:
            return None

    def ready(self) -> bool:
        """Whether ``/readyz`` answers ok (an API server that is up and serving)."""
        try:
            return self.get_bytes("/readyz", accept="text/plain").strip() == b"ok"
        except (APIError, Unreachable):
            return False

    def watch(
        self, url: str, query: dict[str, str] | None = None, *, seconds: int = 60
    ) -> Iterator[dict[str, Any]]:
        """Watch events (``{"type": …, "object": {…}}``) of ``url`` until the server ends the
        watch (``timeoutSeconds``); its own connection, read line by line."""
        full = self._full(url, {**(query or {}), "watch": "true", "timeoutSeconds": str(seconds)})
        conn = http.client.HTTPSConnection(
            self._host, self._port, context=self._context(), timeout=seconds + 30
        )
        try:
            try:
                conn.request("GET", full, headers=self._headers())
                resp = conn.getresponse()
                if resp.status >= 400:
                    check_response(resp.status, resp.read(), "GET", url)
                while line := resp.readline():
                    if line.strip():
                        yield decode(line, "WATCH", url)
            except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
                raise self._unreachable(exc) from exc
        finally:
            conn.close()

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
        if not hasattr(client, "param_serialize"):
            return self._request_v22(client, method, url, body, query, headers)
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
        check_response(resp.status, data or b"", method, url)
        return decode(data, method, url, resp.status) if data else None

    def _request_v22(  # noqa: PLR0917 - the arguments of request
        self,
        client: Any,
        method: str,
        url: str,
        body: Any,
        query: dict[str, str] | None,
        headers: dict[str, str],
    ) -> Any:
        """:meth:`request` through the client before v29 (Debian 12 has 22.6: no
        ``param_serialize``; ``call_api`` raises ApiException on an error status)."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        if body is not None and "json" not in headers["Content-Type"]:
            # its REST layer encodes only JSON content types (server-side apply is
            # apply-patch+yaml, of which JSON is a valid document)
            body = json.dumps(body)
        try:
            resp = client.call_api(
                url,
                method,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"] if self.conn.token else [],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=self.timeout,
            )
            status, data = resp.status, resp.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unreachable(exc) from exc
        except ApiException as exc:
            if not exc.status:  # TLS and connection failures come as status 0
                raise self._unreachable(exc) from exc
            status, data = exc.status, exc.body or b""
            if isinstance(data, str):
                data = data.encode()
        check_response(status, data or b"", method, url)
        return json.loads(data) if data else None

    def retry_conflicts(self, action: Callable[[], Any], attempts: int = 5) -> Any:
        """Run a read-modify-write ``action`` again when another writer got there first."""
        for attempt in range(attempts):
            try:
                return action()
            except APIConflictError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")
