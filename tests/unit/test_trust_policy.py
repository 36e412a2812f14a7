"""policy.json: strict parsing (file + field in errors), rendering, scope resolution."""

from __future__ import annotations

import json

import pytest

from podsec.errors import ValidationError
from podsec.host.paths import Host
from podsec.trust import policy as pol
from podsec.trust import reference

GOOD = {
    "default": [{"type": "reject"}],
    "transports": {
        "docker": {
            "registry.local": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k/a.pgp"}],
            "registry.local/p10": [
                {
                    "type": "signedBy",
                    "keyType": "GPGKeys",
                    "keyPaths": ["/k/b.pgp", "/k/c.pgp"],
                    "signedIdentity": {"type": "matchRepository"},
                }
            ],
            "docker.io": [{"type": "insecureAcceptAnything"}],
            "*.example.com": [{"type": "reject"}],
        },
        "containers-storage": {"": [{"type": "insecureAcceptAnything"}]},
        "oci": {"": [{"type": "insecureAcceptAnything"}], "/srv/oci": [{"type": "reject"}]},
        "docker-archive": {"": [{"type": "insecureAcceptAnything"}]},
    },
}


def test_round_trip_is_stable():
    p = pol.parse(json.dumps(GOOD), "policy.json")
    text = pol.render(p)
    assert pol.render(pol.parse(text, "x")) == text
    assert text.startswith('{\n    "default": [\n')
    assert json.loads(text)["transports"]["docker"]["registry.local/p10"][0]["keyPaths"] == [
        "/k/b.pgp",
        "/k/c.pgp",
    ]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            lambda d: d["transports"]["docker"]["registry.local"][0].update(keyPth="/x"),
            'transports.docker["registry.local"][0].keyPth',
        ),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d.pop("default"), "default"),
        (lambda d: d.update(default=[]), "default"),
        (
            lambda d: d["transports"]["docker"]["registry.local"][0].update(keyType="X509"),
            "keyType",
        ),
        (
            lambda d: d["transports"]["docker"]["registry.local"][0].update(keyData="QQ=="),
            'transports.docker["registry.local"][0]',
        ),
        (
            lambda d: d["transports"]["docker"]["registry.local"][0].update(
                signedIdentity={"type": "matchEverything"}
            ),
            "signedIdentity.type",
        ),
        (
            lambda d: d["transports"].update({"dir": {"relative": [{"type": "reject"}]}}),
            'transports.dir["relative"]',
        ),
        (
            lambda d: d["transports"]["docker-archive"].update({"/x": [{"type": "reject"}]}),
            'transports.docker-archive["/x"]',
        ),
        (
            lambda d: d["transports"]["oci"].update({"relative": [{"type": "reject"}]}),
            'transports.oci["relative"]',
        ),
        (lambda d: d["default"].append({"type": "acceptEverything"}), "default[1].type"),
        (lambda d: d["default"][0].update(keyPath="/x"), "default[0].keyPath"),
    ],
)
def test_strict_errors_name_file_and_field(mutate, field):
    data = json.loads(json.dumps(GOOD))
    mutate(data)
    with pytest.raises(ValidationError) as exc:
        pol.parse(json.dumps(data), "/etc/containers/policy.json")
    assert exc.value.message.startswith("/etc/containers/policy.json: ")
    assert field in exc.value.message


def test_duplicate_and_invalid_json():
    text = '{"default": [{"type": "reject"}], "default": [{"type": "reject"}]}'
    with pytest.raises(ValidationError, match=r"p.json: default: duplicate field"):
        pol.parse(text, "p.json")
    with pytest.raises(ValidationError, match=r"p.json: invalid JSON at line 1"):
        pol.parse("{", "p.json")


def test_scope_resolution_most_specific():
    p = pol.parse(json.dumps(GOOD), "p")
    assert pol.scope_for(p, "docker", "registry.local/p10/pause:3.2")[0] == "registry.local/p10"
    assert pol.scope_for(p, "docker", "registry.local/other/x:1")[0] == "registry.local"
    assert pol.scope_for(p, "docker", "busybox")[0] == "docker.io"
    assert pol.scope_for(p, "docker", "quay.example.com/a/b:1")[0] == "*.example.com"
    assert pol.scope_for(p, "docker", "quay.io/a/b:1") == (pol.DEFAULT_SCOPE, p.default)
    assert pol.scope_for(p, "oci", "/srv/oci/layout:ref")[0] == "/srv/oci"
    assert pol.scope_for(p, "oci", "/tmp/x")[0] == ""
    assert pol.scope_for(p, "dir", "/tmp/x")[0] == pol.DEFAULT_SCOPE


def test_registry_lists():
    p = pol.parse(json.dumps(GOOD), "p")
    assert pol.signed_registries(p) == ["registry.local", "registry.local/p10"]
    assert pol.unsigned_registries(p) == ["*.example.com", "docker.io"]
    assert pol.non_docker_transports(p) == ["containers-storage", "docker-archive", "oci"]
    assert pol.default_type(p) == "reject"


def test_effective_policy_path(tmp_path):
    host = Host(tmp_path)
    assert pol.effective_policy_path(host, None) == tmp_path / "etc/containers/policy.json"
    user = tmp_path / "home/u/.config/containers/policy.json"
    assert pol.effective_policy_path(host, tmp_path.__class__("/home/u")).name == "policy.json"
    user.parent.mkdir(parents=True)
    user.write_text("{}")
    assert pol.effective_policy_path(host, tmp_path.__class__("/home/u")) == user


def test_reference_normalisation():
    r = reference.parse("busybox")
    assert (r.domain, r.path, r.identity()) == (
        "docker.io",
        "library/busybox",
        "docker.io/library/busybox:latest",
    )
    r = reference.parse("docker://registry.local/p10/kube-apiserver:v1.20.2")
    assert r.namespaces() == [
        "registry.local/p10/kube-apiserver",
        "registry.local/p10",
        "registry.local",
        "*.local",
    ]
    assert reference.parse("localhost:5000/a@sha256:" + "a" * 64).digest
