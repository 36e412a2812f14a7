"""Sign-on-push helpers with the real skopeo and podman: signatures land in the staging dir,
verify in Python, and a wrong passphrase or unknown key is a one-line error."""

from __future__ import annotations

import pytest

from podsec.errors import PodsecError
from podsec.registry.client import RegistryClient
from podsec.trust import push, signature

pytestmark = pytest.mark.integration


def test_skopeo_copy_signed_with_passphrase(registry, sigstore, gnupg_home, test_images, tmp_path):
    accept = tmp_path / "policy.json"  # never the machine's /etc/containers/policy.json
    accept.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    dest = registry.ref("pushtest/skopeo:1")
    push.skopeo_copy_signed(
        test_images.ref("alpha"),
        dest,
        sign_by=gnupg_home.withpass.email,
        gnupg_home=gnupg_home.path,
        passphrase=gnupg_home.withpass.passphrase,
        registries_d=sigstore.registries_d,
        policy=accept,
    )
    digest = RegistryClient(registry.url).head_manifest("pushtest/skopeo", "1")
    (sig,) = signature.fetch_signatures(sigstore.staging, "pushtest/skopeo", digest)
    v = signature.verify(sig, [gnupg_home.withpass.public_key])
    assert v.manifest_digest == digest
    assert v.docker_reference == f"{registry.host}/pushtest/skopeo:1"
    with pytest.raises(PodsecError, match=r"signing with withpass@podsec\.test failed"):
        push.skopeo_copy_signed(
            test_images.ref("beta"),
            registry.ref("pushtest/skopeo-bad:1"),
            sign_by=gnupg_home.withpass.email,
            gnupg_home=gnupg_home.path,
            passphrase="wrong",
            registries_d=sigstore.registries_d,
            policy=accept,
        )
    with pytest.raises(PodsecError, match=r"nobody@podsec\.test"):
        push.skopeo_copy_signed(
            test_images.ref("beta"),
            registry.ref("pushtest/skopeo-bad:1"),
            sign_by="nobody@podsec.test",
            gnupg_home=gnupg_home.path,
            registries_d=sigstore.registries_d,
            policy=accept,
        )


def test_podman_push_signed(registry, sigstore, gnupg_home, test_images, podman_env):
    (podman_env.config_dir / "policy.json").write_text(
        '{"default": [{"type": "insecureAcceptAnything"}]}'
    )
    regd = podman_env.config_dir / "registries.d"
    regd.mkdir()
    (regd / "default.yaml").write_text(
        f"default-docker:\n  lookaside: {sigstore.lookaside}\n  lookaside-staging: {sigstore.staging}\n"
    )
    iid = podman_env.run("podman", "pull", "-q", test_images.ref("beta")).stdout.strip()
    push.podman_push_signed(
        iid,
        f"{registry.host}/pushtest/podman:1",
        sign_by=gnupg_home.nopass.email,
        gnupg_home=gnupg_home.path,
        env=podman_env.env,
        tls_verify=False,
    )
    digest = RegistryClient(registry.url).head_manifest("pushtest/podman", "1")
    (sig,) = signature.fetch_signatures(sigstore.lookaside, "pushtest/podman", digest)
    assert signature.verify(sig, [gnupg_home.nopass.public_key]).manifest_digest == digest
