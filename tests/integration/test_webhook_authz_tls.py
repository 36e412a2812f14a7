"""The revocation webhook over real TLS on loopback (the unit suite runs without a network):
the kubeconfig's CA is the pin, a kept-alive connection answers both verdicts."""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from podsec import revocations
from podsec.host.paths import Host
from podsec.webhook import authz, tls

pytestmark = pytest.mark.integration


def _write(path: Path, *records: revocations.Revoked) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(revocations.dumps(records))
    tmp.replace(path)


def _rec(cn: str, serial: str, not_after: dt.datetime) -> revocations.Revoked:
    return revocations.Revoked(cn, serial, ("devs",), not_after=not_after.isoformat())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, authz.Target]]:
    """The webhook of a host tree on a free loopback port, its kubeconfig as written."""
    host = Host(tmp_path)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    kc = authz.install_config(
        host.path("/etc/kubernetes/podsec-authz"), port=port, uid=os.getuid(), gid=os.getgid()
    )
    server = authz.host_webhook(host, listener)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path / "var/lib/podsec/rbac/revoked.json", authz.read_kubeconfig(kc)
    finally:
        server.shutdown()
        server.server_close()


def test_server_answers_over_tls_with_the_pinned_ca(served: tuple[Path, authz.Target]) -> None:
    revoked, target = served
    assert target.url.startswith("https://127.0.0.1:") and target.url.endswith("/authorize")
    revoked.parent.mkdir(parents=True)
    _write(revoked, _rec("alice", "9", dt.datetime.now(dt.UTC) + dt.timedelta(days=1)))
    client = authz.Client(target)
    try:
        assert client.ask("bob", ("devs",)).status == {"allowed": False}
        answer = client.ask("alice", ("devs",))  # the same kept-alive connection
        assert answer.status["denied"] is True and answer.seconds < 1
    finally:
        client.close()
    # another CA is not trusted: the pin is the kubeconfig's CA, not the system store
    other = tls.serving_certificates(
        revoked.parent / "other", ca_name="x", name="y", addresses=["127.0.0.1"], uid=-1, gid=-1
    )
    stranger = authz.Client(authz.Target(target.url, other))
    with pytest.raises(authz.AuthzError, match="does not answer"):
        stranger.ask("bob")
    stranger.close()
