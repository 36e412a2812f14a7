"""kubeconfig files: load the admin connection like kubectl, build and merge user files.

Loading order (conventions E4): ``--kubeconfig FILE`` (that file only) → ``$KUBECONFIG`` (a
path list merged stanza by stanza, the first file defining a name wins, ``current-context``
from the first file that sets it) → ``~/.kube/config`` → ``/etc/kubernetes/admin.conf``.
Credentials supported: client certificate/key (data or file) and bearer tokens; exec and
auth-provider plugins are refused with a clear message (podsec manages certificate users).
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from podsec import readers
from podsec.errors import UsageError, ValidationError
from podsec.host.paths import Host
from podsec.i18n import _

ADMIN_CONF = "/etc/kubernetes/admin.conf"
Config = dict[str, Any]


class KubeconfigError(ValidationError):
    """A kubeconfig is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class Connection:
    """Everything needed to talk to one API server as one identity."""

    server: str
    cluster_name: str
    user_name: str
    context_name: str
    ca_pem: bytes | None = None
    insecure: bool = False
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    token: str | None = None
    source: str = ""


def read(path: Path) -> Config:
    """Parse one kubeconfig; every failure is a one-line :class:`KubeconfigError`."""
    try:
        text = readers.read_text(path)
        if text is None:
            raise KubeconfigError(_("kubeconfig {path} does not exist").format(path=path))
        data = readers.parse_yaml(text, str(path))
    except readers.FileFormatError as exc:
        raise KubeconfigError(
            _("kubeconfig {path} is unreadable: {err}").format(path=path, err=exc.problem)
        ) from exc
    if data is None:
        return empty()
    if not isinstance(data, dict):
        raise KubeconfigError(_("kubeconfig {path} is unreadable: not a mapping").format(path=path))
    for key in ("clusters", "users", "contexts"):
        value = data.get(key)
        if value is None:
            data[key] = []
        elif not isinstance(value, list) or not all(
            isinstance(item, dict) and isinstance(item.get("name"), str) for item in value
        ):
            raise KubeconfigError(
                _("kubeconfig {path} is unreadable: {key} must be a list of named entries").format(
                    path=path, key=key
                )
            )
    data["_dir"] = str(path.parent)
    return data


def empty() -> Config:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "users": [],
        "contexts": [],
        "current-context": "",
        "preferences": {},
    }


def candidates(explicit: str | None, host: Host, env: dict[str, str] | None = None) -> list[Path]:
    """The files kubectl would read, in order (without the admin.conf fallback)."""
    environ = os.environ if env is None else env
    if explicit:
        return [Path(explicit)]
    listed = [p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return [Path(p) for p in listed]
    home = environ.get("HOME")
    return [Path(home) / ".kube" / "config"] if home else []


def load_merged(explicit: str | None, host: Host, env: dict[str, str] | None = None) -> Config:
    """The admin's merged kubeconfig (see the module docstring for the order)."""
    paths = candidates(explicit, host, env)
    if explicit:
        return read(paths[0])
    existing = [p for p in paths if p.exists()]
    if not existing:
        fallback = host.path(ADMIN_CONF)
        if not fallback.exists():
            raise KubeconfigError(
                _("no admin kubeconfig found"),
                hint=_(
                    "pass --kubeconfig FILE, set KUBECONFIG, or create ~/.kube/config or {path}"
                ).format(path=ADMIN_CONF),
            )
        return read(fallback)
    merged = empty()
    merged["current-context"] = None
    for path in existing:
        data = read(path)
        for key in ("clusters", "users", "contexts"):
            have = {item["name"] for item in merged[key]}
            for item in data[key]:
                if item["name"] not in have:
                    merged[key].append({**item, "_dir": data["_dir"]})
        if merged["current-context"] is None and data.get("current-context"):
            merged["current-context"] = data["current-context"]
    return merged


def _find(config: Config, key: str, name: str) -> dict[str, Any]:
    for item in config.get(key, []):
        if item.get("name") == name:
            inner = item.get(key[:-1]) or {}
            if not isinstance(inner, dict):
                break
            return {**inner, "_dir": item.get("_dir", config.get("_dir", "."))}
    raise KubeconfigError(
        _("the kubeconfig has no {kind} named {name!r}").format(kind=key[:-1], name=name)
    )


def _data(entry: dict[str, Any], data_key: str, file_key: str) -> bytes | None:
    if entry.get(data_key):
        try:
            return base64.b64decode(str(entry[data_key]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KubeconfigError(
                _("the kubeconfig field {field} is not valid base64").format(field=data_key)
            ) from exc
    if entry.get(file_key):
        path = Path(entry["_dir"]) / str(entry[file_key])
        try:
            data = readers.read_bytes(path)
        except readers.FileFormatError as exc:
            raise KubeconfigError(
                _("cannot read {path} named by the kubeconfig: {err}").format(
                    path=path, err=exc.problem
                )
            ) from exc
        if data is None:
            raise KubeconfigError(
                _("cannot read {path} named by the kubeconfig: {err}").format(
                    path=path, err=os.strerror(errno.ENOENT)
                )
            )
        return data
    return None


def connection(config: Config, context: str | None = None, source: str = "") -> Connection:
    """The connection of ``context`` (default: the current context)."""
    name = context or config.get("current-context") or ""
    if not name:
        raise KubeconfigError(
            _("the kubeconfig has no current context"), hint=_("pass --context NAME")
        )
    ctx = _find(config, "contexts", name)
    cluster_name = str(ctx.get("cluster") or "")
    user_name = str(ctx.get("user") or "")
    cluster = _find(config, "clusters", cluster_name)
    user = _find(config, "users", user_name) if user_name else {"_dir": "."}
    server = str(cluster.get("server") or "")
    if not server.startswith("https://"):
        raise KubeconfigError(
            _("cluster {name!r} has no https server address").format(name=cluster_name)
        )
    if user.get("exec") or user.get("auth-provider"):
        raise KubeconfigError(
            _(
                "user {name!r} uses a credential plugin; podsec needs a certificate or a token"
            ).format(name=user_name)
        )
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = (_data({"_dir": user["_dir"], "f": user["tokenFile"]}, "-", "f") or b"").decode()
    return Connection(
        server=server.rstrip("/"),
        cluster_name=cluster_name,
        user_name=user_name,
        context_name=name,
        ca_pem=_data(cluster, "certificate-authority-data", "certificate-authority"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_pem=_data(user, "client-certificate-data", "client-certificate"),
        key_pem=_data(user, "client-key-data", "client-key"),
        token=str(token).strip() if token else None,
        source=source,
    )


def admin_connection(
    explicit: str | None,
    host: Host,
    context: str | None = None,
    env: dict[str, str] | None = None,
) -> Connection:
    """The administrator's connection, found like kubectl finds it."""
    config = load_merged(explicit, host, env)
    paths = candidates(explicit, host, env)
    source = ", ".join(str(p) for p in paths if p.exists()) or str(host.path(ADMIN_CONF))
    return connection(config, context, source)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def context_name(user: str, cluster: str) -> str:
    return f"{user}@{cluster}"


def merge_user(
    existing: Config | None,
    *,
    user: str,
    cluster: str,
    server: str,
    ca_pem: bytes,
    cert_pem: bytes,
    key_pem: bytes,
) -> Config:
    """``existing`` with the cluster, the user and context ``USER@CLUSTER`` set (other
    entries kept) and that context made current."""
    config = empty() if existing is None else {k: v for k, v in existing.items() if k != "_dir"}
    for key in ("clusters", "users", "contexts"):
        config[key] = [
            {k: v for k, v in item.items() if k != "_dir"} for item in config.get(key) or []
        ]

    def put(key: str, name: str, body: dict[str, Any]) -> None:
        items = [item for item in config[key] if item.get("name") != name]
        items.append({"name": name, key[:-1]: body})
        config[key] = items

    put("clusters", cluster, {"server": server, "certificate-authority-data": _b64(ca_pem)})
    put(
        "users",
        user,
        {"client-certificate-data": _b64(cert_pem), "client-key-data": _b64(key_pem)},
    )
    ctx = context_name(user, cluster)
    put("contexts", ctx, {"cluster": cluster, "user": user})
    config["current-context"] = ctx
    config.setdefault("apiVersion", "v1")
    config.setdefault("kind", "Config")
    return config


def dump(config: Config) -> str:
    clean = {k: v for k, v in config.items() if k != "_dir"}
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return str(yaml.dump(clean, Dumper=dumper, default_flow_style=False, sort_keys=False))


def user_credentials(config: Config, user: str) -> tuple[bytes, bytes]:
    """The certificate and key of kubeconfig user entry ``user``."""
    entry = _find(config, "users", user)
    cert, key = (
        _data(entry, "client-certificate-data", "client-certificate"),
        _data(entry, "client-key-data", "client-key"),
    )
    if cert is None or key is None:
        raise KubeconfigError(
            _("user {name!r} in the kubeconfig has no client certificate").format(name=user)
        )
    return cert, key


def set_server(config: Config, address: str) -> Config:
    """Point every cluster of ``config`` at ``address`` keeping scheme and port."""
    from urllib.parse import urlsplit, urlunsplit

    host = f"[{address}]" if ":" in address else address
    for item in config.get("clusters", []):
        cluster = item.get("cluster") or {}
        url = urlsplit(str(cluster.get("server") or ""))
        if not url.scheme:
            raise UsageError(_("the copied kubeconfig names no server"))
        netloc = f"{host}:{url.port}" if url.port else host
        cluster["server"] = urlunsplit((url.scheme, netloc, url.path, "", ""))
    return config
