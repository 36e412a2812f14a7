"""bind / unbind: a subject joins or leaves a RoleBinding or ClusterRoleBinding by name.

One binding is shared by every subject given the same BINDING name (as in the original). A
missing binding is created; the last subject leaving deletes it. Subject names are kept
exactly as given (the original stripped ``system:``). Updates are read-modify-write with the
object's resourceVersion, retried on conflict, so concurrent binds never lose a subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from podsec.errors import NotFoundError, UsageError, ValidationError
from podsec.i18n import _
from podsec.kube.client import RBAC, Client, path
from podsec.rbac import names

RoleType = Literal["role", "clusterrole", "role=clusterrole"]
ROLE_TYPES: tuple[str, ...] = ("role", "role=clusterrole", "clusterrole")
SubjectKind = Literal["User", "Group", "ServiceAccount"]
API_GROUP = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class Subject:
    kind: SubjectKind
    name: str
    namespace: str | None = None

    def matches(self, item: dict[str, Any]) -> bool:
        if item.get("kind") != self.kind or item.get("name") != self.name:
            return False
        return self.kind != "ServiceAccount" or item.get("namespace") == self.namespace

    def to_api(self) -> dict[str, str]:
        out = {"kind": self.kind, "name": self.name}
        if self.kind == "ServiceAccount":
            out["namespace"] = self.namespace or "default"
        else:
            out["apiGroup"] = API_GROUP
        return out


@dataclass(frozen=True)
class Target:
    """Which binding, to which role."""

    role_type: str
    role: str
    binding: str
    namespace: str | None

    @property
    def binding_kind(self) -> str:
        return "ClusterRoleBinding" if self.role_type == "clusterrole" else "RoleBinding"

    @property
    def role_kind(self) -> str:
        return "Role" if self.role_type == "role" else "ClusterRole"

    def binding_url(self, name: str | None = None) -> str:
        if self.namespace is None:
            return path(RBAC, "clusterrolebindings", *([name] if name else []))
        return path(RBAC, "namespaces", self.namespace, "rolebindings", *([name] if name else []))

    def role_url(self) -> str:
        if self.role_kind == "ClusterRole":
            return path(RBAC, "clusterroles", self.role)
        assert self.namespace is not None
        return path(RBAC, "namespaces", self.namespace, "roles", self.role)

    def describe(self) -> str:
        where = f" -n {self.namespace}" if self.namespace else ""
        return f"{self.binding_kind} {self.binding}{where}"

    def binding_dict(self) -> dict[str, str | None]:
        return {"kind": self.binding_kind, "name": self.binding, "namespace": self.namespace}

    def role_dict(self) -> dict[str, str]:
        return {"kind": self.role_kind, "name": self.role}


@dataclass(frozen=True)
class Change:
    target: Target
    subject: Subject
    action: Literal["created", "added", "unchanged", "removed", "deleted"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject.to_api(),
            "binding": self.target.binding_dict(),
            "role": self.target.role_dict(),
            "action": self.action,
        }


def target(
    role_type: str,
    role: str,
    binding: str,
    namespace: str | None,
) -> Target:
    """Validate the original's argument forms: ``role`` and ``role=clusterrole`` need NS,
    ``clusterrole`` forbids it."""
    if role_type not in ROLE_TYPES:
        raise UsageError(
            _("invalid role type {value!r}").format(value=role_type),
            hint=_("use role, role=clusterrole or clusterrole"),
        )
    names.role(role)
    names.binding(binding)
    if role_type == "clusterrole":
        if namespace:
            raise UsageError(
                _("a clusterrole binding is cluster-wide: do not give a namespace ({ns})").format(
                    ns=namespace
                ),
                hint=_("use role=clusterrole NAMESPACE to grant a cluster role in one namespace"),
            )
        return Target(role_type, role, binding, None)
    if not namespace:
        raise UsageError(
            _("role type {type} needs a namespace").format(type=role_type),
            hint=_("add the namespace as the last argument"),
        )
    names.namespace(namespace)
    return Target(role_type, role, binding, namespace)


def _role_ref_ok(obj: dict[str, Any], t: Target, *, for_unbind: bool) -> None:
    ref = obj.get("roleRef") or {}
    # unbind "role" (the original's unbindCmd form) accepts a RoleBinding to a Role or a
    # ClusterRole; everything else must match exactly (roleRef is immutable in Kubernetes).
    kinds = {"Role", "ClusterRole"} if (for_unbind and t.role_type == "role") else {t.role_kind}
    if ref.get("name") != t.role or ref.get("kind") not in kinds:
        raise ValidationError(
            _("{binding} refers to {kind} {name}, not {want_kind} {want}").format(
                binding=t.describe(),
                kind=ref.get("kind"),
                name=ref.get("name"),
                want_kind=t.role_kind,
                want=t.role,
            ),
            hint=_("a binding's role cannot change; choose another binding name"),
        )


def bind(api: Client, subject: Subject, t: Target) -> Change:
    if api.get_or_none(t.role_url()) is None:
        where = _(" in namespace {ns}").format(ns=t.namespace) if t.role_kind == "Role" else ""
        raise NotFoundError(
            _("{kind} {name} does not exist{where}").format(
                kind=t.role_kind, name=t.role, where=where
            )
        )
    if t.namespace is not None and api.get_or_none(path("/api/v1/namespaces", t.namespace)) is None:
        raise NotFoundError(_("namespace {ns} does not exist").format(ns=t.namespace))

    def attempt() -> Change:
        obj = api.get_or_none(t.binding_url(t.binding))
        if obj is None:
            metadata: dict[str, Any] = {
                "name": t.binding,
                "labels": {"app.kubernetes.io/managed-by": "podsec"},
            }
            if t.namespace:
                metadata["namespace"] = t.namespace
            body = {
                "apiVersion": f"{API_GROUP}/v1",
                "kind": t.binding_kind,
                "metadata": metadata,
                "roleRef": {"apiGroup": API_GROUP, "kind": t.role_kind, "name": t.role},
                "subjects": [subject.to_api()],
            }
            api.request("POST", t.binding_url(), body)
            return Change(t, subject, "created")
        _role_ref_ok(obj, t, for_unbind=False)
        subjects = obj.get("subjects") or []
        if any(subject.matches(s) for s in subjects):
            return Change(t, subject, "unchanged")
        obj["subjects"] = [*subjects, subject.to_api()]
        api.request("PUT", t.binding_url(t.binding), obj)
        return Change(t, subject, "added")

    result: Change = api.retry_conflicts(attempt)
    return result


def unbind(api: Client, subject: Subject, t: Target) -> Change:
    def attempt() -> Change:
        obj = api.get_or_none(t.binding_url(t.binding))
        if obj is None:
            raise NotFoundError(_("{binding} does not exist").format(binding=t.describe()))
        _role_ref_ok(obj, t, for_unbind=True)
        subjects = obj.get("subjects") or []
        kept = [s for s in subjects if not subject.matches(s)]
        if len(kept) == len(subjects):
            raise NotFoundError(
                _("{kind} {name} is not bound by {binding}").format(
                    kind=subject.kind.lower(), name=subject.name, binding=t.describe()
                )
            )
        if not kept:
            rv = obj.get("metadata", {}).get("resourceVersion")
            api.request(
                "DELETE",
                t.binding_url(t.binding),
                {
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "preconditions": {"resourceVersion": rv},
                },
            )
            return Change(t, subject, "deleted")
        obj["subjects"] = kept
        api.request("PUT", t.binding_url(t.binding), obj)
        return Change(t, subject, "removed")

    result: Change = api.retry_conflicts(attempt)
    return result


def remove_subjects(api: Client, subjects: list[Subject]) -> list[Change]:
    """Remove ``subjects`` from every binding of the cluster (revoke)."""
    crbs, rbs = api.get_many([path(RBAC, "clusterrolebindings"), path(RBAC, "rolebindings")])
    changes: list[Change] = []
    for obj in [*crbs.get("items", []), *rbs.get("items", [])]:
        meta = obj.get("metadata", {})
        ns = meta.get("namespace")
        ref = obj.get("roleRef") or {}
        hits = [s for s in subjects if any(s.matches(x) for x in obj.get("subjects") or [])]
        if ns is None:
            role_type = "clusterrole"
        else:
            role_type = "role" if ref.get("kind") == "Role" else "role=clusterrole"
        t = Target(role_type, str(ref.get("name")), str(meta.get("name")), ns)
        for s in hits:
            try:
                changes.append(unbind(api, s, t))
            except NotFoundError:  # someone else removed it meanwhile
                continue
    return changes
