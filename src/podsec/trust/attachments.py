"""Sigstore attachments: signatures stored in the registry next to the image.

As containers/image does with ``use-sigstore-attachments: true`` (registries.d): the
signatures of the image whose manifest digest is ``sha256:<hex>`` are the layers of an OCI
image manifest tagged ``sha256-<hex>.sig`` in the same repository; each layer's media type,
blob and annotations are one signature (``signature.Sigstore``). A missing tag means no
attachments; any other answer that is not an OCI manifest refuses the image.

:func:`read` takes a :class:`Source` — the registry client of :mod:`podsec.registry.client`,
or the stdlib :class:`HttpSource` here for the areas that do not talk to registries
otherwise (the monitoring plugins, the webhook). :func:`updated` is the writer's side: the
attachment manifest and config with new signatures appended (a signature already there is
not added twice), the blobs to upload, as containers/image's
``putSignaturesToSigstoreAttachments`` builds them.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from podsec.errors import NotFoundError, PodsecError
from podsec.i18n import _
from podsec.trust import reference
from podsec.trust.sigstore import Sigstore

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MAX_MANIFEST = 4 << 20  # containers/image's iolimits.MaxManifestBodySize
MAX_SIGNATURE = 4 << 20  # iolimits.MaxSignatureBodySize
TIMEOUT = 15.0


class Source(Protocol):
    def manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]:
        """(body, digest, media type); NotFoundError when the tag does not exist."""
        ...

    def blob(self, repo: str, digest: str) -> bytes: ...


def tag_for(digest: str) -> str:
    """``sigstoreAttachmentTag``: ``sha256:<hex>`` → ``sha256-<hex>.sig``."""
    problem = reference.digest_problem(digest)
    if problem is not None:
        raise PodsecError(
            _("invalid manifest digest {digest!r}: {err}").format(digest=digest, err=problem)
        )
    return digest.replace(":", "-", 1) + ".sig"


def _oci_manifest(body: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PodsecError(_("parsing manifest {ref}: {err}").format(ref=where, err=exc)) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("layers", []), list):
        raise PodsecError(_("parsing manifest {ref}: not an OCI image manifest").format(ref=where))
    return doc


def _descriptor(layer: Any, where: str) -> tuple[str, str, int, dict[str, str]]:
    if not isinstance(layer, dict):
        raise PodsecError(_("parsing manifest {ref}: a layer is not an object").format(ref=where))
    media, digest, size = layer.get("mediaType"), layer.get("digest"), layer.get("size")
    annotations = layer.get("annotations") or {}
    if (
        not isinstance(media, str)
        or not isinstance(digest, str)
        or reference.digest_problem(digest) is not None
        or not isinstance(size, int)
        or not isinstance(annotations, dict)
        or not all(isinstance(v, str) for v in annotations.values())
    ):
        raise PodsecError(_("parsing manifest {ref}: invalid layer descriptor").format(ref=where))
    return media, digest, size, dict(annotations)


def read(source: Source, repo: str, digest: str) -> list[bytes]:
    """The attachments of ``repo``'s image ``digest``, in containers/image's storage form
    (``\\0sigstore-json\\n…``), in manifest order; [] when there are none."""
    tag = tag_for(digest)
    where = f"{repo}:{tag}"
    try:
        body, _digest, media = source.manifest(repo, tag)
    except NotFoundError:
        return []
    if media.split(";")[0].strip() != OCI_MANIFEST:
        raise PodsecError(
            _("unexpected MIME type for sigstore attachment manifest {ref}: {mime!r}").format(
                ref=where, mime=media
            )
        )
    out = []
    for layer in _oci_manifest(body, where).get("layers", []):
        media_type, blob_digest, size, annotations = _descriptor(layer, where)
        if size > MAX_SIGNATURE:
            raise PodsecError(
                _("sigstore attachment {digest} of {ref} is too large ({size} bytes)").format(
                    digest=blob_digest, ref=where, size=size
                )
            )
        payload = source.blob(repo, blob_digest)
        if "sha256:" + hashlib.sha256(payload).hexdigest() != blob_digest or len(payload) != size:
            raise PodsecError(
                _("sigstore attachment {digest} of {ref}: the blob does not match").format(
                    digest=blob_digest, ref=where
                )
            )
        out.append(Sigstore(media_type, payload, annotations).blob())
    return out


@dataclass(frozen=True)
class Update:
    manifest: bytes
    config: bytes
    blobs: tuple[bytes, ...]  # payloads and the config, to upload before the manifest
    added: int


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def updated(manifest: bytes | None, config: bytes | None, signatures: Sequence[Sigstore]) -> Update:
    """The attachment manifest with ``signatures`` appended (``manifest``/``config``: the
    current ones, None when the tag does not exist yet)."""
    doc: dict[str, Any] = (
        _oci_manifest(manifest, "attachment")
        if manifest is not None
        else {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}
    )
    conf: dict[str, Any] = json.loads(config) if config else {}
    if not isinstance(conf, dict):
        conf = {}
    conf.setdefault("architecture", "")
    conf.setdefault("os", "")
    rootfs = conf.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs.setdefault("type", "layers")
    diff_ids = rootfs.setdefault("diff_ids", [])
    layers = list(doc.get("layers") or [])
    blobs: list[bytes] = []
    added = 0
    for sig in signatures:
        digest = _digest(sig.payload)
        present = any(
            _descriptor(layer, "attachment")
            == (sig.mime_type, digest, len(sig.payload), dict(sig.annotations))
            for layer in layers
        )
        if present:
            continue
        layers.append(
            {
                "mediaType": sig.mime_type,
                "digest": digest,
                "size": len(sig.payload),
                "annotations": dict(sig.annotations),
            }
        )
        diff_ids.append(digest)
        blobs.append(sig.payload)
        added += 1
    config_bytes = json.dumps(conf, separators=(",", ":")).encode()
    doc["layers"] = layers
    doc["config"] = {
        "mediaType": OCI_CONFIG,
        "digest": _digest(config_bytes),
        "size": len(config_bytes),
    }
    doc.setdefault("schemaVersion", 2)
    doc.setdefault("mediaType", OCI_MANIFEST)
    body = json.dumps(doc, separators=(",", ":")).encode()
    return Update(body, config_bytes, (*blobs, config_bytes), added)


# ------------------------------------------------------------------------------ reading over HTTP
class HttpSource:
    """A read-only registry v2 client (stdlib): plain HTTP for registry.local, localhost and
    private addresses, HTTPS otherwise; an anonymous bearer token when asked for one."""

    def __init__(self, registry: str, *, timeout: float = TIMEOUT):
        host = "registry-1.docker.io" if registry == "docker.io" else registry
        scheme = "http" if reference.plain_http(host) else "https"
        self.base = f"{scheme}://{host}"
        self.timeout = timeout
        self._token: str | None = None

    def _get(self, path: str, accept: str | None, limit: int) -> tuple[bytes, str] | None:
        headers = {"Accept": accept} if accept else {}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        url = self.base + path
        req = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) only
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                body = resp.read(limit + 1)
                if len(body) > limit:
                    raise PodsecError(
                        _("{url}: answer larger than {n} bytes").format(url=url, n=limit)
                    )
                return bytes(body), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            if exc.code == 401 and self._token is None:
                self._token = self._bearer(exc.headers.get("WWW-Authenticate", ""))
                if self._token:
                    return self._get(path, accept, limit)
            raise PodsecError(
                _("reading {url}: HTTP {code}").format(url=url, code=exc.code)
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise PodsecError(
                _("cannot reach {url}: {err}").format(url=url, err=getattr(exc, "reason", exc))
            ) from exc

    def _bearer(self, challenge: str) -> str | None:
        if not challenge.lower().startswith("bearer "):
            return None
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", "")
        if not realm.startswith(("https://", "http://")):
            return None
        try:
            with urllib.request.urlopen(  # noqa: S310 - scheme checked
                realm + "?" + urllib.parse.urlencode(params), timeout=self.timeout
            ) as resp:
                data = json.loads(resp.read(1 << 20))
        except (urllib.error.URLError, OSError, ValueError):
            return None
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        return str(token) if token else None

    def manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]:
        got = self._get(f"/v2/{repo}/manifests/{ref}", OCI_MANIFEST, MAX_MANIFEST)
        if got is None:
            raise NotFoundError(_("{repo}:{ref} is not in the registry").format(repo=repo, ref=ref))
        return got[0], _digest(got[0]), got[1]

    def blob(self, repo: str, digest: str) -> bytes:
        got = self._get(f"/v2/{repo}/blobs/{digest}", None, MAX_SIGNATURE)
        if got is None:
            raise PodsecError(
                _("sigstore attachment {digest} of {repo} is missing").format(
                    digest=digest, repo=repo
                )
            )
        return got[0]
