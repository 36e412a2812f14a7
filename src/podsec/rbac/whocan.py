"""``who-can VERB RESOURCE [-n NS]``: the subjects the live bindings allow an action.

RESOURCE is ``name[.group][/subresource]`` (``pods``, ``pods/log``, ``deployments.apps``);
without a group the API group is found through discovery, like kubectl does. Rules match when
their apiGroups, resources and verbs cover the request (``*`` included); rules restricted to
``resourceNames`` are reported as such. Aggregated ClusterRoles are read as the controller
manager filled them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podsec.errors import NotFoundError, UsageError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.kube.client import RBAC, Client, path
from podsec.kube.kubeconfig import admin_connection
from podsec.rbac import names


@dataclass(frozen=True)
class Grant:
    kind: str
    name: str
    namespace: str | None  # of a ServiceAccount subject
    binding_kind: str
    binding: str
    binding_namespace: str | None
    role_kind: str
    role: str
    resource_names: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "binding": {
                "kind": self.binding_kind,
                "name": self.binding,
                "namespace": self.binding_namespace,
            },
            "role": {"kind": self.role_kind, "name": self.role},
        }
        if self.namespace:
            out["namespace"] = self.namespace
        if self.resource_names:
            out["resourceNames"] = list(self.resource_names)
        return out


def parse_resource(text: str) -> tuple[str, str | None, str]:
    """``deployments.apps/scale`` → ("deployments", "apps", "scale")."""
    base, _sep, sub = text.partition("/")
    name, dot, group = base.partition(".")
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise UsageError(_("invalid resource {value!r}").format(value=text))
    return name.lower(), (group.lower() if dot else None), sub


def check_args(verb: str, resource: str, namespace: str | None) -> tuple[str, str | None, str]:
    """Validate the command line before any connection; return the parsed resource."""
    if verb != "*" and not verb.replace("-", "").isalpha():
        raise UsageError(_("invalid verb {value!r}").format(value=verb))
    if namespace:
        names.namespace(namespace)
    return parse_resource(resource)


def resolve_group(api: Client, resource: str) -> str:
    """The API group serving ``resource`` (the core group "" first)."""
    core = api.get("/api/v1")
    if any(r.get("name") == resource for r in core.get("resources", [])):
        return ""
    groups = api.get("/apis").get("groups", [])
    urls = [
        f"/apis/{g['preferredVersion']['groupVersion']}"
        for g in groups
        if g.get("preferredVersion")
    ]
    for group, doc in zip(groups, api.get_many(urls), strict=True):
        if any(r.get("name") == resource for r in doc.get("resources", [])):
            return str(group["name"])
    raise NotFoundError(
        _("the server does not know the resource {name!r}").format(name=resource),
        hint=_("give it with its API group, e.g. deployments.apps"),
    )


def _covers(values: list[str], wanted: str) -> bool:
    return "*" in values or wanted in values


def _rule_allows(rule: dict[str, Any], verb: str, group: str, resource: str) -> bool:
    return (
        _covers(rule.get("verbs") or [], verb)
        and _covers(rule.get("apiGroups") or [], group)
        and _covers(rule.get("resources") or [], resource)
    )


def who_can(
    api: Client,
    verb: str,
    resource: str,
    namespace: str | None = None,
    *,
    all_namespaces: bool = False,
) -> list[Grant]:
    name, group, sub = check_args(verb, resource, namespace)
    if group is None:
        group = resolve_group(api, name)
    full = f"{name}/{sub}" if sub else name
    urls = [path(RBAC, "clusterrolebindings"), path(RBAC, "clusterroles")]
    if all_namespaces:
        urls += [path(RBAC, "rolebindings"), path(RBAC, "roles")]
    elif namespace:
        urls += [
            path(RBAC, "namespaces", namespace, "rolebindings"),
            path(RBAC, "namespaces", namespace, "roles"),
        ]
    docs = api.get_many(urls)
    roles: dict[tuple[str, str | None, str], list[dict[str, Any]]] = {}
    for doc, kind in zip(docs[1::2], ("ClusterRole", "Role"), strict=False):
        for obj in doc.get("items") or []:
            meta = obj.get("metadata") or {}
            ns = meta.get("namespace") if kind == "Role" else None
            roles[(kind, ns, str(meta.get("name")))] = obj.get("rules") or []
    grants: list[Grant] = []
    for doc in docs[0::2]:
        for obj in doc.get("items") or []:
            meta, ref = obj.get("metadata") or {}, obj.get("roleRef") or {}
            bns = meta.get("namespace")
            kind = str(ref.get("kind"))
            key = (kind, bns if kind == "Role" else None, str(ref.get("name")))
            allowed = [r for r in roles.get(key, []) if _rule_allows(r, verb, group, full)]
            if not allowed:
                continue
            restricted: tuple[str, ...] = ()
            if all(r.get("resourceNames") for r in allowed):
                restricted = tuple(sorted({n for r in allowed for n in r["resourceNames"]}))
            for s in obj.get("subjects") or []:
                grants.append(
                    Grant(
                        kind=str(s.get("kind")),
                        name=str(s.get("name")),
                        namespace=s.get("namespace"),
                        binding_kind=str(
                            obj.get("kind") or ("RoleBinding" if bns else "ClusterRoleBinding")
                        ),
                        binding=str(meta.get("name")),
                        binding_namespace=bns,
                        role_kind=kind,
                        role=str(ref.get("name")),
                        resource_names=restricted,
                    )
                )
    grants.sort(key=lambda g: (g.kind, g.name, g.binding_namespace or "", g.binding))
    return grants


def query(
    host: Host,
    verb: str,
    resource: str,
    namespace: str | None = None,
    *,
    all_namespaces: bool = False,
    kubeconfig: str | None = None,
    context: str | None = None,
    api_timeout: float = 15.0,
) -> list[Grant]:
    """``podsec rbac who-can``: the arguments checked before the API server is asked."""
    check_args(verb, resource, namespace)
    admin = admin_connection(kubeconfig, host, context)
    with Client(admin, timeout=api_timeout) as api:
        return who_can(api, verb, resource, namespace, all_namespaces=all_namespaces)
