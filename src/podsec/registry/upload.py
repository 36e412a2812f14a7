"""Streaming blob uploads (and cross-repository mounts) to a registry v2.

:class:`podsec.registry.client.RegistryClient` handles manifests and small blobs in memory;
layers of hundreds of megabytes are streamed here straight from the archive's tar stream
into a monolithic ``PUT`` (Content-Length known from the tar header), hashing on the way.
The registry checks the digest as well, so a damaged blob never becomes visible.
"""

from __future__ import annotations

import hashlib
import http.client
import threading
import urllib.parse
from collections.abc import Callable
from typing import IO

from podsec.errors import ValidationError
from podsec.i18n import _
from podsec.registry.client import RegistryError

CHUNK = 1 << 20


class Uploader:
    def __init__(self, base_url: str, timeout: float = 120.0):
        if "://" not in base_url:
            base_url = f"http://{base_url}"
        parsed = urllib.parse.urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self._https = parsed.scheme == "https"
        self._netloc = parsed.netloc
        self._timeout = timeout
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._netloc, timeout=self._timeout)
            self._local.conn = conn
        return conn

    def _reset(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request(method, path, body=body, headers=headers or {})
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except (http.client.HTTPException, OSError) as exc:
                self._reset()
                # a kept-alive connection the server closed: retry once on a new one
                if attempt == 2 or not isinstance(
                    exc, http.client.RemoteDisconnected | BrokenPipeError | ConnectionResetError
                ):
                    raise self._unreachable(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _unreachable(self, exc: BaseException) -> RegistryError:
        return RegistryError(
            _("cannot reach the registry at {url}: {err}").format(url=self.base_url, err=exc),
            hint=_("is registry.local running (podsec services status)? Re-run to resume."),
        )

    def _fail(self, method: str, path: str, status: int, data: bytes) -> RegistryError:
        detail = data[:300].decode(errors="replace").strip()
        return RegistryError(
            _("{method} {url}: HTTP {code} {detail}").format(
                method=method, url=self.base_url + path.split("?", 1)[0], code=status, detail=detail
            )
        )

    def has_blob(self, repo: str, digest: str) -> bool:
        status, _h, _d = self._request("HEAD", f"/v2/{repo}/blobs/{digest}")
        return status == 200

    def mount(self, repo: str, digest: str, from_repo: str) -> bool:
        """Link an existing blob into ``repo`` without sending it; False if not mounted."""
        query = urllib.parse.urlencode({"mount": digest, "from": from_repo})
        status, headers, _d = self._request("POST", f"/v2/{repo}/blobs/uploads/?{query}", b"")
        if status == 201:
            return True
        if status == 202 and headers.get("location"):
            # the registry opened an upload instead: cancel it
            self._request("DELETE", self._path(headers["location"]))
        return False

    def _path(self, location: str) -> str:
        if location.startswith("http"):
            parsed = urllib.parse.urlsplit(location)
            return parsed.path + (f"?{parsed.query}" if parsed.query else "")
        return location

    def upload(
        self,
        repo: str,
        digest: str,
        size: int,
        reader: IO[bytes],
        on_bytes: Callable[[int], None] = lambda n: None,
    ) -> None:
        """Stream ``size`` bytes from ``reader`` as blob ``digest`` of ``repo``.

        Raises ValidationError when the data does not hash to ``digest`` (the registry
        refuses it too), RegistryError when the registry fails or goes away.
        """
        status, headers, data = self._request("POST", f"/v2/{repo}/blobs/uploads/", b"")
        if status != 202 or "location" not in headers:
            raise self._fail("POST", f"/v2/{repo}/blobs/uploads/", status, data)
        location = self._path(headers["location"])
        sep = "&" if "?" in location else "?"
        path = f"{location}{sep}digest={urllib.parse.quote(digest)}"
        conn = self._conn()
        try:
            conn.putrequest("PUT", path)
            conn.putheader("Content-Type", "application/octet-stream")
            conn.putheader("Content-Length", str(size))
            conn.endheaders()
            # a corrupt blob raises before the response: the registry refuses the digest too
            copy_blob(reader, size, digest, conn.send, on_bytes)
            resp = conn.getresponse()
            body = resp.read()
        except (http.client.HTTPException, OSError) as exc:
            self._reset()
            raise self._unreachable(exc) from exc
        except BaseException:
            self._reset()
            raise
        if resp.status != 201:
            raise self._fail("PUT", location, resp.status, body)


def drain(
    reader: IO[bytes], size: int, digest: str, on_bytes: Callable[[int], None] = lambda n: None
) -> None:
    """Read and hash a blob that need not be sent (already in the registry)."""
    copy_blob(reader, size, digest, lambda _chunk: None, on_bytes)


def copy_blob(
    reader: IO[bytes],
    size: int,
    digest: str,
    sink: Callable[[bytes], object],
    on_bytes: Callable[[int], None],
) -> None:
    """Read ``size`` bytes of a blob into ``sink`` and check them against ``digest``."""
    hasher = hashlib.sha256()
    remaining = size
    while remaining:
        chunk = reader.read(min(CHUNK, remaining))
        if not chunk:
            raise ValidationError(
                _("blob {digest}: the archive ended inside it").format(digest=digest)
            )
        hasher.update(chunk)
        sink(chunk)
        remaining -= len(chunk)
        on_bytes(len(chunk))
    if "sha256:" + hasher.hexdigest() != digest:
        raise ValidationError(
            _("blob {digest} in the archive is corrupt (its content does not match)").format(
                digest=digest
            ),
            hint=_("copy the archive again; nothing of this image was published"),
        )
