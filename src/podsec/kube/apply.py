"""``kubectl apply`` for podsec's own manifests: server-side apply through the API.

Each object is sent as ``PATCH …?fieldManager=podsec&force=true`` with
``application/apply-patch+yaml`` (server-side apply, on by default since Kubernetes 1.16):
creating or updating is one idempotent request, and fields other managers own are kept. The
resource of a kind comes from the API's own discovery (``GET /api/v1``, ``/apis/G/V``), asked
once per group version — no table of kinds to keep in step with the server.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from podsec.errors import UsageError
from podsec.i18n import _
from podsec.kube.client import Client, path

FIELD_MANAGER = "podsec"


def group_version_path(api_version: str) -> str:
    """``v1`` → ``/api/v1``; ``apps/v1`` → ``/apis/apps/v1``."""
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


class Discovery:
    """Kind → (resource, namespaced) per group version, asked once each."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._known: dict[str, dict[str, tuple[str, bool]]] = {}

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        if api_version not in self._known:
            listing = self.client.get(group_version_path(api_version))
            self._known[api_version] = {
                str(r["kind"]): (str(r["name"]), bool(r.get("namespaced")))
                for r in listing.get("resources") or []
                if "/" not in str(r.get("name", ""))  # subresources (pods/log …)
            }
        found = self._known[api_version].get(kind)
        if found is None:
            raise UsageError(
                _("the API server has no kind {kind} in {api}").format(kind=kind, api=api_version)
            )
        return found


def object_url(discovery: Discovery, obj: dict[str, Any]) -> str:
    """The URL of ``obj`` (namespaced objects default to namespace ``default``)."""
    api_version, kind = str(obj.get("apiVersion") or ""), str(obj.get("kind") or "")
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or "")
    if not (api_version and kind and name):
        raise UsageError(_("a manifest object lacks apiVersion, kind or metadata.name"))
    resource, namespaced = discovery.resource(api_version, kind)
    base = group_version_path(api_version)
    if namespaced:
        return path(base, "namespaces", str(meta.get("namespace") or "default"), resource, name)
    return path(base, resource, name)


def apply(client: Client, objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Server-side apply each object in order; returns the server's objects."""
    discovery = Discovery(client)
    out = []
    for obj in objects:
        out.append(
            client.request(
                "PATCH",
                object_url(discovery, obj),
                obj,
                query={"fieldManager": FIELD_MANAGER, "force": "true"},
                content_type="application/apply-patch+yaml",
            )
        )
    return out


def documents(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML manifest (empty documents skipped)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    docs = [d for d in yaml.load_all(text, Loader=loader) if d]
    if not all(isinstance(d, dict) for d in docs):
        raise UsageError(_("a manifest document is not a mapping"))
    return docs
