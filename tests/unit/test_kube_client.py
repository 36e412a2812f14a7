"""podsec.kube.client against a fake API server: one error hierarchy, fast reads, watches."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from tests.fixtures.fake_kube import FakeKube, Reply, status

from podsec.host.paths import Host
from podsec.kube import client, kubeconfig
from podsec.kube.client import Client


@pytest.mark.parametrize(
    ("code", "reason", "cls", "parent"),
    [
        (401, "Unauthorized", client.APIUnauthorizedError, client.APIClientError),
        (403, "Forbidden", client.APIForbiddenError, client.APIClientError),
        (404, "NotFound", client.APINotFoundError, client.APIClientError),
        (409, "Conflict", client.APIConflictError, client.APIClientError),
        (410, "Expired", client.APIGoneError, client.APIClientError),
        (422, "Invalid", client.APIClientError, client.APIError),
        (500, "InternalError", client.APIServerError, client.APIError),
        (503, "ServiceUnavailable", client.APIServerError, client.APIError),
    ],
)
def test_every_error_status_has_its_exception(
    fake_kube: FakeKube, code: int, reason: str, cls: type, parent: type
) -> None:
    fake_kube.on("GET", "/api/v1/namespaces/x", status(code, reason, f"it is {reason}"))
    with Client(fake_kube.connection()) as api, pytest.raises(cls) as info:
        api.get("/api/v1/namespaces/x")
    exc = info.value
    assert isinstance(exc, parent) and exc.status == code and exc.reason == reason
    assert f"failed ({code}): it is {reason}" in exc.message
    if code == 403:
        assert exc.hint is not None and "--kubeconfig" in exc.hint


def test_reads_writes_and_the_credentials_sent(fake_kube: FakeKube) -> None:
    fake_kube.on("GET", "/api/v1/namespaces/a", Reply(body={"metadata": {"name": "a"}}))
    fake_kube.on("GET", "/api/v1/namespaces/b", Reply(body={"metadata": {"name": "b"}}))
    fake_kube.on("POST", "/api/v1/namespaces", Reply(201, {"metadata": {"name": "new"}}))
    with Client(fake_kube.connection()) as api:
        names = [d["metadata"]["name"] for d in api.get_many(["/api/v1/namespaces/a"] * 3)]
        assert names == ["a", "a", "a"]
        assert api.get_or_none("/api/v1/namespaces/missing") is None
        created = api.request("POST", "/api/v1/namespaces", {"metadata": {"name": "new"}})
        assert created == {"metadata": {"name": "new"}}
    post = next(r for r in fake_kube.requests if r.method == "POST")
    assert post.json() == {"metadata": {"name": "new"}}
    assert post.headers["content-type"] == "application/json"
    assert {r.headers["authorization"] for r in fake_kube.requests} == {"Bearer fake-token"}


def test_conflicts_are_retried_then_raised(fake_kube: FakeKube) -> None:
    fake_kube.on(
        "PUT",
        "/api/v1/namespaces/a",
        status(409, "Conflict", "the object has been modified"),
        Reply(body={"ok": True}),
    )
    with Client(fake_kube.connection()) as api:
        assert api.retry_conflicts(lambda: api.request("PUT", "/api/v1/namespaces/a", {})) == {
            "ok": True
        }
        fake_kube.on("PUT", "/api/v1/namespaces/a", status(409, "Conflict", "again"))
        with pytest.raises(client.APIConflictError):
            api.retry_conflicts(lambda: api.request("PUT", "/api/v1/namespaces/a", {}), 3)
    assert sum(r.method == "PUT" for r in fake_kube.requests) == 2 + 3


def test_watch_yields_events_until_the_server_ends_it(fake_kube: FakeKube) -> None:
    events = [
        {"type": "ADDED", "object": {"metadata": {"name": "s1", "resourceVersion": "11"}}},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}},
        {"type": "DELETED", "object": {"metadata": {"name": "s1", "resourceVersion": "13"}}},
    ]
    fake_kube.on("GET", "/api/v1/services", Reply(body=events, watch=True))
    with Client(fake_kube.connection()) as api:
        got = list(api.watch("/api/v1/services", {"resourceVersion": "10"}, seconds=5))
    assert got == events
    assert fake_kube.requests[0].query == {
        "resourceVersion": "10",
        "watch": "true",
        "timeoutSeconds": "5",
    }


def test_watch_refused_is_an_error_before_any_event(fake_kube: FakeKube) -> None:
    fake_kube.on("GET", "/api/v1/services", status(410, "Expired", "too old resource version"))
    with Client(fake_kube.connection()) as api, pytest.raises(client.APIGoneError):
        next(api.watch("/api/v1/services", {"resourceVersion": "1"}))


def test_wrong_token_and_ready(fake_kube: FakeKube) -> None:
    fake_kube.on("GET", "/readyz", Reply(body=b"ok"))
    with Client(fake_kube.connection()) as api:
        assert api.ready()
    with Client(fake_kube.connection(token="stolen")) as api:
        assert not api.ready()
        with pytest.raises(client.APIUnauthorizedError) as info:
            api.get("/api/v1/namespaces")
    assert info.value.hint is not None and "expired or revoked" in info.value.hint


def test_a_server_that_is_gone_is_unreachable(fake_kube: FakeKube) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = fake_kube.connection()
    dead = kubeconfig.Connection(**{**conn.__dict__, "server": f"https://127.0.0.1:{port}"})
    with Client(dead, timeout=2) as api, pytest.raises(client.Unreachable, match="cannot reach"):
        api.get("/api/v1/namespaces")
    # a change (the official client's transport) says the same, without urllib3's wrapping
    with Client(dead, timeout=2) as api, pytest.raises(client.Unreachable) as info:
        api.request("POST", "/api/v1/namespaces", {"metadata": {"name": "x"}})
    assert info.value.message == (
        f"cannot reach the Kubernetes API at https://127.0.0.1:{port}: Connection refused"
    ), info.value.message


def test_kubeconfig_from_the_fake_cluster_is_the_connection(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    path = fake_kube.kubeconfig(tmp_path / "config")
    fake_kube.on("GET", "/api", Reply(body={"kind": "APIVersions", "versions": ["v1"]}))
    conn = kubeconfig.resolve(Host(tmp_path / "root"), path)
    with Client(conn) as api:
        assert api.get("/api")["versions"] == ["v1"]
