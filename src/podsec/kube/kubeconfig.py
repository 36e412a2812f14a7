"""kubeconfig files: which cluster and identity, found like kubectl; user files built and merged.

Resolution (:func:`load`, :func:`resolve`) follows kubectl's loading rules
(``k8s.io/client-go/tools/clientcmd`` ``ClientConfigLoadingRules``):

1. ``--kubeconfig FILE``: that file only, never merged; it must exist;
2. else ``$KUBECONFIG``: every listed file that exists, merged — for each cluster, user and
   context name the first file defining it wins, ``current-context`` comes from the first
   file that sets it, and relative paths resolve against the file that names them;
3. else ``~/.kube/config`` (``$HOME``).

When none of those exists, podsec's fallbacks apply, each an explicit option of the caller:
``admin_conf`` — the control plane's ``/etc/kubernetes/admin.conf`` (rbac, ports sync) — and
``node`` — the node's own identity from ``/etc/kubernetes/kubelet.conf`` with its namespace
paths mapped to the host (ports sync on a worker: nodes may list and watch Services). So
``podsec rbac`` and ``podsec u7s ports sync`` reach the same cluster for the same environment.

Credentials supported: client certificate/key (data or file) and bearer tokens; exec and
auth-provider plugins are refused with a clear message (podsec manages certificate users).
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from podsec import readers
from podsec.errors import UsageError, ValidationError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.names import ADMIN_CONF, KUBELET_CONF

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


def candidates(explicit: str | Path | None, env: Mapping[str, str] | None = None) -> list[Path]:
    """The files kubectl would read, in order (without podsec's fallbacks)."""
    environ = os.environ if env is None else env
    if explicit:
        return [Path(explicit)]
    listed = [p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return [Path(p) for p in listed]
    home = environ.get("HOME")
    return [Path(home) / ".kube" / "config"] if home else []


@dataclass(frozen=True)
class NodeIdentity:
    """The fallback to the node's own kubeconfig (kubelet.conf). ``map_path`` turns a file
    path as the kubelet sees it (its client certificate) into one readable here."""

    path: str = KUBELET_CONF
    map_path: Callable[[str], str] | None = None


@dataclass(frozen=True)
class Loaded:
    config: Config
    sources: tuple[str, ...]  # the files read, for messages

    @property
    def source(self) -> str:
        return ", ".join(self.sources)


def merge(configs: Iterable[Config]) -> Config:
    """kubectl's merge: the first definition of a name wins; the first current-context set."""
    merged = empty()
    merged["current-context"] = None
    for data in configs:
        for key in ("clusters", "users", "contexts"):
            have = {item["name"] for item in merged[key]}
            for item in data[key]:
                if item["name"] not in have:
                    merged[key].append({**item, "_dir": data["_dir"]})
        if merged["current-context"] is None and data.get("current-context"):
            merged["current-context"] = data["current-context"]
    return merged


def _node_config(path: Path, map_path: Callable[[str], str] | None) -> Config:
    data = read(path)
    if map_path is not None:
        for entry in data["users"]:
            user = entry.get("user")
            if not isinstance(user, dict):
                continue
            for key in ("client-certificate", "client-key"):
                if isinstance(user.get(key), str):
                    user[key] = map_path(user[key])
    return data


def load(
    host: Host,
    explicit: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    admin_conf: bool = True,
    node: NodeIdentity | None = None,
) -> Loaded:
    """The kubeconfig kubectl would use, else podsec's fallbacks (module docstring)."""
    paths = candidates(explicit, env)
    if explicit:
        return Loaded(read(paths[0]), (str(paths[0]),))
    existing = [p for p in paths if p.exists()]
    if existing:
        return Loaded(merge(read(p) for p in existing), tuple(str(p) for p in existing))
    if admin_conf:
        fallback = host.path(ADMIN_CONF)
        if fallback.exists():
            return Loaded(read(fallback), (str(fallback),))
    if node is not None:
        kubelet = host.path(node.path)
        if kubelet.is_file():
            return Loaded(_node_config(kubelet, node.map_path), (str(kubelet),))
        raise KubeconfigError(
            _("no kubeconfig: none of $KUBECONFIG, ~/.kube/config, {admin}, {kubelet}").format(
                admin=ADMIN_CONF, kubelet=node.path
            ),
            hint=_("pass --kubeconfig, or join the node first"),
        )
    raise KubeconfigError(
        _("no admin kubeconfig found"),
        hint=_("pass --kubeconfig FILE, set KUBECONFIG, or create ~/.kube/config or {path}").format(
            path=ADMIN_CONF
        ),
    )


def resolve(
    host: Host,
    explicit: str | Path | None = None,
    *,
    context: str | None = None,
    env: Mapping[str, str] | None = None,
    admin_conf: bool = True,
    node: NodeIdentity | None = None,
) -> Connection:
    """The connection of ``context`` (default: the current one) in :func:`load`'s config."""
    loaded = load(host, explicit, env=env, admin_conf=admin_conf, node=node)
    return connection(loaded.config, context, loaded.source)


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
    env: Mapping[str, str] | None = None,
) -> Connection:
    """The administrator's connection (``podsec rbac``): kubectl's rules, then admin.conf."""
    return resolve(host, explicit, context=context, env=env)


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
    make_current: bool = True,
) -> Config:
    """``existing`` with the cluster, the user and context ``USER@CLUSTER`` set (other
    entries kept) and, with ``make_current``, that context made current."""
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
    if make_current or not config.get("current-context"):
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
