"""containers-registries.d: where signatures are read from and written to.

Read as containers/image reads it (``docker/registries_d.go``): every ``*.yaml`` of the
directory is merged, at most one ``default-docker`` and each ``docker:`` scope once across
files; a YAML error or a duplicate key refuses the directory. Per section, ``lookaside``
wins over the legacy ``sigstore`` (``lookaside-staging`` > ``sigstore-staging`` > the read
URL for writing); an empty section or value falls through to the parent scopes, then to
``default-docker``, then to the built-in default (``/var/lib/containers/sigstore`` for root,
``~/.local/share/containers/sigstore`` for other users). A URL is checked only when a lookup
uses it, so one bad section does not break the images of other scopes.

Deliberately stricter than containers/image (which silently ignores a typo such as
``lookasid:``): unknown keys and scopes that can never match are *warnings* in files podsec
did not write (``RegistriesD.warnings``), and refusals in podsec's own files.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podsec import readers
from podsec.errors import PodsecError, ValidationError
from podsec.i18n import _
from podsec.trust import reference

if TYPE_CHECKING:
    import yaml  # imported where a document is parsed: the plugins read registries.d only then

USER_BUILTIN = ".local/share/containers/sigstore"  # under the user's home (non-root)
SECTION_KEYS = (
    "lookaside",
    "lookaside-staging",
    "sigstore",
    "sigstore-staging",
    "use-sigstore-attachments",
)
ROOT_BUILTIN = "file:///var/lib/containers/sigstore"
OWN_MARKER = "# Written by podsec"  # first line of the files podsec writes
_READ_SCHEMES = ("file", "http", "https")


def user_builtin(home: Path | str) -> str:
    """The built-in lookaside of a non-root user (containers/image's rootless default)."""
    return "file://" + str(Path(home) / USER_BUILTIN)


@dataclass(frozen=True)
class Section:
    lookaside: str | None = None
    lookaside_staging: str | None = None
    use_sigstore_attachments: bool | None = None
    source: str = field(default="", compare=False)
    sigstore: str | None = None  # legacy spellings, read after the current ones
    sigstore_staging: str | None = None
    where: str = field(default="", compare=False)  # "docker.<scope>" or "default-docker"

    def top_level(self, write: bool = False) -> tuple[str, str] | None:
        """(key, URL) containers/image uses for reading (or writing), or None."""
        order = ["lookaside", "sigstore"]
        if write:
            order = ["lookaside-staging", "sigstore-staging", *order]
        values = {
            "lookaside": self.lookaside,
            "sigstore": self.sigstore,
            "lookaside-staging": self.lookaside_staging,
            "sigstore-staging": self.sigstore_staging,
        }
        for key in order:
            value = values[key]
            if value:
                return key, value
        return None

    def url(self, write: bool = False) -> str | None:
        found = self.top_level(write)
        return found[1] if found else None


@dataclass(frozen=True)
class RegistriesD:
    default_docker: Section | None = None
    docker: dict[str, Section] = field(default_factory=dict)
    builtin: str = ROOT_BUILTIN
    warnings: tuple[str, ...] = ()


def _fail(source: str, key: str, problem: str) -> ValidationError:
    return ValidationError(
        _("{file}: {field}: {problem}").format(file=source, field=key, problem=problem),
        hint=_("fix the file; nothing was changed"),
    )


# ------------------------------------------------------------------------------ parsing
def _scalar_text(node: yaml.Node) -> str | None:
    """A scalar as yaml.v3 stores it in a Go string field (null → empty)."""
    import yaml

    if not isinstance(node, yaml.ScalarNode):
        return None
    if node.tag == "tag:yaml.org,2002:null" or (
        node.style is None and node.value in ("", "~", "null", "Null", "NULL")
    ):
        return ""
    return str(node.value)


_TRUE = ("true", "True", "TRUE", "y", "Y", "yes", "Yes", "YES", "on", "On", "ON")
_FALSE = ("false", "False", "FALSE", "n", "N", "no", "No", "NO", "off", "Off", "OFF")


def _pairs(node: yaml.Node, source: str, where: str) -> list[tuple[str, yaml.Node]]:
    """A mapping's (key, value) pairs; a duplicate key is an error (as yaml.v3)."""
    import yaml

    if not isinstance(node, yaml.MappingNode):
        raise _fail(source, where or "(top level)", _("expected a mapping"))
    out: list[tuple[str, yaml.Node]] = []
    seen: set[str] = set()
    for key_node, value in node.value:
        key = _scalar_text(key_node)
        if key is None:
            raise _fail(source, where or "(top level)", _("expected a mapping"))
        if key in seen:
            raise _fail(
                source,
                f"{where}.{key}" if where else key,
                _("mapping key {key!r} already defined").format(key=key),
            )
        seen.add(key)
        out.append((key, value))
    return out


def _is_null(node: yaml.Node) -> bool:
    import yaml

    return isinstance(node, yaml.ScalarNode) and _scalar_text(node) == "" and node.style is None


class _Parse:
    def __init__(self, source: str, own: bool):
        self.source = source
        self.own = own
        self.warnings: list[str] = []

    def lenient(self, key: str, problem: str) -> None:
        """podsec's own stricter rule: a refusal in its own files, else a warning."""
        if self.own:
            raise _fail(self.source, key, problem)
        self.warnings.append(
            _("{file}: {field}: {problem}").format(file=self.source, field=key, problem=problem)
        )

    def section(self, node: yaml.Node, where: str) -> Section:
        if _is_null(node):
            return Section(source=self.source, where=where)
        values: dict[str, Any] = {}
        for key, value in _pairs(node, self.source, where):
            path = f"{where}.{key}"
            if key not in SECTION_KEYS:
                self.lenient(path, _("unknown key (containers/image ignores it)"))
                continue
            text = _scalar_text(value)
            if text is None:
                raise _fail(self.source, path, _("expected a string"))
            if key == "use-sigstore-attachments":
                if text in _TRUE:
                    values[key] = True
                elif text in _FALSE:
                    values[key] = False
                elif text == "":
                    values[key] = None
                else:
                    raise _fail(self.source, path, _("expected true or false"))
                continue
            values[key] = text or None
        read, legacy = values.get("lookaside"), values.get("sigstore")
        if read and legacy and read != legacy:
            self.lenient(f"{where}.sigstore", _("differs from lookaside, which is used"))
        wr, wlegacy = values.get("lookaside-staging"), values.get("sigstore-staging")
        if wr and wlegacy and wr != wlegacy:
            self.lenient(
                f"{where}.sigstore-staging", _("differs from lookaside-staging, which is used")
            )
        return Section(
            values.get("lookaside"),
            values.get("lookaside-staging"),
            values.get("use-sigstore-attachments"),
            self.source,
            values.get("sigstore"),
            values.get("sigstore-staging"),
            where,
        )

    def document(self, text: str) -> RegistriesD:
        # syntax, size and alias bombs checked by the shared reader; then the node tree
        # (bounded the same way) keeps duplicates and scalar styles visible
        readers.parse_yaml(text, self.source)
        loader: Any = readers.bounded_loader()(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
        if root is None or _is_null(root):
            return RegistriesD()
        default: Section | None = None
        docker: dict[str, Section] = {}
        for key, value in _pairs(root, self.source, ""):
            if key == "default-docker":
                default = self.section(value, "default-docker")
            elif key == "docker":
                if _is_null(value):
                    continue
                for scope, section in _pairs(value, self.source, "docker"):
                    where = f"docker.{scope}"
                    if not _valid_scope(scope):
                        self.lenient(where, _("not a docker scope: no image can match it"))
                    docker[scope] = self.section(section, where)
            else:
                self.lenient(key, _("unknown key (containers/image ignores it)"))
        return RegistriesD(default, docker, warnings=tuple(self.warnings))


def parse(text: str, source: str, *, own: bool | None = None) -> RegistriesD:
    """Parse one registries.d YAML file (``own``: podsec wrote it; default: its header)."""
    if own is None:
        own = text.startswith(OWN_MARKER)
    return _Parse(source, own).document(text)


def _valid_scope(scope: str) -> bool:
    if scope.startswith("*."):
        return all(scope[2:].split("."))
    host = scope.split("/", 1)[0]
    if not reference.valid_domain(host):
        return False
    if "/" not in scope:
        return True
    try:
        reference.parse_normalized(scope)
    except PodsecError:
        return False
    return True


def merge(parts: list[RegistriesD]) -> RegistriesD:
    """Merge parsed files; a second default-docker or a repeated scope is a conflict."""
    default: Section | None = None
    docker: dict[str, Section] = {}
    warnings: list[str] = []
    for part in parts:
        warnings += part.warnings
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
    return RegistriesD(default, docker, warnings=tuple(warnings))


def load_dir(path: Path, display: str | None = None, *, builtin: str = ROOT_BUILTIN) -> RegistriesD:
    """Load and merge every ``*.yaml`` in ``path`` (a missing directory is empty)."""
    shown = display or str(path)
    if not path.exists():
        return RegistriesD(builtin=builtin)
    if not path.is_dir():  # containers/image cannot list it: an error, not "empty"
        raise ValidationError(_("{file}: not a directory").format(file=shown))
    parts = []
    for f in sorted(path.iterdir()):
        if not f.name.endswith(".yaml"):
            continue
        text = readers.read_text(f, shown=f"{shown}/{f.name}")
        if text is None:  # removed meanwhile, as containers/image skips it
            continue
        parts.append(parse(text, f"{shown}/{f.name}"))
    return replace(merge(parts), builtin=builtin)


# ------------------------------------------------------------------------------ lookups
def section_for(conf: RegistriesD, image_ref: str) -> tuple[str | None, Section | None]:
    """The most specific matching section (scope name, section); default-docker last."""
    ref = reference.parse(image_ref)
    for scope in (ref.identity(), *ref.namespaces()):
        if scope in conf.docker:
            return scope, conf.docker[scope]
    if conf.default_docker is not None:
        return "default-docker", conf.default_docker
    return None, None


def _chosen(conf: RegistriesD, image_ref: str, write: bool) -> tuple[Section, str, str] | None:
    ref = reference.parse(image_ref)
    for scope in (ref.identity(), *ref.namespaces()):
        section = conf.docker.get(scope)
        if section is not None:
            found = section.top_level(write)
            if found:
                return section, found[0], found[1]
    if conf.default_docker is not None:
        found = conf.default_docker.top_level(write)
        if found:
            return conf.default_docker, found[0], found[1]
    return None


def use_sigstore_attachments(conf: RegistriesD, image_ref: str) -> bool:
    """containers/image's ``useSigstoreAttachments``: the most specific scope that sets
    ``use-sigstore-attachments``, then default-docker; false when none does."""
    ref = reference.parse(image_ref)
    for scope in (ref.identity(), *ref.namespaces()):
        section = conf.docker.get(scope)
        if section is not None and section.use_sigstore_attachments is not None:
            return section.use_sigstore_attachments
    if conf.default_docker is not None and conf.default_docker.use_sigstore_attachments is not None:
        return conf.default_docker.use_sigstore_attachments
    return False


def url_problem(url: str) -> str | None:
    """None if Go's url.Parse accepts ``url`` (what containers/image checks when it looks a
    scope's lookaside up), else its reason. The scheme is checked only when reading."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return _("invalid control character in URL")
    if url.startswith(":"):
        return _("missing protocol scheme")
    if re.search(r"%(?![0-9A-Fa-f]{2})", url):
        return _("invalid URL escape")
    try:
        parts = urllib.parse.urlsplit(url)
        _port = parts.port
    except ValueError as exc:
        return _("invalid URL: {err}").format(err=exc)
    return None


def scheme_problem(url: str, *, write: bool = False) -> str | None:
    """None when containers/image can read (write) signatures at ``url``."""
    scheme = urllib.parse.urlsplit(url).scheme
    if write:
        if scheme != "file":
            return _("writing to {url} is not supported; use a file:// URL").format(url=url)
    elif scheme not in _READ_SCHEMES:
        return _("Unsupported scheme when reading signature from {url}").format(url=url)
    return None


def lookaside_for(conf: RegistriesD, image_ref: str, *, write: bool = False) -> str:
    """The lookaside base URL for ``image_ref`` as containers/image resolves it: the most
    specific scope with a URL, then default-docker, then the built-in default. A URL that
    does not parse is an error naming its file and key — only for the images that use it."""
    chosen = _chosen(conf, image_ref, write)
    if chosen is None:
        return conf.builtin
    section, key, url = chosen
    problem = url_problem(url)
    if problem is not None:
        where = f"{section.where}.{key}" if section.where else key
        raise _fail(section.source or "registries.d", where, problem)
    return url


def base_url(top_level: str, repository_path: str) -> str:
    """containers/image's lookasideStorageBaseURL: ``/`` + the repository path (no host,
    tag or digest) appended to the top-level URL's path as written."""
    parts = urllib.parse.urlsplit(top_level)
    return urllib.parse.urlunsplit(parts._replace(path=parts.path + "/" + repository_path))


def storage_url(base: str, digest: str, index: int) -> str:
    """containers/image's lookasideStorageURL: ``<base>@<algo>=<hex>/signature-<index+1>``;
    an invalid digest (``sha256:../x``) is an error, never a path."""
    problem = reference.digest_problem(digest)
    if problem is not None:
        raise ValidationError(
            _("invalid manifest digest {digest!r}: {err}").format(digest=digest, err=problem)
        )
    algo, _sep, hexpart = digest.partition(":")
    parts = urllib.parse.urlsplit(base)
    path = f"{parts.path}@{algo}={hexpart}/signature-{index + 1}"
    return urllib.parse.urlunsplit(parts._replace(path=path))


def configured_lookaside(conf: RegistriesD, image_ref: str, *, write: bool = False) -> str | None:
    """Like :func:`lookaside_for`, but None where only the built-in default applies."""
    if _chosen(conf, image_ref, write) is None:
        return None
    return lookaside_for(conf, image_ref, write=write)


def signature_dir_url(base: str, repository_path: str, digest: str) -> str:
    """The folder of an image's signatures: ``<base>/<repo path>@<algo>=<hex>`` (a base
    ending in ``/`` gives ``…//repo@…``, as containers/image requests it)."""
    return storage_url(base_url(base, repository_path), digest, 0).rsplit("/", 1)[0]


def signature_url(base: str, repository_path: str, digest: str, index: int) -> str:
    """``<base>/<repo path>@sha256=<hex>/signature-<N>`` (N from 1)."""
    return storage_url(base_url(base, repository_path), digest, index - 1)


def render_section(
    lookaside: str | None,
    staging: str | None = None,
    *,
    indent: int = 2,
    attachments: bool | None = None,
) -> str:
    """YAML lines of a section with the current AND the legacy key names."""
    pad = " " * indent
    out = []
    if lookaside:
        out += [f"{pad}lookaside: {lookaside}", f"{pad}sigstore: {lookaside}"]
    if staging:
        out += [f"{pad}lookaside-staging: {staging}", f"{pad}sigstore-staging: {staging}"]
    if attachments is not None:
        out.append(f"{pad}use-sigstore-attachments: {'true' if attachments else 'false'}")
    return "\n".join(out) + "\n"


def render(conf: RegistriesD, header: str = "") -> str:
    """A registries.d file (both key spellings), stable order."""
    out = f"# {header}\n" if header else ""
    if conf.default_docker is not None:
        d = conf.default_docker
        out += "default-docker:\n" + render_section(
            d.lookaside, d.lookaside_staging, attachments=d.use_sigstore_attachments
        )
    if conf.docker:
        out += "docker:\n"
        for scope in sorted(conf.docker):
            s = conf.docker[scope]
            out += f"  {scope}:\n" + render_section(
                s.lookaside, s.lookaside_staging, indent=4, attachments=s.use_sigstore_attachments
            )
    return out
