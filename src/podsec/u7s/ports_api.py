"""A small client of rootlesskit's API socket (HTTP over a unix socket, stdlib only):
list, add and remove port forwards, as ``rootlessctl`` does."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

from podsec.errors import PodsecError
from podsec.i18n import _
from podsec.u7s.plan import PortForward


class PortError(PodsecError):
    """rootlesskit refused a port forward (e.g. the host port is taken)."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class PortsClient:
    def __init__(self, api_socket: Path, timeout: float = 10.0):
        self.api_socket = api_socket
        self.timeout = timeout

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        conn = _UnixConnection(self.api_socket, self.timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, f"/v1{path}", body=data, headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode(errors="replace")
        except OSError as exc:
            raise PortError(
                _("rootlesskit API {sock} unreachable: {err}").format(sock=self.api_socket, err=exc)
            ) from exc
        finally:
            conn.close()
        if resp.status >= 300:
            try:
                message = json.loads(text).get("message", text)
            except ValueError:
                message = text
            raise PortError(_("rootlesskit: {msg}").format(msg=message.strip()))
        return json.loads(text) if text.strip() else None

    def info(self) -> dict[str, Any]:
        result = self._request("GET", "/info")
        return result if isinstance(result, dict) else {}

    def ports(self) -> list[dict[str, Any]]:
        """Current forwards: ``[{"id": N, "spec": {"proto", "parentIP", "parentPort", "childPort"}}]``."""
        result = self._request("GET", "/ports")
        return list(result or [])

    def add(self, port: PortForward) -> int:
        spec = {
            "proto": port.proto,
            "parentIP": port.host_ip,
            "parentPort": port.host_port,
            "childPort": port.child_port,
        }
        result = self._request("POST", "/ports", spec)
        return int(result["id"])

    def remove(self, port_id: int) -> None:
        self._request("DELETE", f"/ports/{port_id}")

    def sync(self, wanted: tuple[PortForward, ...]) -> list[PortForward]:
        """Make the forwards exactly ``wanted``; return the ones added."""
        current = self.ports()
        have = {}
        for entry in current:
            s = entry["spec"]
            key = (
                s.get("proto"),
                s.get("parentIP") or "0.0.0.0",  # noqa: S104
                s.get("parentPort"),
                s.get("childPort"),
            )
            have[key] = entry["id"]
        want = {(p.proto, p.host_ip, p.host_port, p.child_port): p for p in wanted}
        for key, port_id in have.items():
            if key not in want:
                self.remove(port_id)
        added = []
        for key, port in want.items():
            if key not in have:
                self.add(port)
                added.append(port)
        return added
