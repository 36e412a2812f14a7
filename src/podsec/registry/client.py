"""A small OCI distribution (registry v2) client, stdlib only.

registry.local is a plain-HTTP docker-registry without authentication (as in the original).
Public registries (registry.k8s.io, docker.io, registry.altlinux.org) want an anonymous bearer
token even for reads: a ``401`` with a ``Bearer`` challenge is answered once with a token
from the challenge's realm. :func:`tags` is the one tag listing (the node's image checks and
``save-k8s``' U7S_SETAVAILABLEIMAGES). The manifest digest returned is the sha256 of the raw
manifest bytes (a signed schema1 one without its signatures) — what simple signatures
sign; the ``Docker-Content-Digest`` header is never trusted for it.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from podsec.errors import NotFoundError, PodsecError
from podsec.i18n import _
from podsec.trust import manifest as trust_manifest
from podsec.trust import reference

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)


class RegistryError(PodsecError):
    """The registry could not be reached or answered with an error."""


class RegistryUnavailable(RegistryError):
    """The registry could not be asked (network, TLS, an HTTP error other than 404)."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def base_url(host: str) -> str:
    """``http://`` or ``https://`` + host, by :func:`reference.plain_http`."""
    if host == "docker.io":
        host = "registry-1.docker.io"
    return f"{'http' if reference.plain_http(host) else 'https'}://{host}"


class RegistryClient:
    def __init__(self, base_url: str, timeout: float = 30.0, *, tls_verify: bool = True):
        if "://" not in base_url:
            base_url = f"http://{base_url}"
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._context: ssl.SSLContext | None = None
        if not tls_verify:
            self._context = ssl.create_default_context()
            self._context.check_hostname = False
            self._context.verify_mode = ssl.CERT_NONE
        self._token: str | None = None

    # -------------------------------------------------------------------- plumbing
    def _request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
        missing_ok: bool = False,
    ) -> Response | None:
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
        if self._token:
            req.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._context) as resp:  # noqa: S310
                body = resp.read()
                return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, body)
        except urllib.error.HTTPError as exc:
            if exc.code == 401 and self._token is None and 401 not in ok:
                token = self._bearer_token(exc.headers.get("WWW-Authenticate", ""))
                if token:
                    self._token = token
                    return self._request(
                        method, path, data=data, headers=headers, ok=ok, missing_ok=missing_ok
                    )
            if exc.code == 404 and missing_ok:
                return None
            if exc.code in ok:
                return Response(
                    exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()
                )
            detail = exc.read()[:300].decode(errors="replace").strip()
            raise RegistryError(
                _("{method} {url}: HTTP {code} {detail}").format(
                    method=method, url=url, code=exc.code, detail=detail
                )
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise RegistryError(
                _("cannot reach the registry at {url}: {err}").format(
                    url=self.base_url, err=getattr(exc, "reason", exc)
                ),
                hint=_("is registry.local running (podsec services status)?"),
            ) from exc

    def _bearer_token(self, challenge: str) -> str | None:
        """An anonymous token for ``Bearer realm="…",service="…",scope="…"``."""
        if not challenge.lower().startswith("bearer "):
            return None
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", None)
        if not realm:
            return None
        url = realm + "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout, context=self._context) as resp:  # noqa: S310
                data = json.loads(resp.read().decode())
        except (urllib.error.URLError, OSError, ValueError):
            return None
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        return str(token) if token else None

    def _json(self, path: str) -> Any:
        resp = self._request("GET", path)
        assert resp is not None
        return json.loads(resp.body)

    # -------------------------------------------------------------------- reading
    def catalog(self) -> list[str]:
        """All repositories (follows ``Link`` pagination)."""
        repos: list[str] = []
        path: str | None = "/v2/_catalog?n=1000"
        while path:
            resp = self._request("GET", path)
            assert resp is not None
            repos += json.loads(resp.body).get("repositories") or []
            path = _next_link(resp.headers.get("link"))
        return repos

    def tags(self, repo: str) -> list[str] | None:
        """The tags of ``repo``; None when the registry has no such repository (404)."""
        resp = self._request("GET", f"/v2/{repo}/tags/list", missing_ok=True)
        if resp is None:
            return None
        try:
            found = json.loads(resp.body).get("tags") or []
        except (ValueError, AttributeError) as exc:
            raise RegistryError(
                _("{url}: not a registry answer").format(url=f"{self.base_url}/v2/{repo}/tags/list")
            ) from exc
        return [str(t) for t in found]

    def manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]:
        """(raw manifest bytes, digest, media type); NotFoundError when absent.

        The digest is computed from the bytes as containers/image does (a signed schema1
        manifest without its signatures), never taken from ``Docker-Content-Digest``."""
        resp = self._request(
            "GET",
            f"/v2/{repo}/manifests/{ref}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
            missing_ok=True,
        )
        if resp is None:
            raise NotFoundError(_("{repo}:{ref} is not in the registry").format(repo=repo, ref=ref))
        digest = trust_manifest.digest(resp.body)
        return resp.body, digest, resp.headers.get("content-type", "")

    def head_manifest(self, repo: str, ref: str) -> str | None:
        """The manifest digest of ``repo:ref`` (None when absent), computed from the
        manifest bytes: a registry's ``Docker-Content-Digest`` header is not trusted."""
        try:
            return self.manifest(repo, ref)[1]
        except NotFoundError:
            return None

    def blob(self, repo: str, digest: str) -> bytes:
        resp = self._request("GET", f"/v2/{repo}/blobs/{digest}", missing_ok=True)
        if resp is None:
            raise NotFoundError(
                _("blob {digest} is not in {repo}").format(digest=digest, repo=repo)
            )
        return resp.body

    def has_blob(self, repo: str, digest: str) -> bool:
        return self._request("HEAD", f"/v2/{repo}/blobs/{digest}", missing_ok=True) is not None

    # -------------------------------------------------------------------- writing
    def put_blob(self, repo: str, data: bytes) -> str:
        """Monolithic upload (POST then PUT); returns the digest. Skips existing blobs."""
        digest = digest_of(data)
        if self.has_blob(repo, digest):
            return digest
        resp = self._request("POST", f"/v2/{repo}/blobs/uploads/", data=b"", ok=(202,))
        assert resp is not None
        location = resp.headers.get("location", "")
        if not location.startswith("http"):
            location = f"{self.base_url}{location}"
        sep = "&" if "?" in location else "?"
        self._request(
            "PUT",
            f"{location}{sep}digest={urllib.parse.quote(digest)}",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            ok=(201,),
        )
        return digest

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> str:
        resp = self._request(
            "PUT",
            f"/v2/{repo}/manifests/{ref}",
            data=data,
            headers={"Content-Type": media_type},
            ok=(201,),
        )
        assert resp is not None
        return resp.headers.get("docker-content-digest") or digest_of(data)

    def delete_manifest(self, repo: str, digest: str) -> None:
        self._request("DELETE", f"/v2/{repo}/manifests/{digest}", ok=(202,))


def _next_link(header: str | None) -> str | None:
    """``</v2/_catalog?last=x&n=100>; rel="next"`` → the path."""
    if not header or 'rel="next"' not in header:
        return None
    start, end = header.find("<"), header.find(">")
    return header[start + 1 : end] if 0 <= start < end else None


def tags(repository: str, *, timeout: float = 15.0, tls_verify: bool = True) -> list[str] | None:
    """Tags of ``host/path/name`` (``registry.local/p10/pause``); None when the registry has
    no such repository; :class:`RegistryUnavailable` when the registry cannot be asked.
    ``tls_verify=False`` accepts any certificate and, like ``skopeo --tls-verify=false``,
    falls back to plain HTTP when HTTPS fails."""
    host, _sep, path = repository.partition("/")
    urls = [base_url(host)]
    if not tls_verify and urls[0].startswith("https://"):
        urls.append(f"http://{host}")
    first: RegistryError | None = None
    for url in urls:
        try:
            return RegistryClient(url, timeout=timeout, tls_verify=tls_verify).tags(path)
        except RegistryError as exc:
            first = first or exc
    assert first is not None
    raise RegistryUnavailable(first.message, hint=first.hint) from first
