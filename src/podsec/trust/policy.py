"""containers-policy.json: a typed model, a strict parser, rendering and scope resolution.

Parsing is as strict as containers/image: unknown or duplicate fields, a missing
``default``, a wrong type or an invalid requirement reject the whole file with a
:class:`~podsec.errors.ValidationError` naming the file and the field (a JSON path such as
``transports.docker["registry.local"][0].keyPth``).

Kept as one module over 500 lines: it is one file format, and its model, strict parser,
renderer and scope lookup change together (a new requirement type touches all four);
split, each such change would span four modules.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podsec import readers
from podsec.errors import NotFoundError, ValidationError
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
IDENTITY_SIMPLE = ("matchExact", "matchRepoDigestOrExact", "matchRepository")
KEY_TYPES = ("GPGKeys", "signedByGPGKeys", "X509Certificates", "signedByX509CAs")
_IDENTITY_FIELDS: dict[str, tuple[str, ...]] = {
    "exactReference": ("dockerReference",),
    "exactRepository": ("dockerRepository",),
    "remapIdentity": ("prefix", "signedPrefix"),
}


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


def sigstore_signed(key_path: str | Iterable[str]) -> Requirement:
    """A sigstoreSigned requirement with public key file(s) (identity matchRepoDigestOrExact)."""
    if isinstance(key_path, str):
        return Requirement(SIGSTORE_SIGNED, key_path=key_path)
    return Requirement(SIGSTORE_SIGNED, key_paths=tuple(key_path))


SIGSTORE_KEY_SUFFIX = ".pub"  # podsec's key files: NAME.pub (sigstore), NAME.pgp (GPG)


Scopes = dict[str, tuple[Requirement, ...]]


@dataclass(frozen=True)
class Policy:
    default: tuple[Requirement, ...]
    transports: dict[str, Scopes] = field(default_factory=dict)


# ------------------------------------------------------------------------------ parsing
# Parsed as containers/image does (signature/policy_config*.go): every object is read
# "paranoidly" (no duplicate or unknown key), Go's decoding rules for each field type
# (a JSON null leaves a string empty), then the same semantic checks. Known transports
# validate their scopes; unknown transports are kept as they are.
class _Obj(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs, so that duplicates stay visible."""


def _pairs(pairs: list[tuple[str, Any]]) -> _Obj:
    return _Obj(pairs)


def _field_path(base: str, key: str | int) -> str:
    """A JSON path for messages: ``transports.docker["registry.local"][0].keyPath``."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    if key and key.replace("-", "").replace("_", "").isalnum():
        return f"{base}.{key}" if base else key
    return f"{base}[{json.dumps(key)}]"


def plain(value: Any) -> Any:
    """Parsed JSON with ``_Obj`` pairs turned back into dicts (last key wins)."""
    if isinstance(value, _Obj):
        return {k: plain(v) for k, v in value}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


_KEY_SOURCES = ("keyPath", "keyPaths", "keyData")
_SIGSTORE_KEY_SOURCES = ("keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki")
_REKOR_SOURCES = (
    "rekorPublicKeyPath",
    "rekorPublicKeyPaths",
    "rekorPublicKeyData",
    "rekorPublicKeyDatas",
)


class _Parser:
    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, problem: str) -> ValidationError:
        return ValidationError(
            _("{file}: {field}: {problem}").format(
                file=self.source, field=path or _("(top level)"), problem=problem
            ),
            hint=_("fix the file; nothing was changed"),
        )

    # -- Go's decoding of one value --------------------------------------------------
    def obj(
        self, value: Any, path: str, allowed: Iterable[str] | None = None, *, exact: bool = False
    ) -> dict[str, Any]:
        """ParanoidUnmarshalJSONObject(ExactFields)."""
        if not isinstance(value, _Obj):
            raise self.fail(path, _("expected a JSON object"))
        allowed_set = None if allowed is None else set(allowed)
        out: dict[str, Any] = {}
        for key, item in value:
            if key in out:
                raise self.fail(_field_path(path, key), _("duplicate field"))
            if allowed_set is not None and key not in allowed_set:
                raise self.fail(_field_path(path, key), _("unknown field"))
            out[key] = item
        if exact:
            for key in allowed_set or ():
                if key not in out:
                    raise self.fail(_field_path(path, key), _("missing field"))
        return out

    def string(self, value: Any, path: str) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.fail(path, _("expected a string"))
        return value

    def strings(self, value: Any, path: str) -> list[str] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            raise self.fail(path, _("expected a list of strings"))
        return [self.string(v, _field_path(path, i)) for i, v in enumerate(value)]

    def data(self, value: Any, path: str) -> bytes | None:
        """A Go ``[]byte``: base64 text (line breaks ignored) or null."""
        if value is None:
            return None
        text = self.string(value, path).replace("\r", "").replace("\n", "")
        try:
            return base64.b64decode(text, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise self.fail(path, _("not valid base64")) from exc

    def datas(self, value: Any, path: str) -> list[bytes] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            raise self.fail(path, _("expected a list of base64 strings"))
        return [self.data(v, _field_path(path, i)) or b"" for i, v in enumerate(value)]

    # -- signedIdentity ------------------------------------------------------------
    def identity(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, _Obj):
            raise self.fail(path, _("expected a JSON object"))
        kind = self.string(_get(value, "type"), _field_path(path, "type"))
        if kind in IDENTITY_SIMPLE:
            self.obj(value, path, ("type",), exact=True)
            return {"type": kind}
        if kind not in _IDENTITY_FIELDS:
            raise self.fail(
                _field_path(path, "type"),
                _("unknown identity type {kind!r}").format(kind=kind),
            )
        wanted = _IDENTITY_FIELDS[kind]
        fields = self.obj(value, path, ("type", *wanted), exact=True)
        out: dict[str, Any] = {"type": kind}
        for name in wanted:
            out[name] = self.string(fields[name], _field_path(path, name))
        if kind == "exactReference":
            ref = self._reference(out["dockerReference"], _field_path(path, "dockerReference"))
            if ref.name_only:
                raise self.fail(
                    _field_path(path, "dockerReference"),
                    _("contains neither a tag nor digest"),
                )
        elif kind == "exactRepository":
            self._reference(out["dockerRepository"], _field_path(path, "dockerRepository"))
        else:
            for name in wanted:
                if not valid_remap_prefix(out[name]):
                    raise self.fail(
                        _field_path(path, name),
                        _("prefix {prefix!r} is not valid").format(prefix=out[name]),
                    )
        return out

    def _reference(self, text: str, path: str) -> reference.DockerRef:
        try:
            return reference.parse_normalized(text)
        except reference.ReferenceError as exc:
            raise self.fail(
                path, _("not a valid image reference: {err}").format(err=exc.message)
            ) from exc

    def _signed_identity(self, fields: dict[str, Any], path: str) -> dict[str, Any] | None:
        if "signedIdentity" not in fields:
            return None  # matchRepoDigestOrExact
        return self.identity(fields["signedIdentity"], _field_path(path, "signedIdentity"))

    # -- requirements ----------------------------------------------------------------
    def requirement(self, value: Any, path: str) -> Requirement:
        if not isinstance(value, _Obj):
            raise self.fail(path, _("expected a JSON object"))
        kind = self.string(_get(value, "type"), _field_path(path, "type"))
        if kind in (ACCEPT, REJECT):
            self.obj(value, path, ("type",), exact=True)
            return Requirement(kind)
        if kind == SIGNED_BY:
            return self._signed_by(value, path)
        if kind == SIGSTORE_SIGNED:
            return self._sigstore(value, path)
        if kind == SIGNED_BASE_LAYER:
            fields = self.obj(value, path, ("type", "baseLayerIdentity"), exact=True)
            ident = self.identity(
                fields["baseLayerIdentity"], _field_path(path, "baseLayerIdentity")
            )
            return Requirement(kind, extra=(("baseLayerIdentity", ident),))
        raise self.fail(
            _field_path(path, "type"), _("unknown requirement type {kind!r}").format(kind=kind)
        )

    def _signed_by(self, value: _Obj, path: str) -> Requirement:
        fields = self.obj(
            value, path, ("type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity")
        )
        key_type = fields.get("keyType", "")
        if not isinstance(key_type, str) or key_type not in KEY_TYPES:
            raise self.fail(
                _field_path(path, "keyType"),
                _("unrecognized keyType value {kind!r}").format(kind=key_type),
            )
        key_path = self.string(fields.get("keyPath"), _field_path(path, "keyPath"))
        key_paths = self.strings(fields.get("keyPaths"), _field_path(path, "keyPaths"))
        key_data = self.data(fields.get("keyData"), _field_path(path, "keyData"))
        ident = self._signed_identity(fields, path)
        present = [k for k in _KEY_SOURCES if k in fields]
        if not present:
            raise self.fail(path, _("exactly one of keyPath, keyPaths, keyData is required"))
        if (
            len(present) > 1
            or [bool(key_path), key_paths is not None, key_data is not None].count(True) != 1
        ):
            raise self.fail(path, _("exactly one of keyPath, keyPaths, keyData is required"))
        return Requirement(
            SIGNED_BY,
            key_type=key_type,
            key_path=key_path or None,
            key_paths=tuple(key_paths) if key_paths is not None else None,
            key_data=base64.b64encode(key_data).decode() if key_data is not None else None,
            signed_identity=ident,
        )

    def _sigstore(self, value: _Obj, path: str) -> Requirement:
        fields = self.obj(
            value, path, ("type", *_SIGSTORE_KEY_SOURCES, *_REKOR_SOURCES, "signedIdentity")
        )
        key_path = self.string(fields.get("keyPath"), _field_path(path, "keyPath"))
        key_paths = self.strings(fields.get("keyPaths"), _field_path(path, "keyPaths"))
        key_data = self.data(fields.get("keyData"), _field_path(path, "keyData"))
        key_datas = self.datas(fields.get("keyDatas"), _field_path(path, "keyDatas"))
        if "keyPaths" in fields and not key_paths:
            raise self.fail(_field_path(path, "keyPaths"), _("contains no entries"))
        if "keyDatas" in fields and not key_datas:
            raise self.fail(_field_path(path, "keyDatas"), _("contains no entries"))
        fulcio = self._fulcio(fields["fulcio"], path) if "fulcio" in fields else None
        pki = self._pki(fields["pki"], path) if "pki" in fields else None
        rekor_path = self.string(
            fields.get("rekorPublicKeyPath"), _field_path(path, "rekorPublicKeyPath")
        )
        rekor_paths = self.strings(
            fields.get("rekorPublicKeyPaths"), _field_path(path, "rekorPublicKeyPaths")
        )
        rekor_data = self.data(
            fields.get("rekorPublicKeyData"), _field_path(path, "rekorPublicKeyData")
        )
        rekor_datas = self.datas(
            fields.get("rekorPublicKeyDatas"), _field_path(path, "rekorPublicKeyDatas")
        )
        for name, items in (
            ("rekorPublicKeyPaths", rekor_paths),
            ("rekorPublicKeyDatas", rekor_datas),
        ):
            if name in fields and not items:
                raise self.fail(_field_path(path, name), _("contains no entries"))
        ident = self._signed_identity(fields, path)
        sources = [
            bool(key_path),
            key_paths is not None,
            key_data is not None,
            key_datas is not None,
            fulcio is not None,
            pki is not None,
        ].count(True)
        if sources != 1:
            raise self.fail(
                path,
                _("exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio, pki is required"),
            )
        rekor = [
            bool(rekor_path),
            rekor_paths is not None,
            rekor_data is not None,
            rekor_datas is not None,
        ].count(True)
        if rekor > 1:
            raise self.fail(
                path,
                _(
                    "at most one of rekorPublicKeyPath, rekorPublicKeyPaths, rekorPublicKeyData, "
                    "rekorPublicKeyDatas can be used"
                ),
            )
        if fulcio is not None and rekor == 0:
            raise self.fail(_field_path(path, "fulcio"), _("fulcio needs a rekorPublicKey* source"))
        if pki is not None and rekor > 0:
            raise self.fail(_field_path(path, "pki"), _("rekorPublicKey* is not supported for pki"))
        extra = tuple(
            (k, plain(v))
            for k, v in fields.items()
            if k not in ("type", "keyPath", "keyPaths", "keyData", "signedIdentity")
        )
        return Requirement(
            SIGSTORE_SIGNED,
            key_path=key_path or None,
            key_paths=tuple(key_paths) if key_paths is not None else None,
            key_data=base64.b64encode(key_data).decode() if key_data is not None else None,
            signed_identity=ident,
            extra=extra,
        )

    def _fulcio(self, value: Any, base: str) -> dict[str, Any]:
        path = _field_path(base, "fulcio")
        fields = self.obj(value, path, ("caPath", "caData", "oidcIssuer", "subjectEmail"))
        ca_path = self.string(fields.get("caPath"), _field_path(path, "caPath"))
        ca_data = self.data(fields.get("caData"), _field_path(path, "caData"))
        issuer = self.string(fields.get("oidcIssuer"), _field_path(path, "oidcIssuer"))
        email = self.string(fields.get("subjectEmail"), _field_path(path, "subjectEmail"))
        if ca_path and ca_data is not None:
            raise self.fail(path, _("caPath and caData cannot be used simultaneously"))
        if not ca_path and ca_data is None:
            raise self.fail(path, _("one of caPath and caData must be specified"))
        if not issuer:
            raise self.fail(_field_path(path, "oidcIssuer"), _("missing field"))
        if not email:
            raise self.fail(_field_path(path, "subjectEmail"), _("missing field"))
        return fields

    def _pki(self, value: Any, base: str) -> dict[str, Any]:
        path = _field_path(base, "pki")
        names = (
            "caRootsPath",
            "caRootsData",
            "caIntermediatesPath",
            "caIntermediatesData",
            "subjectEmail",
            "subjectHostname",
        )
        fields = self.obj(value, path, names)
        roots_path = self.string(fields.get("caRootsPath"), _field_path(path, "caRootsPath"))
        roots_data = self.data(fields.get("caRootsData"), _field_path(path, "caRootsData"))
        mid_path = self.string(
            fields.get("caIntermediatesPath"), _field_path(path, "caIntermediatesPath")
        )
        mid_data = self.data(
            fields.get("caIntermediatesData"), _field_path(path, "caIntermediatesData")
        )
        email = self.string(fields.get("subjectEmail"), _field_path(path, "subjectEmail"))
        hostname = self.string(fields.get("subjectHostname"), _field_path(path, "subjectHostname"))
        if roots_path and roots_data is not None:
            raise self.fail(path, _("caRootsPath and caRootsData cannot be used simultaneously"))
        if not roots_path and roots_data is None:
            raise self.fail(path, _("one of caRootsPath and caRootsData must be specified"))
        if mid_path and mid_data is not None:
            raise self.fail(
                path, _("caIntermediatesPath and caIntermediatesData cannot be used simultaneously")
            )
        if not email and not hostname:
            raise self.fail(path, _("one of subjectEmail, subjectHostname must be specified"))
        return fields

    def requirements(self, value: Any, path: str) -> tuple[Requirement, ...]:
        if value is None:
            value = []
        if not isinstance(value, list):
            raise self.fail(path, _("expected a list of requirements"))
        if not value:
            raise self.fail(path, _("an empty requirement list is not allowed"))
        return tuple(self.requirement(item, _field_path(path, i)) for i, item in enumerate(value))

    def policy(self, data: Any) -> Policy:
        top = self.obj(data, "", ("default", "transports"))
        if "default" not in top:
            raise self.fail("default", _("missing field"))
        default = self.requirements(top["default"], "default")
        transports: dict[str, Scopes] = {}
        if "transports" in top:
            for name, raw_scopes in self.obj(top["transports"], "transports").items():
                tpath = _field_path("transports", name)
                parsed: Scopes = {}
                for scope, reqs in self.obj(raw_scopes, tpath).items():
                    spath = f"{tpath}[{json.dumps(scope)}]"  # scopes always quoted
                    if scope:
                        problem = scope_problem(name, scope)
                        if problem is not None:
                            raise self.fail(spath, problem)
                    parsed[scope] = self.requirements(reqs, spath)
                transports[name] = parsed
        return Policy(default, transports)


def _get(value: Any, key: str) -> Any:
    """A field of an object for dispatching (Go decodes the last ``type`` it sees)."""
    found = None
    if isinstance(value, _Obj):
        for k, v in value:
            if k == key:
                found = v
    return found


def valid_remap_prefix(text: str) -> bool:
    """containers/image's validateIdentityRemappingPrefix: a host[:port], or a name that
    starts with a host."""
    if reference.valid_domain(text):
        return True
    return reference.valid_name(text) and bool(
        re.match(rf"(?:{reference.DOMAIN})/", text, re.ASCII)
    )


def _go_clean(path: str) -> str:
    """Go's filepath.Clean for absolute paths."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


_ATOMIC_SCOPE = re.compile(r"[^/]*(/[^:/]*(/[^:/]*(:[^:/]*)?)?)?")


def scope_problem(transport: str, scope: str) -> str | None:
    """None if ``scope`` is valid for ``transport`` (``ValidatePolicyConfigurationScope``
    of containers/image's transports; unknown transports accept any scope)."""
    if transport in ("docker", "ostree") or transport not in KNOWN_TRANSPORTS:
        return None
    if transport in _ONLY_DEFAULT_SCOPE:
        return _('this transport allows only the "" scope')
    if transport in _PATH_SCOPES:
        if not scope.startswith("/"):
            return _("the scope must be an absolute path")
        if scope == "/":
            return _('the scope "/" is not allowed, use the default scope ""')
        if _go_clean(scope) != scope:
            return _("non-canonical path, perhaps {clean}").format(clean=_go_clean(scope))
        return None
    if transport == "atomic":
        return None if _ATOMIC_SCOPE.fullmatch(scope) else _("invalid scope name")
    if transport == "docker-daemon":
        if reference.is_valid_digest(scope):
            return _("an algo:digest value cannot be a namespace")
        return None
    if transport == "containers-storage":
        return _storage_scope_problem(scope)
    return None


def _storage_scope_problem(scope: str) -> str | None:  # noqa: PLR0912 - one rule each
    if not scope.startswith("["):
        return _("invalid reference")
    close = scope.find("]")
    if close < 1:
        return _("invalid reference")
    spec, rest = scope[1:close], scope[close + 1 :]
    a, sep, b = spec.partition("@")
    if sep and a and b:
        if not b.startswith("/"):
            return _("the store path must be absolute")
    elif not sep and a:
        if not spec.startswith("/"):
            return _("the store path must be absolute")
    else:
        return _("invalid reference")
    if not rest:
        return None
    fields = rest.split("@", 2)
    if len(fields) == 2:
        if not reference.is_valid_digest("sha256:" + fields[1]) and not reference.is_valid_digest(
            fields[1]
        ):
            return _("{value} is neither a valid digest nor a valid ID").format(value=fields[1])
    elif len(fields) == 3:
        if not reference.is_valid_digest(fields[1]):
            return _("{value} is not a valid digest").format(value=fields[1])
        if not reference.is_valid_digest("sha256:" + fields[2]):
            return _("{value} is not a valid image ID").format(value=fields[2])
    return None


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
        identity, namespaces = path_identity(transport, ref)
        return [identity, *namespaces]
    return [ref] if ref else []


def path_identity(transport: str, ref: str) -> tuple[str, list[str]]:
    """PolicyConfigurationIdentity/Namespaces of a path transport (containers/image):
    ``dir:``/``sif:`` — the path, then its parents; ``oci:``/``oci-archive:`` — the
    directory (the image name after ``:`` is not part of it), then itself and its
    parents; never ``/`` as a namespace."""
    path = ref.split(":", 1)[0] if transport in ("oci", "oci-archive") else ref
    identity = _go_clean(path) if path.startswith("/") else path
    namespaces: list[str] = []
    current = identity
    if transport in ("oci", "oci-archive"):
        while "/" in current and current != "/":
            namespaces.append(current)
            current = current[: current.rindex("/")]
    else:
        while current.rfind("/") > 0:
            current = current[: current.rindex("/")]
            namespaces.append(current)
    return identity, namespaces


def _docker_scopes(policy: Policy, test: Callable[[Requirement], bool]) -> list[str]:
    scopes = policy.transports.get("docker", {})
    return [s for s in _sorted_scopes(scopes) if any(test(r) for r in scopes[s])]


def sigstore_scopes(policy: Policy) -> list[str]:
    """Docker scopes with a sigstoreSigned requirement (they need sigstore attachments)."""
    return _docker_scopes(policy, lambda r: r.type == SIGSTORE_SIGNED)


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
