"""``roles USER``: every binding that reaches a user, in the original's documented JSON shape.

::

    {USER: {"clusterRoles": [ITEM...],
            "roles": {"allNamespaces": [], "namespaces": [{NS: [ITEM...]}...]}}}

    ITEM = {"bindRoleName", "bindedRoleType", "bindedRoleName", "unbindCmd"[, "rules"][, "viaGroup"]}

The original asked the server once per namespace; here two list calls (all ClusterRoleBindings,
all RoleBindings of all namespaces — plus all roles for ``showRules``) run in parallel.
Besides subjects naming the user (kind User — a ServiceAccount or Group of the same name is
not the user), bindings reaching it through the groups of its certificate are listed with
``viaGroup``. ``allNamespaces`` is kept for the documented shape; Kubernetes has no
all-namespaces RoleBinding (cluster-wide grants are the ``clusterRoles``), so it is empty.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from podsec.host.paths import Host
from podsec.kube.client import RBAC, Client, path
from podsec.kube.kubeconfig import admin_connection
from podsec.rbac import issue, names

LEGACY_UNBIND = "podsec-k8s-rbac-unbindrole"


def _via(obj: dict[str, Any], user: str, groups: Sequence[str]) -> tuple[bool, str | None]:
    """(reaches the user?, the group it comes through or None when named directly)."""
    via = None
    for s in obj.get("subjects") or ():
        kind, name = s.get("kind"), s.get("name")
        if kind == "User" and name == user:
            return True, None
        if kind == "Group" and name in groups and via is None:
            via = name
    return via is not None, via


def _unbind_cmd(
    user: str, *, via: str | None, role_type: str, ref: str, bind: str, ns: str | None
) -> str:
    tail = [role_type, ref, bind, *([ns] if ns else [])]
    if via is None:
        return shlex.join([LEGACY_UNBIND, user, *tail])
    return shlex.join(["podsec", "rbac", "unbind", "--group", via, *tail])


def _index(items: list[dict[str, Any]]) -> dict[tuple[str | None, str], Any]:
    out: dict[tuple[str | None, str], Any] = {}
    for obj in items:
        meta = obj.get("metadata") or {}
        out[(meta.get("namespace"), str(meta.get("name")))] = obj.get("rules") or []
    return out


def user_roles(
    api: Client, user: str, groups: Sequence[str] = (), *, show_rules: bool = False
) -> dict[str, Any]:
    urls = [path(RBAC, "clusterrolebindings"), path(RBAC, "rolebindings")]
    if show_rules:
        urls += [path(RBAC, "clusterroles"), path(RBAC, "roles")]
    docs = api.get_many(urls)
    crbs, rbs = docs[0].get("items") or [], docs[1].get("items") or []
    rules: dict[tuple[str | None, str], Any] = {}
    if show_rules:
        rules = _index(docs[2].get("items") or []) | _index(docs[3].get("items") or [])

    def item(
        obj: dict[str, Any], via: str | None, role_type: str, ns: str | None
    ) -> dict[str, Any]:
        ref = obj.get("roleRef") or {}
        bind, kind, name = str(obj["metadata"]["name"]), str(ref.get("kind")), str(ref.get("name"))
        out: dict[str, Any] = {
            "bindRoleName": bind,
            "bindedRoleType": kind,
            "bindedRoleName": name,
            "unbindCmd": _unbind_cmd(
                user, via=via, role_type=role_type, ref=name, bind=bind, ns=ns
            ),
        }
        if show_rules:
            out["rules"] = rules.get((ns if kind == "Role" else None, name))
        if via is not None:
            out["viaGroup"] = via
        return out

    cluster: list[dict[str, Any]] = []
    for obj in crbs:
        hit, via = _via(obj, user, groups)
        if hit:
            cluster.append(item(obj, via, "clusterrole", None))
    per_ns: dict[str, list[dict[str, Any]]] = {}
    for obj in rbs:
        hit, via = _via(obj, user, groups)
        if hit:
            ns = str(obj["metadata"].get("namespace"))
            per_ns.setdefault(ns, []).append(item(obj, via, "role", ns))
    cluster.sort(key=lambda i: str(i["bindRoleName"]))
    namespaces = [
        {ns: sorted(items, key=lambda i: str(i["bindRoleName"]))}
        for ns, items in sorted(per_ns.items())
    ]
    return {
        user: {"clusterRoles": cluster, "roles": {"allNamespaces": [], "namespaces": namespaces}}
    }


def table_rows(doc: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(scope, binding, role kind, role, via) rows of a :func:`user_roles` document."""
    rows: list[tuple[str, str, str, str, str]] = []
    for _user, body in doc.items():
        for i in body["clusterRoles"]:
            rows.append(
                (
                    "*",
                    i["bindRoleName"],
                    i["bindedRoleType"],
                    i["bindedRoleName"],
                    i.get("viaGroup", ""),
                )
            )
        for entry in body["roles"]["namespaces"]:
            for ns, items in entry.items():
                for i in items:
                    rows.append(
                        (
                            ns,
                            i["bindRoleName"],
                            i["bindedRoleType"],
                            i["bindedRoleName"],
                            i.get("viaGroup", ""),
                        )
                    )
    return rows


def for_user(
    host: Host,
    user: str,
    groups: Sequence[str] = (),
    *,
    no_groups: bool = False,
    show_rules: bool = False,
    kubeconfig: str | None = None,
    context: str | None = None,
    api_timeout: float = 15.0,
) -> dict[str, Any]:
    """``podsec rbac roles``: the bindings reaching ``user`` directly or through ``groups``
    (default: the groups of its certificate, when its kubeconfig is here; none with
    ``no_groups``)."""
    names.subject(user)
    if no_groups:
        groups = ()
    elif not groups:
        groups = issue.cert_groups(host, user)
    admin = admin_connection(kubeconfig, host, context)
    with Client(admin, timeout=api_timeout) as api:
        return user_roles(api, user, groups, show_rules=show_rules)
