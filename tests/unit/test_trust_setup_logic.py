"""Pure logic of policy create, image makers and the services configs (no root, no tools)."""

from __future__ import annotations

import pytest

from podsec.errors import UsageError
from podsec.registry import service
from podsec.registry.client import _next_link
from podsec.trust import policy as pol
from podsec.trust import setup, users


def test_check_address():
    assert setup.check_address("192.168.1.10") == "192.168.1.10"
    assert setup.check_address("127.44.5.6") == "127.44.5.6"  # a test-env loopback is fine
    for bad in (
        "127.0.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "10.1.2",
        "10.1.2.300",
        "a.b.c.d",
        "1.2.3.4; rm",
    ):
        with pytest.raises(UsageError):
            setup.check_address(bad)


def test_pins():
    pins = setup.parse_pins(
        ["sha256:" + "a" * 64, "0123 4567 89AB CDEF 0123 4567 89ab cdef 0123 4567"]
    )
    assert pins.sha256 == {"sha256:" + "a" * 64}
    assert pins.fingerprints == {"0123456789ABCDEF0123456789ABCDEF01234567"}
    with pytest.raises(UsageError, match="expected a 40-hex key fingerprint"):
        setup.parse_pins(["md5:abc"])
    with pytest.raises(UsageError, match="not the registry node"):
        setup.verify_published({"policy.json": b"{}"}, setup.Pins())


def test_base_policy_rejects_by_default_and_accepts_local_transports():
    p = setup.base_policy(
        {"registry.local/p10": ("/var/sigstore/keys/a.pgp", "/var/sigstore/keys/b.pgp")}
    )
    assert pol.default_type(p) == "reject"
    assert set(pol.non_docker_transports(p)) == set(setup.LOCAL_TRANSPORTS)
    req = p.transports["docker"]["registry.local/p10"][0]
    assert req.key_paths == ("/var/sigstore/keys/a.pgp", "/var/sigstore/keys/b.pgp")
    text = pol.render(p)
    assert pol.render(pol.parse(text, "x")) == text
    assert setup.signed_scopes(p) == {"registry.local/p10": req.key_paths}


def test_system_policy_passes_check_policy_rule_105_and_makers_are_unrestricted():
    """issue 16: one idea of a correct node — the system policy accepts no transport
    check-policy forbids; a maker's own policy accepts anything but registry.local unsigned."""
    from podsec.monitor import policy_check

    p = setup.base_policy({"registry.local/k8s-p10": ("/var/sigstore/keys/a.pgp",)})
    assert set(pol.non_docker_transports(p)) <= set(policy_check.ALLOWED_TRANSPORTS)
    own = setup.maker_policy(p)
    assert pol.default_type(own) == "insecureAcceptAnything"
    assert pol.non_docker_transports(own) == []
    assert list(own.transports["docker"]) == ["registry.local/k8s-p10"]
    assert pol.unsigned_registries(own) == []
    assert pol.render(pol.parse(pol.render(own), "x")) == pol.render(own)


def test_policy_create_drops_the_archive_transports_an_earlier_podsec_accepted():
    old = pol.parse(
        '{"default":[{"type":"reject"}],"transports":{"docker":{},'
        '"dir":{"":[{"type":"insecureAcceptAnything"}]},'
        '"oci-archive":{"":[{"type":"insecureAcceptAnything"}]},'
        '"oci":{"/srv/mine":[{"type":"insecureAcceptAnything"}]}}}',
        "old",
    )
    kept = setup.without_former(old)
    assert set(kept.transports) == {"docker", "oci"}  # the administrator's own oci rule stays


def test_maker_specs():
    specs = users.parse_maker_specs([])
    assert [(s.user, s.scope) for s in specs] == [("imagemaker", "registry.local")]
    specs = users.parse_maker_specs(["alice@k8s-p10", "bob@registry.local/team/app", "carol"])
    assert [s.scope for s in specs] == [
        "registry.local/k8s-p10",
        "registry.local/team/app",
        "registry.local",
    ]
    for bad in (
        ["a@x", "a@y"],
        ["a@x", "b@x"],
        ["a@$(id)"],
        ["a@UPPER"],
        ["Bad"],
        ["root"],
        ["a@"],
    ):
        with pytest.raises(UsageError):
            users.parse_maker_specs(bad)


def test_maker_registries_d_has_both_spellings():
    text = users.maker_registries_d()
    for key in ("lookaside:", "sigstore:", "lookaside-staging:", "sigstore-staging:"):
        assert f"  {key}" in text


def test_service_configs():
    paths = service.Paths()
    reg = service.render_registry_config(paths, None)
    assert "addr: :80" in reg and "rootdirectory: /var/lib/podsec-registry" in reg
    assert "auth" not in reg
    assert "addr: 10.0.0.1:80" in service.render_registry_config(paths, "10.0.0.1")
    conf = service.render_nginx_config(paths, None)
    assert "listen 81;" in conf and "root /var/sigstore;" in conf
    assert (
        "location /keys/ { limit_except GET { deny all; } autoindex on; autoindex_format json; }"
        in conf
    )
    assert "location /sigstore/ { limit_except GET { deny all; } autoindex off; }" in conf
    unit = service.registry_unit()
    assert unit.get("Service", "ExecStart") == [
        f"/usr/bin/docker-registry serve {service.REGISTRY_CONFIG}"
    ]
    assert unit.get("Service", "NoNewPrivileges") == ["yes"]
    assert service.sigstore_unit().get("Install", "WantedBy") == ["multi-user.target"]


def test_catalog_pagination_link():
    assert _next_link('</v2/_catalog?last=b&n=2>; rel="next"') == "/v2/_catalog?last=b&n=2"
    assert _next_link(None) is None


def test_two_makers_on_one_path_are_told_about_user_at_path():
    """issue 16: `create-imagemakeruser bob carol` said "path given twice" without the way out."""
    with pytest.raises(UsageError) as exc:
        users.parse_maker_specs(["bob", "carol"])
    assert "bob, carol" in exc.value.message and "registry.local" in exc.value.message
    assert "USER@PATH" in (exc.value.hint or "") and "bob@" in (exc.value.hint or "")
