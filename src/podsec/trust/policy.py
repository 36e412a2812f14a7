"""containers-policy.json: a typed model, a strict parser, rendering and scope resolution.

Parsing is as strict as containers/image: unknown or duplicate fields, a missing
``default``, a wrong type or an invalid requirement reject the whole file with a
:class:`~podsec.errors.ValidationError` naming the file and the field (a JSON path such as
``transports.docker["registry.local"][0].keyPth``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from podsec import readers
from podsec.errors import NotFoundError, PodsecError, ValidationError
from podsec.host import files
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.trust import reference

SYSTEM_POLICY = "/etc/containers/policy.json"
USER_POLICY = ".config/containers/policy.json"
DEFAULT_SCOPE = "default"  # scope_for()'s answer when only the global default applies

ACCEPT = "insecureAcceptAnything"
REJECT = "reject"
SIGNED_BY = "signedBy"
SIGSTORE_SIGNED = "sigstoreSigned"
SIGNED_BASE_LAYER = "signedBaseLayer"
GPG_KEYS = "GPGKeys"

KNOWN_TRANSPORTS = (
    "docker",
    "atomic",
    "containers-storage",
    "dir",
    "oci",
    "oci-archive",
    "docker-archive",
    "docker-daemon",
    "tarball",
    "sif",
    "ostree",
)
_ONLY_DEFAULT_SCOPE = ("docker-archive", "tarball")
_PATH_SCOPES = ("dir", "oci", "oci-archive", "sif", "ostree")
_IDENTITY_SIMPLE = ("matchExact", "matchRepoDigestOrExact", "matchRepository")
_IDENTITY_FIELDS: dict[str, tuple[str, ...]] = {
    "exactReference": ("dockerReference",),
    "exactRepository": ("dockerRepository",),
    "remapIdentity": ("prefix", "signedPrefix"),
}
_SIGSTORE_FIELDS = (
    "keyPath",
    "keyPaths",
    "keyData",
    "keyDatas",
    "fulcio",
    "pki",
    "rekorPublicKeyPath",
    "rekorPublicKeyPaths",
    "rekorPublicKeyData",
    "rekorPublicKeyDatas",
    "signedIdentity",
)


@dataclass(frozen=True)
class Requirement:
    type: str
    key_type: str | None = None
    key_path: str | None = None
    key_paths: tuple[str, ...] | None = None
    key_data: str | None = None
    signed_identity: dict[str, Any] | None = None
    # Fields kept verbatim for rendering (sigstoreSigned's fulcio/pki/rekor*, signedBaseLayer).
    extra: tuple[tuple[str, Any], ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        """Key file paths of a signedBy/sigstoreSigned requirement."""
        if self.key_path is not None:
            return (self.key_path,)
        return self.key_paths or ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.key_type is not None:
            out["keyType"] = self.key_type
        if self.key_path is not None:
            out["keyPath"] = self.key_path
        if self.key_paths is not None:
            out["keyPaths"] = list(self.key_paths)
        if self.key_data is not None:
            out["keyData"] = self.key_data
        for key, value in self.extra:
            out[key] = value
        if self.signed_identity is not None:
            out["signedIdentity"] = self.signed_identity
        return out


def accept() -> Requirement:
    return Requirement(ACCEPT)


def reject() -> Requirement:
    return Requirement(REJECT)


def signed_by(key_path: str | Iterable[str]) -> Requirement:
    """A GPG signedBy requirement (default identity rule matchRepoDigestOrExact)."""
    if isinstance(key_path, str):
        return Requirement(SIGNED_BY, key_type=GPG_KEYS, key_path=key_path)
    return Requirement(SIGNED_BY, key_type=GPG_KEYS, key_paths=tuple(key_path))


Scopes = dict[str, tuple[Requirement, ...]]


@dataclass(frozen=True)
class Policy:
    default: tuple[Requirement, ...]
    transports: dict[str, Scopes] = field(default_factory=dict)

    def with_scope(self, transport: str, scope: str, reqs: Iterable[Requirement]) -> Policy:
        """A copy with ``transports[transport][scope]`` set to ``reqs``."""
        transports = {t: dict(s) for t, s in self.transports.items()}
        transports.setdefault(transport, {})[scope] = tuple(reqs)
        return replace(self, transports=transports)

    def without_scope(self, transport: str, scope: str) -> Policy:
        transports = {t: dict(s) for t, s in self.transports.items()}
        transports.get(transport, {}).pop(scope, None)
        return replace(self, transports=transports)


# ------------------------------------------------------------------------------ parsing
class _Dup(dict[str, Any]):
    """Marks objects that had a duplicate key (reported with its path later)."""

    duplicate: str | None = None


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = _Dup()
    for key, value in pairs:
        if key in out and out.duplicate is None:
            out.duplicate = key
        out[key] = value
    return out


def _field_path(base: str, key: str | int) -> str:
    """A JSON path for messages: ``transports.docker["registry.local"][0].keyPath``."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    if key and key.replace("-", "").replace("_", "").isalnum():
        return f"{base}.{key}" if base else key
    return f"{base}[{json.dumps(key)}]"


class _Parser:
    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, problem: str) -> ValidationError:
        return ValidationError(
            _("{file}: {field}: {problem}").format(file=self.source, field=path, problem=problem),
            hint=_("fix the file; nothing was changed"),
        )

    def obj(self, value: Any, path: str, allowed: Iterable[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path or "(top level)", _("expected a JSON object"))
        if isinstance(value, _Dup) and value.duplicate is not None:
            raise self.fail(_field_path(path, value.duplicate), _("duplicate field"))
        allowed_set = set(allowed)
        for key in value:
            if key not in allowed_set:
                raise self.fail(_field_path(path, key), _("unknown field"))
        return value

    def string(self, value: Any, path: str, *, nonempty: bool = True) -> str:
        if not isinstance(value, str) or (nonempty and not value):
            raise self.fail(path, _("expected a non-empty string"))
        return value

    def identity(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, _("expected a JSON object"))
        kind = value.get("type")
        if kind in _IDENTITY_SIMPLE:
            self.obj(value, path, ("type",))
        elif isinstance(kind, str) and kind in _IDENTITY_FIELDS:
            wanted = _IDENTITY_FIELDS[kind]
            self.obj(value, path, ("type", *wanted))
            for name in wanted:
                if name not in value:
                    raise self.fail(_field_path(path, name), _("missing field"))
                self.string(value[name], _field_path(path, name))
                if name in ("dockerReference", "dockerRepository", "prefix", "signedPrefix"):
                    self._check_reference(value[name], _field_path(path, name), name)
        else:
            raise self.fail(
                _field_path(path, "type"),
                _("unknown identity type {kind!r}").format(kind=kind),
            )
        return dict(value)

    def _check_reference(self, text: str, path: str, name: str) -> None:
        try:
            ref = reference.parse(text)
        except PodsecError as exc:
            raise self.fail(path, _("not a valid image reference")) from exc
        if name == "dockerReference" and ref.tag is None and ref.digest is None:
            raise self.fail(path, _("the reference needs a tag or digest"))
        if name == "dockerRepository" and (ref.tag or ref.digest):
            raise self.fail(path, _("a repository must not have a tag or digest"))

    def requirement(self, value: Any, path: str) -> Requirement:
        if not isinstance(value, dict):
            raise self.fail(path, _("expected a JSON object"))
        kind = value.get("type")
        if kind is None:
            raise self.fail(_field_path(path, "type"), _("missing field"))
        if kind in (ACCEPT, REJECT):
            self.obj(value, path, ("type",))
            return Requirement(kind)
        if kind == SIGNED_BY:
            return self._signed_by(value, path)
        if kind == SIGSTORE_SIGNED:
            self.obj(value, path, ("type", *_SIGSTORE_FIELDS))
            sources = [
                k
                for k in ("keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki")
                if k in value
            ]
            if len(sources) != 1:
                raise self.fail(
                    path,
                    _(
                        "exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio, pki is required"
                    ),
                )
            ident = value.get("signedIdentity")
            extra = tuple(
                (k, v)
                for k, v in value.items()
                if k not in ("type", "keyPath", "keyPaths", "keyData", "signedIdentity")
            )
            key_paths = value.get("keyPaths")
            return Requirement(
                kind,
                key_path=value.get("keyPath"),
                key_paths=tuple(key_paths) if isinstance(key_paths, list) else None,
                key_data=value.get("keyData"),
                signed_identity=self.identity(ident, _field_path(path, "signedIdentity"))
                if ident is not None
                else None,
                extra=extra,
            )
        if kind == SIGNED_BASE_LAYER:
            self.obj(value, path, ("type", "baseLayerIdentity"))
            if "baseLayerIdentity" not in value:
                raise self.fail(_field_path(path, "baseLayerIdentity"), _("missing field"))
            ident = self.identity(
                value["baseLayerIdentity"], _field_path(path, "baseLayerIdentity")
            )
            return Requirement(kind, extra=(("baseLayerIdentity", ident),))
        raise self.fail(
            _field_path(path, "type"), _("unknown requirement type {kind!r}").format(kind=kind)
        )

    def _signed_by(self, value: dict[str, Any], path: str) -> Requirement:
        self.obj(
            value, path, ("type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity")
        )
        if "keyType" not in value:
            raise self.fail(_field_path(path, "keyType"), _("missing field"))
        if value["keyType"] != GPG_KEYS:
            raise self.fail(
                _field_path(path, "keyType"),
                _("unsupported key type {kind!r} (only GPGKeys)").format(kind=value["keyType"]),
            )
        sources = [k for k in ("keyPath", "keyPaths", "keyData") if k in value]
        if len(sources) != 1:
            raise self.fail(path, _("exactly one of keyPath, keyPaths, keyData is required"))
        key_path = key_data = None
        key_paths: tuple[str, ...] | None = None
        if "keyPath" in value:
            key_path = self.string(value["keyPath"], _field_path(path, "keyPath"))
        elif "keyPaths" in value:
            items = value["keyPaths"]
            if not isinstance(items, list) or not items:
                raise self.fail(_field_path(path, "keyPaths"), _("expected a non-empty list"))
            key_paths = tuple(
                self.string(p, _field_path(_field_path(path, "keyPaths"), i))
                for i, p in enumerate(items)
            )
        else:
            key_data = self.string(value["keyData"], _field_path(path, "keyData"))
        ident = value.get("signedIdentity")
        return Requirement(
            SIGNED_BY,
            key_type=GPG_KEYS,
            key_path=key_path,
            key_paths=key_paths,
            key_data=key_data,
            signed_identity=self.identity(ident, _field_path(path, "signedIdentity"))
            if ident is not None
            else None,
        )

    def requirements(self, value: Any, path: str) -> tuple[Requirement, ...]:
        if not isinstance(value, list):
            raise self.fail(path, _("expected a list of requirements"))
        if not value:
            raise self.fail(path, _("an empty requirement list is not allowed"))
        return tuple(self.requirement(item, _field_path(path, i)) for i, item in enumerate(value))

    def scope(self, transport: str, scope: str, path: str) -> None:
        if scope == "":
            return
        if transport in _ONLY_DEFAULT_SCOPE:
            raise self.fail(path, _('this transport allows only the "" scope'))
        if transport in _PATH_SCOPES and (not scope.startswith("/") or scope == "/"):
            raise self.fail(path, _("the scope must be an absolute path other than /"))
        if transport in ("docker", "atomic"):
            if scope.startswith("*."):
                if not all(part for part in scope[2:].split(".")):
                    raise self.fail(path, _("invalid wildcard scope"))
                return
            if not _valid_docker_scope(scope):
                raise self.fail(path, _("invalid docker scope"))

    def policy(self, data: Any) -> Policy:
        top = self.obj(data, "", ("default", "transports"))
        if "default" not in top:
            raise self.fail("default", _("missing field"))
        default = self.requirements(top["default"], "default")
        transports: dict[str, Scopes] = {}
        raw = top.get("transports", {})
        raw = self.obj(raw, "transports", raw.keys() if isinstance(raw, dict) else ())
        for name, raw_scopes in raw.items():
            tpath = _field_path("transports", name)
            scopes = self.obj(
                raw_scopes, tpath, raw_scopes.keys() if isinstance(raw_scopes, dict) else ()
            )
            parsed: Scopes = {}
            for scope, reqs in scopes.items():
                spath = f"{tpath}[{json.dumps(scope)}]"  # scopes always quoted
                if name in KNOWN_TRANSPORTS:
                    self.scope(name, scope, spath)
                parsed[scope] = self.requirements(reqs, spath)
            transports[name] = parsed
        return Policy(default, transports)


def _valid_docker_scope(scope: str) -> bool:
    host, _sep, rest = scope.partition("/")
    if not reference._DOMAIN_RE.match(host):
        return False
    if not rest:
        return True
    try:
        ref = reference.parse(scope)
    except PodsecError:
        return False
    return ref.domain == host


def parse(text: str, source: str) -> Policy:
    """Parse policy.json text strictly; ``source`` names the file in errors."""
    p = _Parser(source)
    data = readers.parse_json(text, source, object_pairs_hook=_pairs)
    return p.policy(data)


def load(path: Path, display: str | None = None) -> Policy:
    text = files.read_text(path)
    if text is None:
        raise NotFoundError(_("{file}: no such file").format(file=display or path))
    return parse(text, display or str(path))


def _sorted_scopes(scopes: Mapping[str, Any]) -> list[str]:
    return sorted(scopes, key=lambda s: (s != "", s))


def to_json(policy: Policy) -> dict[str, Any]:
    return {
        "default": [r.to_json() for r in policy.default],
        "transports": {
            t: {
                s: [r.to_json() for r in policy.transports[t][s]]
                for s in _sorted_scopes(policy.transports[t])
            }
            for t in sorted(policy.transports)
        },
    }


def render(policy: Policy) -> str:
    """4-space indented JSON in a stable order (as ``podman image trust set`` writes it)."""
    return json.dumps(to_json(policy), indent=4, ensure_ascii=False) + "\n"


def effective_policy_path(host: Host, home: Path | None) -> Path:
    """``~/.config/containers/policy.json`` if it exists, else the system policy."""
    if home is not None:
        user = host.path(str(Path(home) / USER_POLICY))
        if user.is_file():
            return user
    return host.path(SYSTEM_POLICY)


def scope_for(policy: Policy, transport: str, ref: str) -> tuple[str, tuple[Requirement, ...]]:
    """The most specific scope that applies to ``ref`` and its requirements.

    Returns ``(scope, requirements)``: a scope of ``transports[transport]``, ``""`` for the
    transport default, or :data:`DEFAULT_SCOPE` when only the global ``default`` applies.
    """
    scopes = policy.transports.get(transport, {})
    for candidate in _candidates(transport, ref):
        if candidate in scopes:
            return candidate, scopes[candidate]
    if "" in scopes:
        return "", scopes[""]
    return DEFAULT_SCOPE, policy.default


def _candidates(transport: str, ref: str) -> list[str]:
    if transport in ("docker", "atomic"):
        parsed = reference.parse(ref)
        return [parsed.identity(), *parsed.namespaces()]
    if transport == "containers-storage":
        # "[driver@root]name" identities: the full one, then the store prefix
        out = [ref]
        if ref.startswith("[") and "]" in ref:
            out.append(ref[: ref.index("]") + 1])
            store = ref[1 : ref.index("]")]
            if "@" in store:
                out.append(f"[{store.split('@', 1)[1]}]")
        return out
    if transport in _PATH_SCOPES:
        path = ref.split(":", 1)[0] if transport != "dir" else ref
        out = [ref] if ref != path else []
        parts = Path(path).parts
        for i in range(len(parts), 1, -1):
            out.append(str(Path(*parts[:i])))
        return out
    return [ref] if ref else []


def _docker_scopes(policy: Policy, test: Callable[[Requirement], bool]) -> list[str]:
    scopes = policy.transports.get("docker", {})
    return [s for s in _sorted_scopes(scopes) if any(test(r) for r in scopes[s])]


def signed_registries(policy: Policy) -> list[str]:
    """Docker scopes with a signedBy (or sigstoreSigned) requirement."""
    return _docker_scopes(policy, lambda r: r.type in (SIGNED_BY, SIGSTORE_SIGNED))


def unsigned_registries(policy: Policy) -> list[str]:
    """Docker scopes with any requirement that is not a signature check (as the original)."""
    return _docker_scopes(policy, lambda r: r.type not in (SIGNED_BY, SIGSTORE_SIGNED))


def non_docker_transports(policy: Policy) -> list[str]:
    return sorted(t for t in policy.transports if t != "docker")


def default_type(policy: Policy) -> str:
    """The first default requirement's type (``insecureAcceptAnything`` when empty)."""
    return policy.default[0].type if policy.default else ACCEPT
