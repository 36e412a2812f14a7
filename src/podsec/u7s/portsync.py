"""The port-sync controller: Services' node ports out of u7s-admin's namespace, automatically.

The seed's manual step — ``nsenter_u7s rootlessctl add-ports 0.0.0.0:P:P/tcp`` for every
NodePort — done by a controller: it lists and then watches Services through the API and keeps
RootlessKit's forwards equal to what the Services ask for:

* ``NodePort`` and ``LoadBalancer`` Services: each ``nodePort`` is forwarded host → namespace
  (``0.0.0.0:P:P/proto``);
* ``LoadBalancer`` Services also get their service ``port`` forwarded to the node port on the
  host (a node-local load balancer, like k3s' servicelb); a port the host cannot bind (< 1024
  without privileges, or taken) is reported and skipped.

Which forwards are ours is recorded in a small state file beside RootlessKit's state
(``$XDG_RUNTIME_DIR/usernetes/podsec-ports.json``): the runtime's static forwards (6443,
10250 …) are never touched; manual ``ports add`` forwards are kept (and restored after a
RootlessKit restart) until ``ports remove``. Reconciliation is idempotent and runs after the
initial list, on every change, and whenever the watch is re-established (a RootlessKit restart
loses every forward; the next pass puts them back).

Kept as one module over 500 lines: one controller — its desired-state rules, the state
file, reconciliation, the manual add/remove that share that state, and the supervised
command it runs as (the API client and kubeconfig rules live in podsec.kube).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from podsec import readers
from podsec.errors import PodsecError, UsageError
from podsec.host import files
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.kube import kubeconfig
from podsec.kube.client import Client
from podsec.names import U7S_USER
from podsec.u7s.plan import PortForward, Proto
from podsec.u7s.rootlesskit_api import Port, PortApiError, RootlesskitApi

log = logging.getLogger("podsec.portsync")

STATE_NAME = "podsec-ports.json"
MANUAL = "manual"
UNIT_NAME = "podsec-u7s-ports.service"
WATCH_SECONDS = (
    60  # re-list and re-check RootlessKit this often: forwards lost behind our back return
)
_SPEC_RE = re.compile(
    r"^(?:(?P<ip>\d+\.\d+\.\d+\.\d+|\[[0-9a-fA-F:]+\]):)?(?:(?P<host>\d+):)?(?P<child>\d+)(?:/(?P<proto>tcp|udp))?$"
)


# ---------------------------------------------------------------------------------- specs
def parse_spec(text: str) -> PortForward:
    """``[IP:][HOST:]CHILD[/PROTO]`` as ``rootlessctl add-ports`` takes it (IP 0.0.0.0 and
    HOST = CHILD when left out): ``31000``, ``8080:80/tcp``, ``0.0.0.0:31000:31000/tcp``."""
    m = _SPEC_RE.match(text.strip())
    if not m:
        raise UsageError(
            _("invalid port spec {spec!r} (expected [IP:][HOST_PORT:]PORT[/tcp|udp])").format(
                spec=text
            )
        )
    child = int(m["child"])
    hostport = int(m["host"]) if m["host"] else child
    for port in (child, hostport):
        if not 1 <= port <= 65535:
            raise UsageError(_("port {port} is out of range 1–65535").format(port=port))
    ip = (m["ip"] or "0.0.0.0").strip("[]")  # noqa: S104 - rootlessctl's default
    try:
        ip_address(ip)
    except ValueError:
        raise UsageError(_("invalid address {addr!r}").format(addr=ip)) from None
    return PortForward(
        host_port=hostport, child_port=child, proto=_proto(m["proto"] or ""), host_ip=ip
    )


# ---------------------------------------------------------------------------------- services
@dataclass(frozen=True)
class ServicePort:
    port: int
    node_port: int | None
    proto: str


@dataclass(frozen=True)
class ServiceInfo:
    namespace: str
    name: str
    type: str
    ports: tuple[ServicePort, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def from_api(cls, obj: Mapping[str, Any]) -> ServiceInfo:
        """From a Service as the API returns it (JSON)."""
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        ports = [
            ServicePort(int(p["port"]), p.get("nodePort"), str(p.get("protocol") or "TCP"))
            for p in spec.get("ports") or []
        ]
        return cls(
            meta.get("namespace", ""), meta.get("name", ""), spec.get("type") or "", tuple(ports)
        )


def _proto(text: str) -> Proto:
    return "udp" if text == "udp" else "tcp"


def desired(services: Iterable[ServiceInfo], host_ip: str = "0.0.0.0") -> dict[PortForward, str]:  # noqa: S104
    """Forward → owning Service (``ns/name``). Node ports first, then LoadBalancer ports on the
    host; a host port already claimed (by an earlier Service in name order) is skipped."""
    out: dict[PortForward, str] = {}
    taken: set[tuple[int, str]] = set()
    ordered = sorted(services, key=lambda s: s.key)

    def claim(fwd: PortForward, owner: str) -> None:
        slot = (fwd.host_port, fwd.proto)
        if slot in taken:
            log.warning("%s: host port %s/%s already claimed, skipped", owner, *slot)
            return
        taken.add(slot)
        out[fwd] = owner

    for svc in ordered:
        if svc.type not in ("NodePort", "LoadBalancer"):
            continue
        for p in svc.ports:
            proto = p.proto.lower()
            if proto not in ("tcp", "udp") or not p.node_port:
                continue  # SCTP: RootlessKit's builtin driver has none
            claim(PortForward(p.node_port, p.node_port, _proto(proto), host_ip), svc.key)
    for svc in ordered:
        if svc.type != "LoadBalancer":
            continue
        for p in svc.ports:
            proto = p.proto.lower()
            if proto in ("tcp", "udp") and p.node_port and p.port != p.node_port:
                claim(PortForward(p.port, p.node_port, _proto(proto), host_ip), svc.key)
    return out


# ---------------------------------------------------------------------------------- state
@dataclass
class State:
    """Forwards podsec owns: spec → owner (``ns/name`` of a Service, or ``manual``)."""

    path: Path
    owners: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> State:
        text = files.read_text(path)
        owners: dict[str, str] = {}
        if text:
            # a file we cannot read is refused, never replaced: it records which forwards
            # are ours, and overwriting it would orphan them
            data = readers.parse_json(text, str(path))
            forwards = data.get("forwards") if isinstance(data, dict) else []
            if not isinstance(forwards, dict | None):
                raise readers.FileFormatError(
                    str(path), _('expected an object with a "forwards" mapping')
                )
            owners = {str(k): str(v) for k, v in (forwards or {}).items()}
        for spec in list(owners):
            try:
                parse_spec(spec)
            except UsageError:
                log.warning("%s: dropping invalid entry %r", path, spec)
                del owners[spec]
        return cls(path, owners)

    def save(self) -> None:
        data = {"version": 1, "forwards": dict(sorted(self.owners.items()))}
        uid, gid = _dir_owner(self.path)
        files.atomic_write(
            self.path,
            json.dumps(data, indent=2) + "\n",
            mode=0o644,
            owner=uid,
            group=gid,
            backup=False,
        )

    @classmethod
    @contextlib.contextmanager
    def locked(cls, path: Path) -> Iterator[State]:
        """Load, hand out, and save (when changed) under an exclusive lock: the controller and
        a manual ``ports add`` never lose each other's entries."""
        cls.load(path)  # an unreadable state file is refused before the lock file is made
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = path.with_name(path.name + ".lock")
        with lock_path.open("a") as lock:
            uid, gid = _dir_owner(path)
            if uid is not None and gid is not None:
                os.fchown(lock.fileno(), uid, gid)
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = cls.load(path)
            before = dict(state.owners)
            yield state
            if state.owners != before or not path.exists():
                state.save()

    def forwards(self) -> dict[PortForward, str]:
        return {parse_spec(spec): owner for spec, owner in self.owners.items()}


def _dir_owner(path: Path) -> tuple[int | None, int | None]:
    """root running ``ports add`` for u7s-admin must leave the files to u7s-admin (the
    directory's owner), or the controller running as u7s-admin could not update them."""
    if os.geteuid() != 0 or not path.parent.is_dir():
        return None, None
    st = path.parent.stat()
    return st.st_uid, st.st_gid


def default_state_path(socket_path: Path) -> Path:
    """Beside RootlessKit's state dir (``…/usernetes/podsec-ports.json``): both live in the
    runtime directory and are lost together at reboot."""
    return socket_path.parent.parent / STATE_NAME


# ---------------------------------------------------------------------------------- reconcile
@dataclass(frozen=True)
class Change:
    action: str  # "add" | "remove" | "failed"
    forward: PortForward
    owner: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "action": self.action,
            "spec": self.forward.spec(),
            "owner": self.owner,
            "detail": self.detail,
        }


def _slot(fwd: PortForward) -> tuple[str, int, str]:
    return (fwd.host_ip, fwd.host_port, fwd.proto)


def reconcile(api: RootlesskitApi, want: Mapping[PortForward, str], state: State) -> list[Change]:
    """Make RootlessKit's forwards match ``want`` plus the manual ones, touching only what
    podsec owns. Returns what changed (failures included, never raised: one bad port must not
    stop the others)."""
    actual: dict[tuple[str, int, str], Port] = {_slot(p.forward): p for p in api.list_ports()}
    owned = state.forwards()
    changes: list[Change] = []

    # forwards of Services that are gone (or changed): remove
    for fwd, owner in owned.items():
        if owner == MANUAL or fwd in want:
            continue
        port = actual.get(_slot(fwd))
        if port is not None and port.forward == fwd:
            try:
                api.remove_port(port.id)
                actual.pop(_slot(fwd))
                changes.append(Change("remove", fwd, owner))
            except PortApiError as exc:
                changes.append(Change("failed", fwd, owner, exc.message))
                continue
        state.owners.pop(fwd.spec(), None)

    # wanted (and manual ones lost with a RootlessKit restart): add
    manual = {f: o for f, o in owned.items() if o == MANUAL}
    for fwd, owner in {**want, **manual}.items():
        present = actual.get(_slot(fwd))
        if present is not None:
            if present.forward != fwd:
                detail = _("host port taken by {spec}").format(spec=present.forward.spec())
                changes.append(Change("failed", fwd, owner, detail))
            elif fwd.spec() in state.owners and state.owners[fwd.spec()] != MANUAL:
                state.owners[fwd.spec()] = owner
            # else: manual, or a forward podsec did not create (the runtime's static ports,
            # a hand-made rootlessctl one) — it serves the Service already and is never adopted
            continue
        try:
            api.add_port(fwd)
            state.owners[fwd.spec()] = owner
            changes.append(Change("add", fwd, owner))
        except PortApiError as exc:
            changes.append(Change("failed", fwd, owner, exc.message))
    return changes


# ---------------------------------------------------------------------------------- manual ops
@dataclass(frozen=True)
class Entry:
    id: int
    forward: PortForward
    owner: str  # ns/name, "manual", or "" (the runtime's own forwards)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "spec": self.forward.spec(),
            "proto": self.forward.proto,
            "hostIP": self.forward.host_ip,
            "hostPort": self.forward.host_port,
            "childPort": self.forward.child_port,
            "owner": self.owner,
        }


def list_ports(api: RootlesskitApi, state_path: Path) -> list[Entry]:
    owners = State.load(state_path).owners
    return [Entry(p.id, p.forward, owners.get(p.forward.spec(), "")) for p in api.list_ports()]


def add(api: RootlesskitApi, state_path: Path, fwd: PortForward) -> Entry:
    """A manual forward (kept, and restored by the controller, until :func:`remove`)."""
    State.load(state_path)  # decide first: the state file readable, RootlessKit's answer
    api.list_ports()  # sane — then the lock file and the change
    with State.locked(state_path) as state:
        existing = [p for p in api.list_ports() if p.forward == fwd]
        port = existing[0] if existing else api.add_port(fwd)
        state.owners[fwd.spec()] = MANUAL
    return Entry(port.id, port.forward, MANUAL)


def remove(api: RootlesskitApi, state_path: Path, what: str) -> Entry:
    """Remove a forward by its id or spec (``31000``, ``0.0.0.0:31000:31000/tcp``)."""
    State.load(state_path)  # as in add: both checked before anything is made
    api.list_ports()
    with State.locked(state_path) as state:
        ports = api.list_ports()
        if what.isdigit() and any(p.id == int(what) for p in ports):
            port = next(p for p in ports if p.id == int(what))
        else:
            fwd = parse_spec(what)
            matches = [p for p in ports if p.forward == fwd]
            if not matches:
                raise PodsecError(_("no forward {spec} in RootlessKit").format(spec=fwd.spec()))
            port = matches[0]
        api.remove_port(port.id)
        owner = state.owners.pop(port.forward.spec(), "")
    return Entry(port.id, port.forward, owner)


# ---------------------------------------------------------------------------------- controller
@dataclass(frozen=True)
class Options:
    socket: Path
    state: Path
    kubeconfig: Path | None = None  # None: see load_kubeconfig()
    host: Host = field(default_factory=Host)
    user: str = U7S_USER  # the node account (Settings.u7s_user): its kubelet.conf fallback
    context: str | None = None
    host_ip: str = "0.0.0.0"  # noqa: S104 - peers reach NodePorts on every address
    watch_seconds: int = WATCH_SECONDS
    retry_seconds: float = 5.0


_NS_KUBELET_DIR = "/var/lib/kubelet/"


def node_identity(host: Host, user: str = U7S_USER) -> kubeconfig.NodeIdentity:
    """The kubelet.conf fallback (a worker: nodes may list and watch Services). kubelet.conf
    names its client certificate by the namespace's path
    (``/var/lib/kubelet/pki/kubelet-client-current.pem``, a symlink to a dated file); on the
    host that directory is u7s-admin's ``~/.local/share/usernetes/_var_lib_kubelet``."""

    def on_host(value: str) -> str:
        from podsec.u7s.layout import layout_for

        kubelet_dir = host.path(str(layout_for(host, user).data_dir / "_var_lib_kubelet"))
        for _hop in range(4):  # follow the namespace's absolute symlinks
            if not value.startswith(_NS_KUBELET_DIR):
                return value
            mapped = kubelet_dir / value[len(_NS_KUBELET_DIR) :]
            if not mapped.is_symlink():
                return str(mapped)
            value = str(mapped.readlink())
            if not value.startswith("/"):
                value = str(mapped.parent / value)
        return value

    return kubeconfig.NodeIdentity(map_path=on_host)


def load_kubeconfig(
    host: Host, explicit: Path | None = None, user: str = U7S_USER
) -> kubeconfig.Loaded:
    """``--kubeconfig``; else kubectl's rules (every ``$KUBECONFIG`` entry merged,
    ``~/.kube/config``); else the control plane's admin.conf; else the node's kubelet.conf —
    :func:`podsec.kube.kubeconfig.load`, the rules ``podsec rbac`` follows too."""
    return kubeconfig.load(host, explicit, node=node_identity(host, user))


def connection(opts: Options) -> kubeconfig.Connection:
    loaded = load_kubeconfig(opts.host, opts.kubeconfig, opts.user)
    return kubeconfig.connection(loaded.config, opts.context, loaded.source)


SERVICES = "/api/v1/services"
LIST_TIMEOUT = 60.0


def list_services(kube: Client) -> tuple[list[dict[str, Any]], str]:
    """Every Service (plain JSON) and the list's resourceVersion."""
    data = kube.get(SERVICES)
    return list(data.get("items") or []), str(data["metadata"]["resourceVersion"])


def watch_services(kube: Client, resource_version: str, seconds: int) -> Iterator[dict[str, Any]]:
    """Watch events (``{"type": ..., "object": {...}}``) until the server ends the watch."""
    query = {"resourceVersion": resource_version, "allowWatchBookmarks": "true"}
    return kube.watch(SERVICES, query, seconds=seconds)


def _report(changes: list[Change]) -> None:
    for c in changes:
        if c.action == "failed":
            log.warning("cannot forward %s for %s: %s", c.forward.spec(), c.owner, c.detail)
        else:
            verb = "forwarded" if c.action == "add" else "removed"
            log.info("%s %s (%s)", verb, c.forward.spec(), c.owner)


def _services(items: Iterable[dict[str, Any]]) -> dict[str, ServiceInfo]:
    return {str(o["metadata"].get("uid", "")): ServiceInfo.from_api(o) for o in items}


def _apply(opts: Options, api: RootlesskitApi, want: Mapping[PortForward, str]) -> list[Change]:
    with State.locked(opts.state) as state:
        changes = reconcile(api, want, state)
    _report(changes)
    return changes


def sync_once(opts: Options) -> list[Change]:
    """List Services once and reconcile (``ports sync --once``)."""
    with Client(connection(opts), timeout=LIST_TIMEOUT) as kube:
        items, _rv = list_services(kube)
    want = desired(_services(items).values(), opts.host_ip)
    return _apply(opts, RootlesskitApi(opts.socket), want)


def _cycle(
    kube: Client,
    opts: Options,
    api: RootlesskitApi,
    stop: threading.Event,
    on_pass: Callable[[list[Change]], None] | None,
) -> None:
    """One list + watch cycle; returns when the watch ends (timeout, expiry, stop)."""
    items, rv = list_services(kube)
    services = _services(items)
    want = desired(services.values(), opts.host_ip)
    changes = _apply(opts, api, want)
    if on_pass:
        on_pass(changes)
    for event in watch_services(kube, rv, opts.watch_seconds):
        if stop.is_set():
            return
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            return  # 410 Gone (resourceVersion too old) and friends: list again
        if kind == "BOOKMARK":
            continue
        uid = str((obj.get("metadata") or {}).get("uid", ""))
        if kind == "DELETED":
            services.pop(uid, None)
        else:
            services[uid] = ServiceInfo.from_api(obj)
        new = desired(services.values(), opts.host_ip)
        if new != want:
            want = new
            changes = _apply(opts, api, want)
            if on_pass:
                on_pass(changes)


def run(
    opts: Options,
    stop: threading.Event | None = None,
    on_pass: Callable[[list[Change]], None] | None = None,
) -> None:
    """The controller loop (``podsec u7s ports sync``); returns when ``stop`` is set.

    list → reconcile → watch from that resourceVersion, reconciling on each change; when the
    watch ends (its timeout, 410 Gone, API or RootlessKit trouble) start over — after a pause
    when something failed. Blocks on the watch: no polling while nothing changes.
    """
    stop = stop or threading.Event()
    api = RootlesskitApi(opts.socket)
    kube: Client | None = None
    try:
        while not stop.is_set():
            try:
                if kube is None:
                    kube = Client(connection(opts), timeout=LIST_TIMEOUT)
                _cycle(kube, opts, api, stop, on_pass)
            except PodsecError as exc:  # RootlessKit down, API error status, unreachable
                log.warning("%s", exc.message)
                stop.wait(opts.retry_seconds)
            except (OSError, ValueError, KeyError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.warning("Kubernetes API: %s", first)
                stop.wait(opts.retry_seconds)
    finally:
        if kube is not None:
            kube.close()


# ---------------------------------------------------------------------------------- supervision
def command(
    podsec: str | Sequence[str] = "/usr/bin/podsec",
    *,
    socket: Path | None = None,
    kubeconfig: Path | None = None,
    state: Path | None = None,
) -> list[str]:
    """argv that runs the controller, for the unit and for the node runtime's supervisor::

    # in supervisor.service_exec("port-sync"), as u7s-admin:
    portsync.command([sys.executable, "-m", "podsec.cli"], socket=layout.api_socket,
                     kubeconfig=layout.home / ".kube/config")
    """
    argv = [podsec] if isinstance(podsec, str) else list(podsec)
    argv += ["u7s", "ports", "sync"]
    if socket is not None:
        argv += ["--socket", str(socket)]
    if state is not None:
        argv += ["--state", str(state)]
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    return argv


def unit(podsec: str = "/usr/bin/podsec", *, kubeconfig: str | None = None) -> Any:
    """The user unit of u7s-admin (``/etc/systemd/user/podsec-u7s-ports.service``): starts
    after RootlessKit and the kubelet, restarts with RootlessKit (``PartOf``) so a fresh
    namespace gets its forwards back."""
    from podsec.host.systemd import unit as make_unit

    service: list[tuple[str, str]] = [
        ("Type", "simple"),
        ("ExecStart", " ".join(command(podsec))),
        ("Restart", "always"),
        ("RestartSec", "5"),
        ("SyslogIdentifier", "podsec-u7s-ports"),
        ("NoNewPrivileges", "yes"),
    ]
    if kubeconfig:
        service.insert(1, ("Environment", f"KUBECONFIG={kubeconfig}"))
    return make_unit(
        UNIT_NAME,
        Unit=[
            (
                "Description",
                "podsec port-sync: forward NodePort/LoadBalancer ports out of the u7s namespace",
            ),
            ("After", "rootlesskit.service kubelet.service"),
            ("PartOf", "rootlesskit.service"),
        ],
        Service=service,
        Install=[("WantedBy", "default.target")],
    )
