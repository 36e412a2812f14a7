"""Least privilege from the audit log: ``suggest USER`` and ``unused USER``.

Both read the user's requests from the API server's audit log and its rotated copies
(:func:`podsec.kube.audit_users.uses`: ResponseComplete events, the authorizer's decision from
the ``authorization.k8s.io/decision`` annotation) within ``--since``.

``suggest`` turns the **allowed** requests into the smallest RBAC that covers exactly them:
a Role (+ RoleBinding) per namespace used, a ClusterRole (+ ClusterRoleBinding) for
cluster-scoped resources, requests across all namespaces and non-resource URLs. One rule per
API group and resource, its verbs those used; ``resourceNames`` when every use of that verb
named an object (get/update/patch/delete; RBAC cannot restrict create, list or watch by
name). Discovery paths every authenticated user may read (``/api``, ``/apis``, ``/openapi``,
``/version``…, granted by system:discovery) are left out. Refused requests are not granted;
they are listed as comments at the top.

``unused`` compares the rules the user is granted today (its bindings, its certificate's
groups included: :func:`podsec.rbac.roles.user_roles`) with the allowed requests: every
(apiGroup, resource, verb) — or (URL, verb) — of a rule that no request exercised.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from podsec.host.paths import Host
from podsec.kube.audit_users import Use
from podsec.names import AUDIT_LOG
from podsec.rbac import names

NAMED_VERBS = {"get", "update", "patch", "delete"}
DISCOVERY = re.compile(r"^/(api|apis|openapi|version|healthz|livez|readyz)(/|$)")
RBAC_API = "rbac.authorization.k8s.io/v1"


def object_name(user: str) -> str:
    """A DNS-1123 name for the suggested roles and bindings of ``user``."""
    text = re.sub(r"[^a-z0-9.-]+", "-", user.lower()).strip("-.") or "user"
    return f"podsec-suggested-{text}"[:253]


def _rules(uses: Iterable[Use]) -> list[dict[str, Any]]:
    """Rules covering ``uses`` (all of one scope)."""
    named: dict[tuple[str, str, str], set[str] | None] = {}
    urls: dict[str, set[str]] = {}
    for u in uses:
        if u.resource:
            key = (u.group, u.resource, u.verb)
            seen = named.get(key, set())
            if seen is None or u.verb not in NAMED_VERBS or not u.name:
                named[key] = None
            else:
                named[key] = seen | {u.name}
        elif u.path:
            urls.setdefault(u.path, set()).add(u.verb)
    grouped: dict[tuple[str, str, tuple[str, ...]], set[str]] = {}
    for (group, resource, verb), seen in named.items():
        grouped.setdefault((group, resource, tuple(sorted(seen or ()))), set()).add(verb)
    rules: list[dict[str, Any]] = []
    for (group, resource, only), verbs in sorted(grouped.items()):
        rule: dict[str, Any] = {"apiGroups": [group], "resources": [resource]}
        if only:
            rule["resourceNames"] = list(only)
        rule["verbs"] = sorted(verbs)
        rules.append(rule)
    for path, verbs in sorted(urls.items()):
        rules.append({"nonResourceURLs": [path], "verbs": sorted(verbs)})
    return rules


def suggest(uses: Sequence[Use], user: str, subject: str | None = None) -> str:
    """The YAML ``kubectl apply -f`` accepts: roles and bindings for ``subject`` (default
    ``user``) that allow what ``user`` was allowed to do in ``uses`` and nothing else."""
    name = object_name(subject or user)
    who = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": subject or user}
    allowed = [u for u in uses if u.allowed and not (u.path and DISCOVERY.match(u.path))]
    by_scope: dict[str | None, list[Use]] = {}
    for u in allowed:
        by_scope.setdefault(u.namespace if u.resource else None, []).append(u)
    docs: list[dict[str, Any]] = []
    for ns in sorted(by_scope, key=lambda n: (n is not None, n or "")):
        rules = _rules(by_scope[ns])
        meta: dict[str, Any] = {"name": name, "labels": {"podsec.alt/suggested-from": _label(user)}}
        if ns is None:
            docs.append(
                {"apiVersion": RBAC_API, "kind": "ClusterRole", "metadata": meta, "rules": rules}
            )
            docs.append(
                {
                    "apiVersion": RBAC_API,
                    "kind": "ClusterRoleBinding",
                    "metadata": meta,
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": name,
                    },
                    "subjects": [who],
                }
            )
        else:
            meta = {**meta, "namespace": ns}
            docs.append({"apiVersion": RBAC_API, "kind": "Role", "metadata": meta, "rules": rules})
            docs.append(
                {
                    "apiVersion": RBAC_API,
                    "kind": "RoleBinding",
                    "metadata": meta,
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": name,
                    },
                    "subjects": [who],
                }
            )
    refused = sorted({_describe(u) for u in uses if not u.allowed})
    head = [f"# podsec rbac suggest {user}: {len(allowed)} allowed requests"]
    head += [f"# refused, not granted: {r}" for r in refused]
    body = yaml.safe_dump_all(docs, sort_keys=False) if docs else ""
    return "\n".join(head) + "\n" + body


def _label(user: str) -> str:
    text = "".join(c if c.isalnum() or c in "-_." else "_" for c in user)[:63]
    return text.strip("-_.") or "user"


def _describe(u: Use) -> str:
    if not u.resource:
        return f"{u.verb} {u.path}"
    what = f"{u.group}/{u.resource}" if u.group else u.resource
    where = f" -n {u.namespace}" if u.namespace else ""
    return f"{u.verb} {what}{' ' + u.name if u.name else ''}{where}"


# --------------------------------------------------------------------------- unused
@dataclass(frozen=True)
class Unused:
    binding: str
    binding_namespace: str | None
    role: str
    via_group: str | None
    what: str  # "apps/deployments", "pods/log", "/metrics"
    verb: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "binding": self.binding,
            "namespace": self.binding_namespace,
            "role": self.role,
            "viaGroup": self.via_group,
            "resource": self.what,
            "verb": self.verb,
        }


def _match(pattern: str, value: str) -> bool:
    return pattern in ("*", value) or (pattern.endswith("*") and value.startswith(pattern[:-1]))


def _exercised(
    rule: dict[str, Any],
    ns: str | None,
    verb: str,
    uses: Sequence[Use],
    *,
    group: str = "",
    resource: str = "",
    url: str = "",
) -> bool:
    for u in uses:
        if not u.allowed or not _match(verb, u.verb):
            continue
        if url:
            if not u.resource and _match(url, u.path):
                return True
            continue
        if not u.resource or (ns is not None and u.namespace != ns):
            continue
        if not _match(group, u.group) or not _match(resource, u.resource):
            continue
        only = rule.get("resourceNames") or []
        if only and u.name not in only:
            continue
        return True
    return False


def unused(granted: dict[str, Any], uses: Sequence[Use]) -> list[Unused]:
    """Every element of the user's rules (``roles USER showRules`` JSON) no use exercised."""
    (doc,) = granted.values()
    items: list[tuple[str | None, dict[str, Any]]] = [(None, i) for i in doc["clusterRoles"]]
    for block in doc["roles"]["namespaces"]:
        for ns, entries in block.items():
            items += [(ns, i) for i in entries]
    out: list[Unused] = []
    for ns, item in items:
        for rule in item.get("rules") or []:
            verbs = rule.get("verbs") or []
            for url in rule.get("nonResourceURLs") or []:
                for verb in verbs:
                    if not _exercised(rule, None, verb, uses, url=url):
                        out.append(_row(item, ns, url, verb))
            for group in rule.get("apiGroups") or []:
                for resource in rule.get("resources") or []:
                    for verb in verbs:
                        if not _exercised(rule, ns, verb, uses, group=group, resource=resource):
                            what = f"{group}/{resource}" if group else resource
                            out.append(_row(item, ns, what, verb))
    return out


def _row(item: dict[str, Any], ns: str | None, what: str, verb: str) -> Unused:
    return Unused(
        str(item["bindRoleName"]),
        ns,
        f"{item['bindedRoleType']} {item['bindedRoleName']}",
        item.get("viaGroup"),
        what,
        verb,
    )


def window(since_seconds: int, now: dt.datetime | None = None) -> dt.datetime:
    return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=since_seconds)


def read_uses(log: Path, user: str, since_seconds: int) -> list[Use]:
    from podsec.kube import audit_users

    return audit_users.uses(log, user, window(since_seconds))


def suggest_for(
    host: Host,
    user: str,
    *,
    since_seconds: int,
    audit_log: str = AUDIT_LOG,
    subject: str | None = None,
) -> str:
    """``podsec rbac suggest``: the YAML for ``user``'s requests of the window."""
    names.subject(user)
    if subject:
        names.subject(subject)
    return suggest(read_uses(host.path(audit_log), user, since_seconds), user, subject)


def unused_for(
    host: Host,
    user: str,
    *,
    since_seconds: int,
    audit_log: str = AUDIT_LOG,
    kubeconfig: str | None = None,
    context: str | None = None,
    api_timeout: float = 15.0,
) -> list[Unused]:
    """``podsec rbac unused``: the user's granted rules (its certificate's groups too, when
    its kubeconfig is here) that no request of the window exercised."""
    from podsec.kube.client import Client
    from podsec.kube.kubeconfig import admin_connection
    from podsec.rbac import issue, roles

    names.subject(user)
    groups = issue.cert_groups(host, user)
    with Client(admin_connection(kubeconfig, host, context), timeout=api_timeout) as api:
        granted = roles.user_roles(api, user, groups, show_rules=True)
    return unused(granted, read_uses(host.path(audit_log), user, since_seconds))
