"""``podsec lb check-apiserver``: check_apiserver.sh's test, in Python.

haproxy must relay the API on this node (``LOCAL:lb_port``) and — when this node holds the VIP —
through the VIP too. "Relays" means a TLS handshake and an HTTP answer to ``GET /healthz``
(any status: haproxy's own checks decide which apiserver answers).
"""

from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from podsec.host.run import run
from podsec.i18n import _
from podsec.lb import cluster as cl


@dataclass(frozen=True)
class Probe:
    url: str
    ok: bool
    detail: str  # "HTTP 200" or the error


@dataclass(frozen=True)
class Health:
    probes: tuple[Probe, ...]
    holds_vip: bool

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.probes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "holds_vip": self.holds_vip,
            "probes": [{"url": p.url, "ok": p.ok, "detail": p.detail} for p in self.probes],
        }


def probe(address: str, port: int, timeout: float = 2.0) -> Probe:
    url = f"https://{address}:{port}/healthz"
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # curl --insecure, as the seed's script: liveness only
    conn = http.client.HTTPSConnection(address, port, context=ctx, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        resp.read()
        return Probe(url, True, f"HTTP {resp.status}")
    except (OSError, http.client.HTTPException) as exc:
        return Probe(url, False, str(exc) or type(exc).__name__)
    finally:
        conn.close()


def holds_address(vip: IPv4Address) -> bool:
    """True when an interface of this machine carries exactly ``vip``."""
    result = run(["ip", "-o", "-4", "addr", "show", "to", f"{vip}/32"], check=False, timeout=10)
    return result.returncode == 0 and bool(result.stdout.strip())


def check(c: cl.Cluster, *, local: str | None = None, timeout: float = 2.0) -> Health:
    bind = c.haproxy.bind
    here = local or ("127.0.0.1" if bind in ("*", "0.0.0.0") else bind)  # noqa: S104
    probes = [probe(here, c.lb_port, timeout)]
    mine = holds_address(c.vip)
    if mine and str(c.vip) != here:
        probes.append(probe(str(c.vip), c.lb_port, timeout))
    return Health(tuple(probes), mine)


def summary(h: Health) -> str:
    bad = [p for p in h.probes if not p.ok]
    if bad:
        return _("Error GET {url}: {err}").format(url=bad[0].url, err=bad[0].detail)
    return _("haproxy answers: {urls}").format(
        urls=", ".join(f"{p.url} ({p.detail})" for p in h.probes)
    )
