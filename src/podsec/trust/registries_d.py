"""containers-registries.d: where signatures are read from and written to.

All ``*.yaml`` files of the directory are merged; at most one ``default-docker`` and each
``docker:`` scope once across files (containers/image's rule). Both the current
``lookaside``/``lookaside-staging`` keys and the legacy ``sigstore``/``sigstore-staging``
keys are read (podsec writes both, CRI-O < 1.26 reads only the old ones). Unlike
containers/image — which silently ignores a typo such as ``lookasid:`` — unknown keys,
duplicate keys and conflicting values are rejected naming the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from podsec import readers
from podsec.errors import PodsecError, ValidationError
from podsec.i18n import _
from podsec.trust import reference

SECTION_KEYS = (
    "lookaside",
    "lookaside-staging",
    "sigstore",
    "sigstore-staging",
    "use-sigstore-attachments",
)
ROOT_BUILTIN = "file:///var/lib/containers/sigstore"


@dataclass(frozen=True)
class Section:
    lookaside: str | None = None
    lookaside_staging: str | None = None
    use_sigstore_attachments: bool = False
    source: str = field(default="", compare=False)

    def url(self, write: bool = False) -> str | None:
        """The base URL used for reading (or writing: staging first) — c/image's order."""
        if write and self.lookaside_staging:
            return self.lookaside_staging
        return self.lookaside


@dataclass(frozen=True)
class RegistriesD:
    default_docker: Section | None = None
    docker: dict[str, Section] = field(default_factory=dict)


class _StrictLoader(yaml.SafeLoader):
    pass


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _fail(source: str, key: str, problem: str) -> ValidationError:
    return ValidationError(
        _("{file}: {field}: {problem}").format(file=source, field=key, problem=problem),
        hint=_("fix the file; nothing was changed"),
    )


def _url(source: str, key: str, value: Any, schemes: tuple[str, ...]) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(source, key, _("expected a URL"))
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in schemes:
        raise _fail(
            source,
            key,
            _("unsupported URL {url!r} (expected {schemes})").format(
                url=value, schemes=", ".join(f"{s}://" for s in schemes)
            ),
        )
    return value


def parse_section(value: Any, source: str, where: str) -> Section:
    if value is None:
        return Section(source=source)
    if not isinstance(value, dict):
        raise _fail(source, where, _("expected a mapping"))
    for key in value:
        if key not in SECTION_KEYS:
            raise _fail(source, f"{where}.{key}", _("unknown key"))
    read = {
        k: _url(source, f"{where}.{k}", value[k], ("http", "https", "file"))
        for k in ("lookaside", "sigstore")
        if k in value
    }
    write = {
        k: _url(source, f"{where}.{k}", value[k], ("file",))
        for k in ("lookaside-staging", "sigstore-staging")
        if k in value
    }
    if len(set(read.values())) > 1:
        raise _fail(source, f"{where}.sigstore", _("differs from lookaside"))
    if len(set(write.values())) > 1:
        raise _fail(source, f"{where}.sigstore-staging", _("differs from lookaside-staging"))
    attach = value.get("use-sigstore-attachments", False)
    if not isinstance(attach, bool):
        raise _fail(source, f"{where}.use-sigstore-attachments", _("expected true or false"))
    return Section(
        next(iter(read.values()), None), next(iter(write.values()), None), attach, source
    )


def parse(text: str, source: str) -> RegistriesD:
    """Parse one registries.d YAML file strictly."""
    data = readers.parse_yaml(text, source, loader=_StrictLoader)
    if data is None:
        return RegistriesD()
    if not isinstance(data, dict):
        raise _fail(source, "(top level)", _("expected a mapping"))
    for key in data:
        if key not in ("default-docker", "docker"):
            raise _fail(source, str(key), _("unknown key"))
    default = (
        parse_section(data["default-docker"], source, "default-docker")
        if "default-docker" in data
        else None
    )
    docker: dict[str, Section] = {}
    raw = data.get("docker") or {}
    if not isinstance(raw, dict):
        raise _fail(source, "docker", _("expected a mapping"))
    for scope, section in raw.items():
        where = f"docker.{scope}"
        if not isinstance(scope, str) or not _valid_scope(scope):
            raise _fail(source, where, _("invalid docker scope"))
        docker[scope] = parse_section(section, source, where)
    return RegistriesD(default, docker)


def _valid_scope(scope: str) -> bool:
    if scope.startswith("*."):
        return all(scope[2:].split("."))
    host = scope.split("/", 1)[0]
    if not reference._DOMAIN_RE.match(host):
        return False
    if "/" not in scope:
        return True
    try:
        reference.parse(scope)
    except PodsecError:
        return False
    return True


def merge(parts: list[RegistriesD]) -> RegistriesD:
    """Merge parsed files; a second default-docker or a repeated scope is a conflict."""
    default: Section | None = None
    docker: dict[str, Section] = {}
    for part in parts:
        if part.default_docker is not None:
            if default is not None:
                raise ValidationError(
                    _("{file}: default-docker is also defined in {other}").format(
                        file=part.default_docker.source, other=default.source
                    ),
                    hint=_("keep one default-docker section in the directory"),
                )
            default = part.default_docker
        for scope, section in part.docker.items():
            if scope in docker:
                raise ValidationError(
                    _("{file}: docker.{scope} is also defined in {other}").format(
                        file=section.source, scope=scope, other=docker[scope].source
                    ),
                    hint=_("define each scope in one file only"),
                )
            docker[scope] = section
    return RegistriesD(default, docker)


def load_dir(path: Path, display: str | None = None) -> RegistriesD:
    """Load and merge every ``*.yaml`` in ``path`` (a missing directory is empty)."""
    if not path.is_dir():
        return RegistriesD()
    shown = display or str(path)
    parts = [
        parse(readers.read_text(f, shown=f"{shown}/{f.name}") or "", f"{shown}/{f.name}")
        for f in sorted(path.glob("*.yaml"))
    ]
    return merge(parts)


def section_for(conf: RegistriesD, image_ref: str) -> tuple[str | None, Section | None]:
    """The most specific matching section (scope name, section); default-docker last."""
    ref = reference.parse(image_ref)
    for scope in (ref.identity(), *ref.namespaces()):
        if scope in conf.docker:
            return scope, conf.docker[scope]
    if conf.default_docker is not None:
        return "default-docker", conf.default_docker
    return None, None


def lookaside_for(conf: RegistriesD, image_ref: str, *, write: bool = False) -> str | None:
    """The lookaside base URL for ``image_ref`` as containers/image resolves it: the most
    specific scope that has a URL (an empty section falls through to its parents), then
    default-docker; None means the built-in default (``ROOT_BUILTIN`` for root)."""
    ref = reference.parse(image_ref)
    for scope in (ref.identity(), *ref.namespaces()):
        section = conf.docker.get(scope)
        if section is not None and section.url(write):
            return section.url(write)
    if conf.default_docker is not None:
        return conf.default_docker.url(write)
    return None


def signature_url(base: str, repository_path: str, digest: str, index: int) -> str:
    """``<base>/<repo path without host>@sha256=<hex>/signature-<N>``."""
    return f"{signature_dir_url(base, repository_path, digest)}/signature-{index}"


def signature_dir_url(base: str, repository_path: str, digest: str) -> str:
    algo, _sep, hexpart = digest.partition(":")
    return f"{base.rstrip('/')}/{repository_path.strip('/')}@{algo}={hexpart}"


def render_section(lookaside: str | None, staging: str | None = None, *, indent: int = 2) -> str:
    """YAML lines of a section with the current AND the legacy key names."""
    pad = " " * indent
    out = []
    if lookaside:
        out += [f"{pad}lookaside: {lookaside}", f"{pad}sigstore: {lookaside}"]
    if staging:
        out += [f"{pad}lookaside-staging: {staging}", f"{pad}sigstore-staging: {staging}"]
    return "\n".join(out) + "\n"


def render(conf: RegistriesD, header: str = "") -> str:
    """A registries.d file (both key spellings), stable order."""
    out = f"# {header}\n" if header else ""
    if conf.default_docker is not None:
        d = conf.default_docker
        out += "default-docker:\n" + render_section(d.lookaside, d.lookaside_staging)
    if conf.docker:
        out += "docker:\n"
        for scope in sorted(conf.docker):
            s = conf.docker[scope]
            out += f"  {scope}:\n" + render_section(s.lookaside, s.lookaside_staging, indent=4)
    return out
