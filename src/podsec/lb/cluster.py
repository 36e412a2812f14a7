"""The small cluster description haproxy.cfg and keepalived.conf are rendered from.

YAML (see ``podsec/data/lb/cluster.example.yaml``)::

    vip: 10.150.0.160          # the control-plane endpoint: VRRP address or the haproxy host's
    lb_port: 8443
    control_plane:
      - {name: master01, address: 192.168.122.80}        # port defaults to 6443
    ingress:
      node_port: 31000
      http_port: 80
      nodes:
        - {name: node01, address: 192.168.122.81}
    vrrp: {router_id: LVS_K8S, virtual_router_id: 51, auth_pass: s3cret}

Parsing is strict: an unknown key, a bad address or port, or a duplicate name is an error
naming the field. The same description is stored next to haproxy.cfg so ``lb add-server`` can
edit the cluster and re-render instead of patching haproxy's text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, ip_address
from typing import Any

import yaml

from podsec import readers
from podsec.errors import ValidationError
from podsec.i18n import _

APISERVER_PORT = 6443
LB_PORT = 8443
INGRESS_NODE_PORT = 31000
HTTP_PORT = 80
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_HOST_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_PATH_RE = re.compile(r"^/[^\s\"'#]*$")


@dataclass(frozen=True)
class Server:
    name: str
    address: str  # an IP address or a DNS name
    port: int


@dataclass(frozen=True)
class Vrrp:
    router_id: str = "LVS_K8S"
    virtual_router_id: int = 51
    auth_pass: str | None = None  # shared by every keepalived node; required for keepalived
    interval: int = 3
    weight: int = -2
    fall: int = 10
    rise: int = 2


@dataclass(frozen=True)
class HaproxyGlobal:
    """haproxy's ``global`` section; ``None`` leaves a directive out (test sandboxes)."""

    bind: str = "*"
    log: str | None = "/dev/log"
    chroot: str | None = "/var/lib/haproxy"
    user: str | None = "haproxy"
    group: str | None = "haproxy"
    stats_socket: str | None = "/run/haproxy/admin.sock"
    pidfile: str | None = None


@dataclass(frozen=True)
class Cluster:
    vip: IPv4Address
    control_plane: tuple[Server, ...]
    lb_port: int = LB_PORT
    ingress_nodes: tuple[Server, ...] = ()
    ingress_node_port: int = INGRESS_NODE_PORT
    http_port: int = HTTP_PORT
    vrrp: Vrrp = field(default_factory=Vrrp)
    haproxy: HaproxyGlobal = field(default_factory=HaproxyGlobal)

    @property
    def endpoint(self) -> str:
        """``VIP:PORT`` — what ``kubeadm init --control-plane-endpoint`` takes."""
        return f"{self.vip}:{self.lb_port}"

    def with_server(self, name: str, address: str, port: int | None, *, ingress: bool) -> Cluster:
        """A copy with one more server (control plane, or ingress node with ``ingress``)."""
        data = to_data(self)
        entry: dict[str, Any] = {"name": name, "address": address}
        if port is not None:
            entry["port"] = port
        if ingress:
            data.setdefault("ingress", {}).setdefault("nodes", []).append(entry)
        else:
            data["control_plane"].append(entry)
        return parse_data(data, "cluster")

    def without_server(self, name: str) -> Cluster:
        cp = tuple(s for s in self.control_plane if s.name != name)
        ing = tuple(s for s in self.ingress_nodes if s.name != name)
        if len(cp) == len(self.control_plane) and len(ing) == len(self.ingress_nodes):
            raise ValidationError(_("no server named {name} in the cluster").format(name=name))
        if not cp:
            raise ValidationError(
                _("{name} is the last control-plane server; haproxy needs at least one").format(
                    name=name
                )
            )
        return replace(self, control_plane=cp, ingress_nodes=ing)


# ---------------------------------------------------------------------------------- parsing
def _fail(where: str, message: str) -> ValidationError:
    return ValidationError(f"{where}: {message}")


def _mapping(value: Any, where: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, _("expected a mapping"))
    unknown = sorted(str(k) for k in value if k not in keys)
    if unknown:
        raise _fail(where, _("unknown key {key}").format(key=", ".join(unknown)))
    return value


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(where, _("expected a whole number {low}–{high}").format(low=low, high=high))
    return value


def check_port(value: Any, where: str) -> int:
    return _int(value, where, 1, 65535)


_port = check_port


def check_name(name: Any, where: str = "name") -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _fail(
            where,
            _("invalid server name {name!r} (letters, digits, '.', '_', '-')").format(name=name),
        )
    return name


def check_address(address: Any, where: str = "address") -> str:
    text = str(address) if isinstance(address, str | IPv4Address) else ""
    try:
        return str(ip_address(text))
    except ValueError:
        pass
    if not _HOST_RE.match(text) or text.replace(".", "").isdigit():
        raise _fail(
            where, _("invalid address {addr!r} (an IP address or a DNS name)").format(addr=address)
        )
    return text


def check_vip(value: Any, where: str = "vip") -> IPv4Address:
    """A VIP clients can reach: a unicast IPv4 address, not 0.0.0.0, loopback, multicast,
    link-local, reserved or the limited broadcast (keepalived would add any of them)."""
    try:
        vip = IPv4Address(str(value))
    except ValueError:
        raise _fail(where, _("invalid IPv4 address {addr!r}").format(addr=value)) from None
    kinds = (
        (vip.is_unspecified, _("the unspecified address")),
        (vip.is_loopback, _("a loopback address")),
        (vip.is_multicast, _("a multicast address")),
        (vip.is_link_local, _("a link-local address")),
        (vip == IPv4Address("255.255.255.255"), _("the broadcast address")),
        (vip.is_reserved, _("a reserved address")),
    )
    for bad, kind in kinds:
        if bad:
            raise _fail(where, _("{addr} is {kind}, not a usable VIP").format(addr=vip, kind=kind))
    return vip


def _servers(value: Any, where: str, default_port: int | None) -> tuple[Server, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(where, _("expected a list of servers"))
    out = []
    for i, item in enumerate(value):
        here = f"{where}[{i}]"
        m = _mapping(item, here, {"name", "address", "port"})
        for key in ("name", "address"):
            if key not in m:
                raise _fail(here, _("missing key {key}").format(key=key))
        port = m.get("port", default_port)
        if port is None:
            raise _fail(here, _("missing key {key}").format(key="port"))
        out.append(
            Server(
                check_name(m["name"], f"{here}.name"),
                check_address(m["address"], f"{here}.address"),
                _port(port, f"{here}.port"),
            )
        )
    return tuple(out)


def _opt_str(value: Any, where: str, pattern: re.Pattern[str] | None = None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise _fail(where, _("expected a string"))
    text = str(value)
    if not text or any(c.isspace() for c in text) or (pattern and not pattern.match(text)):
        raise _fail(where, _("invalid value {value!r}").format(value=text))
    return text


def parse_data(data: Any, where: str = "cluster") -> Cluster:
    top = _mapping(
        data,
        where,
        {"vip", "lb_port", "control_plane", "ingress", "vrrp", "haproxy", "apiserver_port"},
    )
    if "vip" not in top:
        raise _fail(where, _("missing key {key}").format(key="vip"))
    vip = check_vip(top["vip"], f"{where}.vip")
    lb_port = _port(top.get("lb_port", LB_PORT), f"{where}.lb_port")
    api_port = _port(top.get("apiserver_port", APISERVER_PORT), f"{where}.apiserver_port")
    control = _servers(top.get("control_plane"), f"{where}.control_plane", api_port)
    if not control:
        raise _fail(f"{where}.control_plane", _("at least one control-plane server is needed"))
    ing = _mapping(
        top.get("ingress") or {}, f"{where}.ingress", {"node_port", "http_port", "nodes"}
    )
    node_port = _port(ing.get("node_port", INGRESS_NODE_PORT), f"{where}.ingress.node_port")
    http_port = _port(ing.get("http_port", HTTP_PORT), f"{where}.ingress.http_port")
    nodes = _servers(ing.get("nodes"), f"{where}.ingress.nodes", node_port)

    v = _mapping(
        top.get("vrrp") or {},
        f"{where}.vrrp",
        {"router_id", "virtual_router_id", "auth_pass", "interval", "weight", "fall", "rise"},
    )
    auth = _opt_str(v.get("auth_pass"), f"{where}.vrrp.auth_pass")
    if auth is not None and len(auth) > 8:
        # keepalived silently truncates PASS authentication to 8 characters
        raise _fail(f"{where}.vrrp.auth_pass", _("at most 8 characters (keepalived's limit)"))
    vrrp = Vrrp(
        router_id=_opt_str(v.get("router_id", "LVS_K8S"), f"{where}.vrrp.router_id") or "LVS_K8S",
        virtual_router_id=_int(
            v.get("virtual_router_id", 51), f"{where}.vrrp.virtual_router_id", 1, 255
        ),
        auth_pass=auth,
        interval=_int(v.get("interval", 3), f"{where}.vrrp.interval", 1, 3600),
        weight=_int(v.get("weight", -2), f"{where}.vrrp.weight", -253, 253),
        fall=_int(v.get("fall", 10), f"{where}.vrrp.fall", 1, 1000),
        rise=_int(v.get("rise", 2), f"{where}.vrrp.rise", 1, 1000),
    )

    h = _mapping(
        top.get("haproxy") or {},
        f"{where}.haproxy",
        {"bind", "log", "chroot", "user", "group", "stats_socket", "pidfile"},
    )
    defaults = HaproxyGlobal()
    bind = _opt_str(h.get("bind", "*"), f"{where}.haproxy.bind") or "*"
    if bind != "*":
        bind = check_address(bind, f"{where}.haproxy.bind")
    hg = HaproxyGlobal(
        bind=bind,
        log=_opt_str(h.get("log", defaults.log), f"{where}.haproxy.log"),
        chroot=_opt_str(h.get("chroot", defaults.chroot), f"{where}.haproxy.chroot", _PATH_RE),
        user=_opt_str(h.get("user", defaults.user), f"{where}.haproxy.user"),
        group=_opt_str(h.get("group", defaults.group), f"{where}.haproxy.group"),
        stats_socket=_opt_str(
            h.get("stats_socket", defaults.stats_socket), f"{where}.haproxy.stats_socket", _PATH_RE
        ),
        pidfile=_opt_str(h.get("pidfile"), f"{where}.haproxy.pidfile", _PATH_RE),
    )

    cluster = Cluster(vip, control, lb_port, nodes, node_port, http_port, vrrp, hg)
    _check_consistency(cluster, where)
    return cluster


def _check_consistency(c: Cluster, where: str) -> None:
    names = [s.name for s in c.control_plane + c.ingress_nodes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _fail(where, _("duplicate server name {name}").format(name=", ".join(dupes)))
    for group in (c.control_plane, c.ingress_nodes):
        seen: dict[tuple[str, int], str] = {}
        for s in group:
            other = seen.setdefault((s.address, s.port), s.name)
            if other != s.name:
                raise _fail(
                    where,
                    _("servers {first} and {second} have the same address {addr}:{port}").format(
                        first=other, second=s.name, addr=s.address, port=s.port
                    ),
                )
    for s in c.control_plane:
        if s.address == str(c.vip):
            # the seed's rule: kubeadm's advertise address must differ from the endpoint
            raise _fail(
                where,
                _(
                    "control-plane server {name} has the VIP {vip} as its address; the "
                    "endpoint must differ from every advertise address"
                ).format(name=s.name, vip=c.vip),
            )
    if c.ingress_nodes and c.http_port == c.lb_port:
        raise _fail(where, _("ingress.http_port and lb_port must differ"))


def parse(text: str, where: str = "cluster") -> Cluster:
    return parse_data(readers.parse_yaml(text, where), where)


# ---------------------------------------------------------------------------------- writing
def to_data(c: Cluster) -> dict[str, Any]:
    def servers(items: tuple[Server, ...]) -> list[dict[str, Any]]:
        return [{"name": s.name, "address": s.address, "port": s.port} for s in items]

    h = c.haproxy
    data: dict[str, Any] = {
        "vip": str(c.vip),
        "lb_port": c.lb_port,
        "control_plane": servers(c.control_plane),
        "ingress": {
            "node_port": c.ingress_node_port,
            "http_port": c.http_port,
            "nodes": servers(c.ingress_nodes),
        },
        "vrrp": {
            "router_id": c.vrrp.router_id,
            "virtual_router_id": c.vrrp.virtual_router_id,
            "interval": c.vrrp.interval,
            "weight": c.vrrp.weight,
            "fall": c.vrrp.fall,
            "rise": c.vrrp.rise,
        },
        "haproxy": {
            "bind": h.bind,
            "log": h.log,
            "chroot": h.chroot,
            "user": h.user,
            "group": h.group,
            "stats_socket": h.stats_socket,
            "pidfile": h.pidfile,
        },
    }
    if c.vrrp.auth_pass is not None:
        data["vrrp"]["auth_pass"] = c.vrrp.auth_pass
    return data


def to_yaml(c: Cluster) -> str:
    header = "# podsec lb cluster description (edit with `podsec lb add-server|remove-server`)\n"
    return header + yaml.safe_dump(to_data(c), sort_keys=False, default_flow_style=False)
