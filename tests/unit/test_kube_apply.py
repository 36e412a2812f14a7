"""podsec.kube.apply against a fake API server: discovery, server-side apply requests."""

from __future__ import annotations

import pytest
from tests.fixtures.fake_kube import FakeKube, Reply

from podsec.errors import UsageError
from podsec.kube import apply
from podsec.kube.client import Client

CORE = {
    "kind": "APIResourceList",
    "resources": [
        {"name": "namespaces", "kind": "Namespace", "namespaced": False},
        {"name": "configmaps", "kind": "ConfigMap", "namespaced": True},
        {"name": "pods/log", "kind": "Pod", "namespaced": True},
    ],
}
APPS = {"resources": [{"name": "daemonsets", "kind": "DaemonSet", "namespaced": True}]}
MANIFEST = """---
apiVersion: v1
kind: Namespace
metadata: {name: kube-flannel}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: kube-flannel-cfg, namespace: kube-flannel}
data: {a: b}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: kube-flannel-ds, namespace: kube-flannel}
---
"""


def test_apply_uses_discovery_and_server_side_apply(fake_kube: FakeKube) -> None:
    fake_kube.on("GET", "/api/v1", Reply(body=CORE))
    fake_kube.on("GET", "/apis/apps/v1", Reply(body=APPS))
    for url in (
        "/api/v1/namespaces/kube-flannel",
        "/api/v1/namespaces/kube-flannel/configmaps/kube-flannel-cfg",
        "/apis/apps/v1/namespaces/kube-flannel/daemonsets/kube-flannel-ds",
    ):
        fake_kube.on("PATCH", url, lambda req: Reply(body=req.json()))
    objects = apply.documents(MANIFEST)
    with Client(fake_kube.connection()) as api:
        assert apply.apply(api, objects) == objects
    patches = [r for r in fake_kube.requests if r.method == "PATCH"]
    assert [r.path for r in patches] == [
        "/api/v1/namespaces/kube-flannel",
        "/api/v1/namespaces/kube-flannel/configmaps/kube-flannel-cfg",
        "/apis/apps/v1/namespaces/kube-flannel/daemonsets/kube-flannel-ds",
    ]
    assert {r.headers["content-type"] for r in patches} == {"application/apply-patch+yaml"}
    assert {tuple(sorted(r.query.items())) for r in patches} == {
        (("fieldManager", "podsec"), ("force", "true"))
    }
    # discovery asked once per group version
    assert [r.path for r in fake_kube.requests if r.method == "GET"] == ["/api/v1", "/apis/apps/v1"]


def test_unknown_kind_and_bad_objects(fake_kube: FakeKube) -> None:
    fake_kube.on("GET", "/api/v1", Reply(body=CORE))
    with Client(fake_kube.connection()) as api:
        with pytest.raises(UsageError, match="no kind Pod in v1"):  # only pods/log was listed
            apply.apply(api, [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}])
        with pytest.raises(UsageError, match="lacks apiVersion"):
            apply.apply(api, [{"kind": "Pod"}])
    with pytest.raises(UsageError, match="not a mapping"):
        apply.documents("- a\n")
