"""Key rotation's policy edits: keys named by maker and generation, a new key beside the old
one in every requirement naming it, retiring one, never leaving a requirement without keys."""

from __future__ import annotations

import pytest

from podsec.errors import UsageError
from podsec.trust import policy as pol
from podsec.trust import rotate, setup

K = setup.KEYS_DIR


def test_key_files_name_their_maker_and_generation() -> None:
    assert rotate.key_file(f"{K}/carol.pub") == rotate.KeyFile(
        f"{K}/carol.pub", "carol", 1, "sigstore"
    )
    assert rotate.key_file(f"{K}/carol.3.pgp") == rotate.KeyFile(
        f"{K}/carol.3.pgp", "carol", 3, "gpg"
    )
    assert rotate.key_file("/etc/pki/carol.pub") is None
    assert rotate.key_file(f"{K}/policy.json") is None


def _policy() -> pol.Policy:
    return pol.Policy(
        (pol.reject(),),
        {
            "docker": {
                "registry.local/apps": (pol.sigstore_signed(f"{K}/carol.pub"),),
                "registry.local/both": (
                    pol.signed_by(f"{K}/dave.pgp"),
                    pol.sigstore_signed([f"{K}/erin.pub", f"{K}/carol.pub"]),
                ),
                "registry.local/other": (pol.sigstore_signed(f"{K}/erin.pub"),),
            }
        },
    )


def test_a_new_key_goes_beside_the_old_one_everywhere() -> None:
    p = rotate.edit_keys(_policy(), f"{K}/carol.pub", f"{K}/carol.2.pub", None)
    d = p.transports["docker"]
    assert d["registry.local/apps"][0].key_paths == (f"{K}/carol.pub", f"{K}/carol.2.pub")
    assert d["registry.local/both"][1].key_paths == (
        f"{K}/erin.pub",
        f"{K}/carol.pub",
        f"{K}/carol.2.pub",
    )
    assert d["registry.local/both"][0] == pol.signed_by(f"{K}/dave.pgp")
    assert d["registry.local/other"] == _policy().transports["docker"]["registry.local/other"]
    assert rotate.edit_keys(p, f"{K}/carol.pub", f"{K}/carol.2.pub", None) == p  # idempotent
    assert [k.path for k in rotate.maker_keys(p, "carol")] == [f"{K}/carol.pub", f"{K}/carol.2.pub"]
    # rendered and parsed back as containers/image reads it
    assert pol.parse(pol.render(p), "p.json") == p


def test_retiring_drops_the_key_and_never_empties_a_requirement() -> None:
    rotated = rotate.edit_keys(_policy(), f"{K}/carol.pub", f"{K}/carol.2.pub", None)
    p = rotate.edit_keys(rotated, None, None, f"{K}/carol.pub")
    d = p.transports["docker"]
    assert d["registry.local/apps"][0].key_path == f"{K}/carol.2.pub"
    assert d["registry.local/apps"][0].key_paths is None
    assert d["registry.local/both"][1].key_paths == (f"{K}/erin.pub", f"{K}/carol.2.pub")
    with pytest.raises(UsageError, match="only key"):
        rotate.edit_keys(_policy(), None, None, f"{K}/carol.pub")


def test_base_policy_keeps_rotated_keys_by_kind() -> None:
    p = setup.base_policy(
        {"registry.local/apps": (f"{K}/carol.pub", f"{K}/carol.2.pub", f"{K}/d.pgp")}
    )
    reqs = p.transports["docker"]["registry.local/apps"]
    assert [r.type for r in reqs] == [pol.SIGNED_BY, pol.SIGSTORE_SIGNED]
    assert reqs[1].key_paths == (f"{K}/carol.pub", f"{K}/carol.2.pub")
    assert setup.signed_scopes(p)["registry.local/apps"] == (
        f"{K}/d.pgp",
        f"{K}/carol.pub",
        f"{K}/carol.2.pub",
    )


def test_a_rotated_gpg_key_is_another_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """rotate-key's GPG key: a second key for the maker's user ID beside the first (the
    first version exported the existing key again: "rotated" to the same key); the maker's
    e-mail address then names two keys, and podsec's signers refuse it as containers/image
    does ("Error creating signature: Invalid value" from podman/skopeo --sign-by)."""
    from tests.fixtures.images import stop_gpg_agents
    from tests.fixtures.require import require_tool

    from podsec.trust import keys

    require_tool("gpg", "gpgconf")
    home = tmp_path / "g"
    home.mkdir(mode=0o700)
    uid = "mk <mk@registry.local>"
    try:
        first = keys.generate_key(home, uid, passphrase="")
        assert keys.generate_key(home, uid) == first  # create-imagemaker's re-run: the same
        second = keys.generate_key(home, uid, passphrase="", another=True)
        assert second.fingerprint != first.fingerprint
        assert [k.fingerprint for k in keys.secret_keys(home, "mk@registry.local")] == [
            first.fingerprint,
            second.fingerprint,
        ]
        # the e-mail address names both now: signing by it is refused (gpg would take the
        # old key), by fingerprint it is the one key
        with pytest.raises(UsageError, match="names 2 secret keys") as refused:
            keys.signing_key(home, "mk@registry.local")
        assert second.fingerprint in refused.value.message
        assert keys.signing_key(home, second.fingerprint) == second
        assert keys.signing_key(home, "nobody@registry.local") is None
    finally:
        assert stop_gpg_agents([home]) == []
