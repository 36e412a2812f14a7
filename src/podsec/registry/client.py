"""A small OCI distribution (registry v2) client over plain HTTP, stdlib only.

registry.local is a plain-HTTP docker-registry without authentication (as in the original),
so no token dance is needed. The manifest digest returned is the sha256 of the raw manifest
bytes — what simple signatures sign (``Docker-Content-Digest``).
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from podsec.errors import NotFoundError, PodsecError
from podsec.i18n import _

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)


class RegistryError(PodsecError):
    """The registry could not be reached or answered with an error."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RegistryClient:
    def __init__(self, base_url: str, timeout: float = 30.0):
        if "://" not in base_url:
            base_url = f"http://{base_url}"
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

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
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                body = resp.read()
                return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, body)
        except urllib.error.HTTPError as exc:
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

    def _json(self, path: str) -> Any:
        resp = self._request("GET", path)
        assert resp is not None
        return json.loads(resp.body)

    # -------------------------------------------------------------------- reading
    def ping(self) -> bool:
        try:
            self._request("GET", "/v2/", ok=(200, 401))
        except RegistryError:
            return False
        return True

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

    def tags(self, repo: str) -> list[str]:
        resp = self._request("GET", f"/v2/{repo}/tags/list", missing_ok=True)
        if resp is None:
            return []
        return list(json.loads(resp.body).get("tags") or [])

    def manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]:
        """(raw manifest bytes, digest, media type); NotFoundError when absent."""
        resp = self._request(
            "GET",
            f"/v2/{repo}/manifests/{ref}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
            missing_ok=True,
        )
        if resp is None:
            raise NotFoundError(_("{repo}:{ref} is not in the registry").format(repo=repo, ref=ref))
        digest = digest_of(resp.body)
        return resp.body, digest, resp.headers.get("content-type", "")

    def head_manifest(self, repo: str, ref: str) -> str | None:
        resp = self._request(
            "HEAD",
            f"/v2/{repo}/manifests/{ref}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
            missing_ok=True,
        )
        if resp is None:
            return None
        digest = resp.headers.get("docker-content-digest")
        if digest:
            return digest
        return self.manifest(repo, ref)[1]

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
