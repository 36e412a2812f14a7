"""A small client of RootlessKit's REST API (API 1.1, rootlesskit ≥ 0.14) over its unix socket.

``rootlessctl add-ports|list-ports|remove-ports`` without the subprocess: ``GET /v1/info``,
``GET|POST /v1/ports``, ``DELETE /v1/ports/{id}`` on ``<state-dir>/api.sock``. The socket of
u7s-admin's namespace is ``$XDG_RUNTIME_DIR/usernetes/rootlesskit/api.sock`` (the original's
``rootlessctl`` wrapper uses the same path).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podsec.errors import PodsecError
from podsec.host import accounts
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.u7s.plan import PortForward

SOCKET_SUFFIX = "usernetes/rootlesskit/api.sock"
_PROTOS = ("tcp", "udp")


class PortApiError(PodsecError):
    """RootlessKit's API refused a request or cannot be reached."""


@dataclass(frozen=True)
class Port:
    """A forward RootlessKit holds, with the id its API gave it."""

    id: int
    forward: PortForward


def default_socket(host: Host, user: str) -> Path:
    """``/run/user/<uid of user>/usernetes/rootlesskit/api.sock`` (``$XDG_RUNTIME_DIR`` when
    we are that user). The user is u7s-admin, or PODSEC_U7S_USER as for the node runtime."""
    entry = accounts.get_user(host, user)
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and (entry is None or entry.uid == os.getuid()):
        return Path(runtime) / SOCKET_SUFFIX
    if entry is None:
        raise PortApiError(
            _("user {user} does not exist").format(user=user),
            hint=_("initialise the node with `podsec u7s kubeadm init|join`, or pass --socket"),
        )
    return host.path(f"/run/user/{entry.uid}/{SOCKET_SUFFIX}")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float):
        super().__init__("rootlesskit", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _to_forward(spec: dict[str, Any]) -> PortForward:
    proto = str(spec.get("proto", "tcp"))
    # the builtin driver accepts tcp4/udp6 too; report them as the family-less protocol
    base = proto.rstrip("46")
    return PortForward(
        host_port=int(spec["parentPort"]),
        child_port=int(spec["childPort"]),
        proto="udp" if base == "udp" else "tcp",
        host_ip=str(spec.get("parentIP") or "0.0.0.0"),  # noqa: S104 - rootlesskit's default
    )


class RootlesskitApi:
    """One request per connection: the API is local and tiny, keep-alive buys nothing."""

    def __init__(self, socket_path: Path, timeout: float = 10.0):
        self.socket_path = socket_path
        self.timeout = timeout

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        conn = _UnixConnection(self.socket_path, self.timeout)
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        try:
            conn.request(method, f"/v1{path}", body=payload, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise PortApiError(
                _("cannot reach RootlessKit's API at {sock}: {err}").format(
                    sock=self.socket_path, err=exc.strerror if isinstance(exc, OSError) else exc
                ),
                hint=_("is the u7s node running? (`podsec u7s run` or the u7s service)"),
            ) from exc
        finally:
            conn.close()
        data: Any = None
        if raw.strip():
            try:
                data = json.loads(raw)
            except ValueError:
                data = {"message": raw.decode(errors="replace").strip()}
        if resp.status >= 300:
            message = data.get("message") if isinstance(data, dict) else None
            raise PortApiError(
                _("RootlessKit refused {method} {path}: {message}").format(
                    method=method, path=path, message=message or resp.reason
                )
            )
        return data

    def info(self) -> dict[str, Any]:
        data = self._request("GET", "/info")
        return data if isinstance(data, dict) else {}

    def list_ports(self) -> list[Port]:
        data = self._request("GET", "/ports") or []
        try:
            if not isinstance(data, list):
                raise TypeError(type(data).__name__)
            return sorted(
                (Port(int(item["id"]), _to_forward(item.get("spec") or {})) for item in data),
                key=lambda p: p.id,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self._malformed("GET /ports", exc) from exc

    def _malformed(self, what: str, exc: Exception) -> PortApiError:
        return PortApiError(
            _("RootlessKit at {sock} answered {what} with a malformed document ({err})").format(
                sock=self.socket_path, what=what, err=f"{type(exc).__name__}: {exc}"
            )
        )

    def add_port(self, forward: PortForward) -> Port:
        if forward.proto not in _PROTOS:
            raise PortApiError(_("unsupported protocol {proto}").format(proto=forward.proto))
        spec = {
            "proto": forward.proto,
            "parentIP": forward.host_ip,
            "parentPort": forward.host_port,
            "childPort": forward.child_port,
        }
        data = self._request("POST", "/ports", spec)
        try:
            return Port(int(data["id"]), _to_forward(data.get("spec") or spec))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self._malformed("POST /ports", exc) from exc

    def remove_port(self, port_id: int) -> None:
        self._request("DELETE", f"/ports/{port_id}")


def ensure_forwards(api: RootlesskitApi, wanted: Iterable[PortForward]) -> list[Port]:
    """Add the forwards of ``wanted`` that RootlessKit does not hold yet; return those added.

    Only adds: forwards made by others (the port-sync controller, an administrator's
    ``rootlessctl add-ports``) are left alone.
    """
    have = {port.forward for port in api.list_ports()}
    return [api.add_port(forward) for forward in wanted if forward not in have]
