"""Settings: defaults, then ``<root>/etc/podsec/podsec.toml``, then the environment.

One frozen :class:`Settings` object is built once per command and passed down. Invalid
values (a bad ``U7S_*`` variable, invalid TOML, an unknown key, a ``--root`` that is not a
directory) raise :class:`~podsec.errors.ConfigError` (exit 2) before anything is written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from podsec import readers
from podsec.errors import ConfigError
from podsec.i18n import _
from podsec.names import U7S_USER

CONFIG_FILE = "/etc/podsec/podsec.toml"

_VERSION_RE = re.compile(r"^v\d+\.\d+(\.\d+)?\Z")
_PLATFORM_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*\Z")
_REGISTRY_RE = re.compile(r"^[A-Za-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)*\Z")
_HOSTPORT_RE = re.compile(r"^[A-Za-z0-9.-]+(:\d+)?\Z")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_EMAIL_RE = re.compile(r"^[^\s@,;|&$`<>]+(@[^\s@,;|&$`<>]+)?\Z")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
CNI_PLUGINS = ("flannel", "calico", "bridge")


@dataclass(frozen=True)
class Settings:
    """Everything podsec reads from its configuration and environment."""

    root: Path = Path("/")
    # None: not set (choose automatically, as the original did); "": set but empty
    # (upstream registry.k8s.io); anything else is honoured as given.
    registry: str | None = None
    platform: str | None = None
    kube_version: str | None = None
    set_available_images: bool = False
    flannel_tag: str | None = None
    flannel_cni_plugin_tag: str | None = None
    cni_plugin: str = "flannel"
    trivy_server: str = "trivy.local"
    mailto: str | None = None
    debug: bool = False
    # test and packaging seams, environment only (PODSEC_*)
    u7s_user: str = U7S_USER
    kubeadm: str | None = None
    trivy: str = "trivy"
    u7s_oci_images: Path | None = None
    config_file: Path | None = field(default=None, compare=False)


# TOML section.key → (Settings field, validator)
_FILE_KEYS: dict[str, dict[str, str]] = {
    "u7s": {
        "registry": "registry",
        "platform": "platform",
        "kube_version": "kube_version",
        "set_available_images": "set_available_images",
        "flannel_tag": "flannel_tag",
        "flannel_cni_plugin_tag": "flannel_cni_plugin_tag",
        "cni_plugin": "cni_plugin",
        "debug": "debug",
    },
    "monitor": {"trivy_server": "trivy_server", "mailto": "mailto"},
}

_ENV_KEYS: dict[str, str] = {
    "U7S_REGISTRY": "registry",
    "U7S_PLATFORM": "platform",
    "U7S_KUBEVERSION": "kube_version",
    "U7S_SETAVAILABLEIMAGES": "set_available_images",
    "U7S_FLANNEL_TAG": "flannel_tag",
    "U7S_FLANNELCNIPLUGIN_TAG": "flannel_cni_plugin_tag",
    "U7S_CNI_PLUGIN": "cni_plugin",
    "U7S_TRIVY_SERVER": "trivy_server",
    "U7S_DEBUG": "debug",
    "MAILTO": "mailto",
    "PODSEC_U7S_USER": "u7s_user",  # the node account (tests use a throw-away name)
    "PODSEC_KUBEADM": "kubeadm",  # the real kubeadm, when it is not on PATH
    "PODSEC_TRIVY": "trivy",  # the trivy program
    "PODSEC_U7S_OCI_IMAGES": "u7s_oci_images",  # a directory of node images as OCI archives
}
_ACCOUNT_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,30}\Z")


def debug_requested(environ: Mapping[str, str] | None = None) -> bool:
    """``PODSEC_DEBUG`` set (not "" or "0"): show tracebacks. Read apart from :func:`load`
    because it must work when the settings themselves cannot be built."""
    env = os.environ if environ is None else environ
    return env.get("PODSEC_DEBUG", "") not in ("", "0")


def _bool(value: object, source: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(
        _("{source}: expected yes or no, got {value!r}").format(source=source, value=value)
    )


def _check(name: str, value: object, source: str) -> object:  # noqa: PLR0912 - one branch per setting
    """Validate one value for Settings field ``name`` coming from ``source``."""
    if name in ("set_available_images", "debug"):
        return _bool(value, source)
    if not isinstance(value, str):
        raise ConfigError(_("{source}: expected a string").format(source=source))
    bad = _("{source}: invalid value {value!r}").format(source=source, value=value)
    if name == "registry":
        if value and not _REGISTRY_RE.match(value):
            raise ConfigError(bad, hint=_("expected HOST[:PORT][/PATH], e.g. registry.local/p10"))
        return value
    if name == "platform":
        if value and not _PLATFORM_RE.match(value):
            raise ConfigError(bad, hint=_("expected a platform name such as c10f, p10, p11"))
        return value or None
    if name == "kube_version":
        if value and not _VERSION_RE.match(value):
            raise ConfigError(bad, hint=_("the version must start with v, e.g. v1.26.3"))
        return value or None
    if name in ("flannel_tag", "flannel_cni_plugin_tag"):
        if value and not _TAG_RE.match(value):
            raise ConfigError(bad)
        return value or None
    if name == "cni_plugin":
        if value not in CNI_PLUGINS:
            raise ConfigError(
                bad, hint=_("expected one of: {choices}").format(choices=", ".join(CNI_PLUGINS))
            )
        return value
    if name == "trivy_server":
        if not _HOSTPORT_RE.match(value):
            raise ConfigError(bad, hint=_("expected HOST or HOST:PORT"))
        return value
    if name == "u7s_user":
        if not _ACCOUNT_RE.match(value):
            raise ConfigError(bad, hint=_("expected a system account name such as u7s-admin"))
        return value
    if name in ("kubeadm", "trivy"):
        if name == "trivy" and not value:
            raise ConfigError(bad, hint=_("expected a program name or path"))
        return value or None
    if name == "u7s_oci_images":
        return Path(value) if value else None
    if name == "mailto":
        if value and not _EMAIL_RE.match(value):
            raise ConfigError(bad)
        return value or None
    raise AssertionError(name)  # pragma: no cover - the key tables above are exhaustive


def _read_file(path: Path) -> dict[str, object]:
    # read at every start-up: a FIFO, device or huge file here must not hang or crash podsec
    try:
        text = readers.read_text(path)
        data: dict[str, Any] = {} if text is None else readers.parse_toml(text, str(path))
    except readers.FileFormatError as exc:
        raise ConfigError(exc.message, hint=exc.hint) from exc
    values: dict[str, object] = {}
    for section, table in data.items():
        keys = _FILE_KEYS.get(section)
        if keys is None or not isinstance(table, dict):
            raise ConfigError(
                _("{path}: unknown section [{section}]").format(path=path, section=section)
            )
        for key, value in table.items():
            if key not in keys:
                raise ConfigError(
                    _("{path}: unknown key {key} in [{section}]").format(
                        path=path, key=key, section=section
                    )
                )
            values[keys[key]] = _check(keys[key], value, f"{path}: {section}.{key}")
    return values


def load(root: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings for a host root (``--root`` wins over ``PODSEC_ROOT``)."""
    env = os.environ if environ is None else environ
    if root is not None and not str(root):
        # an empty --root would silently mean the current directory
        raise ConfigError(_("--root '': an empty path is not a directory (leave it out for /)"))
    root_text = str(root) if root is not None else env.get("PODSEC_ROOT", "/") or "/"
    root_path = Path(root_text)
    if not root_path.is_absolute():
        root_path = root_path.resolve()
    if not root_path.is_dir():
        raise ConfigError(_("--root {path}: not a directory").format(path=root_text))
    settings = Settings(root=root_path)
    config_path = root_path / CONFIG_FILE.lstrip("/")
    values = _read_file(config_path)
    for var, name in _ENV_KEYS.items():
        if var in env:
            values[name] = _check(name, env[var], var)
    known = {f.name for f in fields(Settings)}
    assert set(values) <= known
    return replace(settings, config_file=config_path if config_path.exists() else None, **values)  # type: ignore[arg-type]
