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
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from podsec.errors import PodsecError, UsageError
from podsec.host import files
from podsec.i18n import _
from podsec.u7s.plan import PortForward, Proto
from podsec.u7s.rootlesskit_api import Port, PortApiError, RootlesskitApi

log = logging.getLogger("podsec.portsync")

STATE_NAME = "podsec-ports.json"
MANUAL = "manual"
UNIT_NAME = "podsec-u7s-ports.service"
WATCH_SECONDS = 300  # re-list (and re-check RootlessKit) at least this often
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
    def from_api(cls, obj: Any) -> ServiceInfo:
        """From a kubernetes-client ``V1Service`` (or its dict form)."""
        if isinstance(obj, Mapping):
            meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
            ports = [
                ServicePort(int(p["port"]), p.get("nodePort"), str(p.get("protocol") or "TCP"))
                for p in spec.get("ports") or []
            ]
            return cls(
                meta.get("namespace", ""),
                meta.get("name", ""),
                spec.get("type") or "",
                tuple(ports),
            )
        ports = [
            ServicePort(int(p.port), p.node_port, str(p.protocol or "TCP"))
            for p in (obj.spec.ports or [])
        ]
        return cls(obj.metadata.namespace, obj.metadata.name, obj.spec.type or "", tuple(ports))


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
            try:
                data = json.loads(text)
                owners = {str(k): str(v) for k, v in (data.get("forwards") or {}).items()}
            except (ValueError, AttributeError):
                log.warning("%s is not valid JSON; starting with an empty state", path)
        return cls(path, owners)

    def save(self) -> None:
        data = {"version": 1, "forwards": dict(sorted(self.owners.items()))}
        files.atomic_write(self.path, json.dumps(data, indent=2) + "\n", mode=0o644, backup=False)

    def forwards(self) -> dict[PortForward, str]:
        return {parse_spec(spec): owner for spec, owner in self.owners.items()}


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
    state.save()
    return changes


# ---------------------------------------------------------------------------------- manual ops
@dataclass(frozen=True)
class Entry:
    id: int
    forward: PortForward
    owner: str  # ns/name, "manual", or "" (the runtime's own forwards)


def list_ports(api: RootlesskitApi, state: State) -> list[Entry]:
    return [
        Entry(p.id, p.forward, state.owners.get(p.forward.spec(), "")) for p in api.list_ports()
    ]


def add(api: RootlesskitApi, state: State, fwd: PortForward) -> Entry:
    for port in api.list_ports():
        if port.forward == fwd:
            state.owners[fwd.spec()] = MANUAL
            state.save()
            return Entry(port.id, fwd, MANUAL)
    port = api.add_port(fwd)
    state.owners[fwd.spec()] = MANUAL
    state.save()
    return Entry(port.id, port.forward, MANUAL)


def remove(api: RootlesskitApi, state: State, what: str) -> Entry:
    """Remove a forward by its id or spec (``31000``, ``0.0.0.0:31000:31000/tcp``)."""
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
    state.save()
    return Entry(port.id, port.forward, owner)


# ---------------------------------------------------------------------------------- controller
@dataclass(frozen=True)
class Options:
    socket: Path
    state: Path
    kubeconfig: Path | None = None
    context: str | None = None
    host_ip: str = "0.0.0.0"  # noqa: S104 - peers reach NodePorts on every address
    watch_seconds: int = WATCH_SECONDS
    retry_seconds: float = 5.0


def _report(changes: list[Change]) -> None:
    for c in changes:
        if c.action == "failed":
            log.warning("cannot forward %s for %s: %s", c.forward.spec(), c.owner, c.detail)
        else:
            log.info(
                "%s %s (%s)",
                "forwarded" if c.action == "add" else "removed",
                c.forward.spec(),
                c.owner,
            )


def _core_api(opts: Options) -> Any:
    from kubernetes import client, config

    api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(opts.kubeconfig) if opts.kubeconfig else None, context=opts.context
    )
    return client.CoreV1Api(api_client)


def sync_once(opts: Options) -> list[Change]:
    """List Services once and reconcile (``ports sync --once``)."""
    core = _core_api(opts)
    services = [ServiceInfo.from_api(s) for s in core.list_service_for_all_namespaces().items]
    api = RootlesskitApi(opts.socket)
    changes = reconcile(api, desired(services, opts.host_ip), State.load(opts.state))
    _report(changes)
    return changes


def _watch(
    core: Any,
    opts: Options,
    api: RootlesskitApi,
    stop: threading.Event,
    on_pass: Callable[[list[Change]], None] | None,
) -> None:
    """One list + watch cycle; returns when the watch ends."""
    from kubernetes import watch

    def apply(want: dict[PortForward, str]) -> None:
        changes = reconcile(api, want, State.load(opts.state))
        _report(changes)
        if on_pass:
            on_pass(changes)

    listed = core.list_service_for_all_namespaces()
    services = {s.metadata.uid: ServiceInfo.from_api(s) for s in listed.items}
    want = desired(services.values(), opts.host_ip)
    apply(want)
    w = watch.Watch()  # type: ignore[no-untyped-call]
    for event in w.stream(  # type: ignore[no-untyped-call]
        core.list_service_for_all_namespaces,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=opts.watch_seconds,
        allow_watch_bookmarks=True,
    ):
        if stop.is_set():
            w.stop()  # type: ignore[no-untyped-call]
            return
        kind, obj = event["type"], event["object"]
        if kind == "ERROR":
            return  # 410 Gone and friends: list again
        if kind == "BOOKMARK":
            continue
        if kind == "DELETED":
            services.pop(obj.metadata.uid, None)
        else:
            services[obj.metadata.uid] = ServiceInfo.from_api(obj)
        new = desired(services.values(), opts.host_ip)
        if new != want:
            want = new
            apply(want)


def run(
    opts: Options,
    stop: threading.Event | None = None,
    on_pass: Callable[[list[Change]], None] | None = None,
) -> None:
    """The controller loop (``podsec u7s ports sync``); returns when ``stop`` is set.

    list → reconcile → watch from that resourceVersion, reconciling on each change; when the
    watch ends (timeout, 410 Gone, API or RootlessKit trouble) start over after a pause. Blocks
    on the watch: no polling while nothing changes.
    """
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    stop = stop or threading.Event()
    api = RootlesskitApi(opts.socket)
    core = None
    while not stop.is_set():
        try:
            if core is None:
                core = _core_api(opts)
            _watch(core, opts, api, stop, on_pass)
        except PortApiError as exc:
            log.warning("%s", exc.message)
            stop.wait(opts.retry_seconds)
        except (ApiException, HTTPError, OSError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("Kubernetes API: %s", first)
            stop.wait(opts.retry_seconds)


# ---------------------------------------------------------------------------------- supervision
def command(
    podsec: str = "/usr/bin/podsec", *, socket: Path | None = None, kubeconfig: Path | None = None
) -> list[str]:
    """argv that runs the controller (for the built-in supervisor and the unit)."""
    argv = [podsec, "u7s", "ports", "sync"]
    if socket is not None:
        argv += ["--socket", str(socket)]
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
