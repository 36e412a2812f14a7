"""``podsec ingress prepare`` on a manifest modelled on ingress-nginx controller-v1.8.0."""

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from podsec.errors import UsageError, ValidationError
from podsec.lb import ingress

MANIFEST = (
    Path(__file__).resolve().parents[1] / "data/ingress-nginx-controller-v1.8.0-baremetal.yaml"
)
CONTROLLER = "registry.k8s.io/ingress-nginx/controller:v1.8.0@sha256:744ae2afd433a395eeb13dc03d3313facba92e96ad71d9feaafc85925493fee3"
CERTGEN = "registry.k8s.io/ingress-nginx/kube-webhook-certgen:v20230407@sha256:543c40fd093964bc9ab509d3e791f9989963021f1e9e4c9c7b6700b02bfb227b"


def _docs(text: str) -> list[dict]:  # type: ignore[type-arg]
    return [d for d in YAML(typ="safe").load_all(text) if d]


@pytest.fixture(scope="module")
def prepared() -> ingress.Prepared:
    return ingress.prepare(MANIFEST.read_text())


def test_images_repointed_digests_dropped(prepared: ingress.Prepared) -> None:
    assert prepared.images == (
        ingress.ImageMove(CONTROLLER, "registry.local/ingress-nginx/controller:v1.8.0"),
        ingress.ImageMove(CERTGEN, "registry.local/ingress-nginx/kube-webhook-certgen:v20230407"),
    )
    images = []
    for doc in _docs(prepared.text):
        if doc["kind"] in ("Deployment", "Job"):
            images += [c["image"] for c in doc["spec"]["template"]["spec"]["containers"]]
    assert images == [
        "registry.local/ingress-nginx/controller:v1.8.0",
        "registry.local/ingress-nginx/kube-webhook-certgen:v20230407",
        "registry.local/ingress-nginx/kube-webhook-certgen:v20230407",
    ]
    assert "sha256" not in prepared.text


def test_node_port_on_http_port_only(prepared: ingress.Prepared) -> None:
    assert prepared.service == "ingress-nginx/ingress-nginx-controller"
    services = {d["metadata"]["name"]: d for d in _docs(prepared.text) if d["kind"] == "Service"}
    ports = services["ingress-nginx-controller"]["spec"]["ports"]
    assert ports[0]["appProtocol"] == "http" and ports[0]["nodePort"] == 31000
    assert "nodePort" not in ports[1]
    assert "nodePort" not in services["ingress-nginx-controller-admission"]["spec"]["ports"][0]
    assert services["ingress-nginx-controller"]["spec"]["type"] == "NodePort"


def test_everything_else_is_kept_line_for_line(prepared: ingress.Prepared) -> None:
    before = MANIFEST.read_text().splitlines()
    after = prepared.text.splitlines()
    assert len(after) == len(before) + 1  # one nodePort line added
    changed = [
        b for b, a in zip(before, [x for x in after if "nodePort" not in x], strict=True) if a != b
    ]
    assert len(changed) == 3 and all("image:" in line for line in changed)
    # our comments survive, the EOL one included
    for comment in (
        "# Trimmed from ingress-nginx",
        "# haproxy's `backend http`",
        "# pinned upstream",
    ):
        assert comment in prepared.text
    assert "kube-webhook-certgen:v20230407 # pinned upstream" in prepared.text
    assert len(_docs(prepared.text)) == len(_docs(MANIFEST.read_text()))


def test_idempotent(prepared: ingress.Prepared) -> None:
    again = ingress.prepare(prepared.text)
    assert again.text == prepared.text and again.images == ()


def test_other_registry_and_port() -> None:
    p = ingress.prepare(MANIFEST.read_text(), node_port=31080, registry="registry.local/k8s-p10")
    assert p.images[0].target == "registry.local/k8s-p10/ingress-nginx/controller:v1.8.0"
    assert "nodePort: 31080" in p.text


def test_commands_as_the_seed(prepared: ingress.Prepared) -> None:
    assert ingress.commands(prepared.images) == [
        ["podman", "tag", CONTROLLER, "registry.local/ingress-nginx/controller:v1.8.0"],
        ["podman", "tag", CERTGEN, "registry.local/ingress-nginx/kube-webhook-certgen:v20230407"],
        ["podman", "push", "registry.local/ingress-nginx/controller:v1.8.0"],
        ["podman", "push", "registry.local/ingress-nginx/kube-webhook-certgen:v20230407"],
    ]
    signed = ingress.commands(prepared.images[:1], "dev@example.org")
    assert signed[-1] == [
        "podman",
        "push",
        "--sign-by",
        "dev@example.org",
        "registry.local/ingress-nginx/controller:v1.8.0",
    ]


@pytest.mark.parametrize(
    ("image", "target"),
    [
        ("registry.k8s.io/a/b:1@sha256:00", "R/a/b:1"),
        ("quay.io:5000/x/y:2", "R/x/y:2"),
        ("nginx:1.25", "R/library/nginx:1.25"),
        ("bitnami/redis:7", "R/bitnami/redis:7"),
    ],
)
def test_retarget(image: str, target: str) -> None:
    assert ingress.retarget(image, "R") == target


def test_errors() -> None:
    with pytest.raises(UsageError, match="30000"):
        ingress.prepare(MANIFEST.read_text(), node_port=8080)
    with pytest.raises(UsageError, match="registry"):
        ingress.prepare(MANIFEST.read_text(), registry="bad registry")
    with pytest.raises(ValidationError, match="no Service"):
        ingress.prepare("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n")
    with pytest.raises(ValidationError, match="not valid YAML"):
        ingress.prepare("a: [1\n")


def test_cluster_ip_service_becomes_node_port() -> None:
    text = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: ingress-nginx-controller, namespace: n}\n"
        "spec:\n  ports:\n  - name: http\n    port: 80\n"
    )
    p = ingress.prepare(text)
    svc = _docs(p.text)[0]
    assert svc["spec"]["type"] == "NodePort" and svc["spec"]["ports"][0]["nodePort"] == 31000
