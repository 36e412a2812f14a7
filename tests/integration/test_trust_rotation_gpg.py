"""Rotating a GPG image maker's key without an outage, against a real docker-registry:
old key, images signed, ``users rotate-key``, new pushes signed with the new key, ``--retire``
refused (changing nothing) while an old-only signature remains, ``images resign``, retire —
and at every step every image is accepted by podsec's engine *and* pulled by Debian's skopeo
through the same policy.json and registries.d (signedBy with ``keyPaths``).

Adapted as the sigstore rotation test: the maker's scope (a path of its own: the session's
registry is shared) is moved from registry.local to this test registry's name and the
lookaside (read and staging) to the node's /var/sigstore/sigstore directory (sigstore.local
is not served here); skopeo gets the policy and registries.d with those paths prefixed by the
node tree.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from tests.fixtures.images import stop_gpg_agents
from tests.fixtures.require import require_tool
from tests.integration.test_trust_sigstore import _push, node, podsec  # noqa: F401 - fixture

from podsec.errors import UsageError
from podsec.host.paths import Host
from podsec.registry import sign
from podsec.registry.client import RegistryClient
from podsec.trust import keys, verify, view
from podsec.trust import policy as pol

pytestmark = pytest.mark.integration

NAMES = ("a", "b", "c", "d")


def test_gpg_rotation_without_an_outage(
    node: Path,  # noqa: F811
    registry,
    test_images,
    tmp_path: Path,
) -> None:
    require_tool("gpg", "gpgconf", "skopeo")
    assert podsec(node, "policy", "create", "10.20.30.40", "--registry-node").returncode == 0
    mk = f"mkg{os.getpid() % 100000}"
    path = f"gpgrot{os.getpid()}"  # the session's registry is shared: a path of its own
    r = podsec(node, "users", "create-imagemaker", f"{mk}@{path}", "--passphrase-stdin",
               "--json", stdin="p1\n")  # fmt: skip
    assert r.returncode == 0, r.stderr
    (made,) = json.loads(r.stdout)
    old_fpr = made["fingerprint"]
    scope = f"{registry.host}/{path}"
    policy_file = node / "etc/containers/policy.json"
    policy_file.write_text(
        policy_file.read_text().replace(f'"registry.local/{path}"', f'"{scope}"')
    )
    regd = node / "etc/containers/registries.d"
    lookaside = "file:///var/sigstore/sigstore/"  # as the node sees it: podsec maps it
    yaml = f"default-docker:\n  lookaside: {lookaside}\n  lookaside-staging: {lookaside}\n"
    (regd / "default.yaml").write_text(yaml)
    skopeo_regd = tmp_path / "skopeo-registries.d"
    skopeo_regd.mkdir()
    (skopeo_regd / "default.yaml").write_text(yaml.replace("file:///", f"file://{node}/"))
    host = Host(node)
    gnupg = node / f"home/{mk}/.gnupg"
    client = RegistryClient(registry.url)

    def signer(fpr: str, passphrase: str, *images: str) -> sign.SignRequest:
        return sign.SignRequest(
            images=images, sign_by=fpr, passphrase=passphrase, gnupg_home=gnupg,
            registry_url=registry.url,
        )  # fmt: skip

    def verdicts() -> dict[str, tuple[bool, bool]]:
        """(podsec, skopeo) per image in the registry: both must pull the same ones."""
        trust = view.effective(host, None)
        mapped = tmp_path / "skopeo-policy.json"
        mapped.write_text(
            policy_file.read_text().replace('"/var/sigstore/', f'"{node}/var/sigstore/')
        )
        out = {}
        for name in NAMES:
            digest = client.head_manifest(f"{path}/{name}", "1")
            if digest is None:
                continue
            image = f"{scope}/{name}:1"
            ours = verify.check_image(host, image, digest, trust.policy, trust.regd).accepted
            dest = tmp_path / f"pull-{name}"
            copy = subprocess.run(
                ["skopeo", "--policy", str(mapped), "--registries.d", str(skopeo_regd), "copy",
                 "--quiet", "--src-tls-verify=false", f"docker://{image}", f"dir:{dest}"],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            subprocess.run(["rm", "-rf", "--", str(dest)], check=False)
            out[name] = (ours, copy.returncode == 0)
        return out

    def all_pull(*names: str) -> dict[str, tuple[bool, bool]]:
        return dict.fromkeys(names, (True, True))

    try:
        for name, src in (("a", "alpha"), ("b", "beta")):
            _push(test_images, registry, f"{path}/{name}:1", src)
        done = sign.sign_images(host, signer(old_fpr, "p1", f"{scope}/a:1", f"{scope}/b:1"))
        assert all(d.accepted and d.kind == "gpg" for d in done), [d.reason for d in done]
        assert verdicts() == all_pull("a", "b")

        # 1. rotate: a new key beside the old one, both trusted; the report names the new key
        r = podsec(node, "users", "rotate-key", mk, "--passphrase-stdin", "--json", stdin="p2\n")
        assert r.returncode == 0, r.stderr
        rot = json.loads(r.stdout)
        old_key, new_key = f"/var/sigstore/keys/{mk}.pgp", f"/var/sigstore/keys/{mk}.2.pgp"
        assert (rot["kind"], rot["old"], rot["new"], rot["already"]) == (
            "gpg", old_key, new_key, False,
        )  # fmt: skip
        new_fpr = rot["sign_by"]
        assert new_fpr != old_fpr  # a new key, not the old one exported again
        assert keys.fingerprint(node / new_key.lstrip("/")) == new_fpr
        assert keys.fingerprint(node / old_key.lstrip("/")) == old_fpr
        assert {k.fingerprint for k in keys.secret_keys(gnupg, f"{mk}@registry.local")} == {
            old_fpr,
            new_fpr,
        }
        (req,) = pol.load(policy_file).transports["docker"][scope]
        assert req.key_paths == (old_key, new_key)
        assert verdicts() == all_pull("a", "b")
        again = podsec(node, "users", "rotate-key", mk, "--json")
        assert again.returncode == 0 and json.loads(again.stdout)["already"], again.stdout
        assert len(pol.load(policy_file).transports["docker"][scope][0].keys) == 2

        # the maker's e-mail address names both keys now: podsec refuses to guess (gpg would
        # sign with the old key), as podman/skopeo --sign-by refuse it
        with pytest.raises(UsageError, match="names 2 secret keys"):
            sign.sign_images(host, signer(f"{mk}@registry.local", "p2", f"{scope}/a:1"))
        # a new push signs with the new key
        _push(test_images, registry, f"{path}/c:1", "busybox")
        (c,) = sign.sign_images(host, signer(new_fpr, "p2", f"{scope}/c:1"))
        assert c.accepted, c.reason
        assert verdicts() == all_pull("a", "b", "c")

        # 2. retire refuses while a and b carry only old-key signatures, and changes nothing
        before = policy_file.read_bytes()
        r = podsec(
            node, "users", "rotate-key", mk, "--retire", f"{mk}.pgp", "--registry", registry.host
        )
        assert r.returncode != 0
        assert "would refuse 2 image(s)" in r.stderr, r.stderr
        assert f"{path}/a@" in r.stderr and f"{path}/b@" in r.stderr, r.stderr
        assert f"{path}/c@" not in r.stderr
        assert policy_file.read_bytes() == before
        assert verdicts() == all_pull("a", "b", "c")

        # 3. resign what the registry holds with the new key (c already is: nothing added)
        done = sign.resign(host, signer(new_fpr, "p2"), registry=registry.host, scopes=[scope])
        assert {d.image.rsplit("/", 1)[1]: d.added for d in done} == {
            "a:1": True,
            "b:1": True,
            "c:1": False,
        }
        assert verdicts() == all_pull("a", "b", "c")

        # 4. retire: only the new key stays, everything still pulls
        r = podsec(
            node, "users", "rotate-key", mk, "--retire", f"{mk}.pgp", "--registry", registry.host
        )
        assert r.returncode == 0, r.stderr
        (req,) = pol.load(policy_file).transports["docker"][scope]
        assert req.keys == (new_key,)
        assert (node / "var/sigstore/keys/policy.json").read_bytes() == policy_file.read_bytes()
        assert verdicts() == all_pull("a", "b", "c")

        # an image signed only by the retired key is refused now, by both
        _push(test_images, registry, f"{path}/d:1", "busybox")
        sign.sign_images(host, signer(old_fpr, "p1", f"{scope}/d:1"))
        assert verdicts()["d"] == (False, False)
    finally:
        assert stop_gpg_agents([gnupg]) == []
