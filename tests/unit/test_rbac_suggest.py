"""suggest / unused: the rules drawn from a user's audit events (allowed only, names where
every use named one, a Role per namespace, a ClusterRole for cluster scope and URLs,
discovery left out), and the granted rules no request exercised."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import yaml

from podsec.kube import audit_users
from podsec.rbac import suggest

T0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _event(
    verb: str,
    *,
    user: str = "sam",
    code: int = 200,
    when: dt.datetime = T0,
    uri: str = "/x",
    **ref: str,
) -> str:
    event: dict[str, Any] = {
        "stage": "ResponseComplete",
        "verb": verb,
        "user": {"username": user},
        "requestURI": uri,
        "responseStatus": {"code": code},
        "requestReceivedTimestamp": when.isoformat(),
        "annotations": {"authorization.k8s.io/decision": "forbid" if code == 403 else "allow"},
    }
    if ref:
        event["objectRef"] = ref
    return json.dumps(event, separators=(",", ":"))


def _log(tmp_path: Path) -> Path:
    log = tmp_path / "audit.log"
    lines = [
        _event("create", resource="configmaps", namespace="dev"),
        _event("get", resource="configmaps", namespace="dev", name="a"),
        _event("get", resource="configmaps", namespace="dev", name="b"),
        _event("delete", resource="configmaps", namespace="dev", name="a"),
        _event("list", resource="pods", namespace="dev"),
        _event("get", resource="pods", subresource="log", namespace="dev", name="p"),
        _event("list", resource="deployments", apiGroup="apps", namespace="ops"),
        _event("list", resource="nodes"),
        _event("get", uri="/metrics"),
        _event("get", uri="/apis/apps/v1"),  # discovery: everyone may
        _event("get", resource="secrets", namespace="dev", name="s", code=403),
        _event("get", resource="secrets", namespace="dev", name="x", user="other"),
        _event("list", resource="services", namespace="dev", when=T0 - dt.timedelta(days=30)),
    ]
    log.write_text("\n".join(lines) + "\n")
    return log


def test_suggest_covers_exactly_the_allowed_requests(tmp_path: Path) -> None:
    uses = audit_users.uses(_log(tmp_path), "sam", T0 - dt.timedelta(days=7))
    text = suggest.suggest(uses, "sam", "fresh")
    assert "# refused, not granted: get secrets s -n dev" in text
    docs = {(d["kind"], d["metadata"].get("namespace")): d for d in yaml.safe_load_all(text)}
    assert set(docs) == {
        ("ClusterRole", None),
        ("ClusterRoleBinding", None),
        ("Role", "dev"),
        ("RoleBinding", "dev"),
        ("Role", "ops"),
        ("RoleBinding", "ops"),
    }
    assert docs[("Role", "dev")]["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["a"],
            "verbs": ["delete"],
        },
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["a", "b"],
            "verbs": ["get"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["pods/log"], "resourceNames": ["p"], "verbs": ["get"]},
    ]
    assert docs[("Role", "ops")]["rules"] == [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]}
    ]
    assert docs[("ClusterRole", None)]["rules"] == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]},
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
    ]
    binding = docs[("RoleBinding", "dev")]
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "fresh"}
    ]
    assert binding["roleRef"]["name"] == binding["metadata"]["name"] == "podsec-suggested-fresh"
    # services were listed a month ago: outside the window
    assert "services" not in text


def test_unused_lists_what_no_request_exercised(tmp_path: Path) -> None:
    uses = audit_users.uses(_log(tmp_path), "sam", T0 - dt.timedelta(days=7))
    granted = {
        "sam": {
            "clusterRoles": [
                {
                    "bindRoleName": "sam-nodes",
                    "bindedRoleType": "ClusterRole",
                    "bindedRoleName": "node-reader",
                    "rules": [
                        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}
                    ],
                }
            ],
            "roles": {
                "allNamespaces": [],
                "namespaces": [
                    {
                        "dev": [
                            {
                                "bindRoleName": "devs-edit",
                                "bindedRoleType": "ClusterRole",
                                "bindedRoleName": "cm-editor",
                                "viaGroup": "devs",
                                "rules": [
                                    {
                                        "apiGroups": [""],
                                        "resources": ["configmaps", "secrets"],
                                        "verbs": ["get", "*"],
                                    }
                                ],
                            }
                        ]
                    }
                ],
            },
        }
    }
    rows = {(r.binding, r.what, r.verb) for r in suggest.unused(granted, uses)}
    assert rows == {
        ("sam-nodes", "nodes", "get"),  # only listed
        ("devs-edit", "secrets", "get"),  # refused requests do not count
        ("devs-edit", "secrets", "*"),
    }
