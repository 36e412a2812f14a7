"""check-images over real podman storages filled from the harness registry: a signed image
(verifies through the lookaside the registries.d names), an unsigned one (102), one from a
registry the policy does not know (103), for root and for a user (u7s-admin's usernetes
storage path), and a user with a broken policy.json who does not stop the others."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from tests.fixtures.images import make_podman_env, skopeo_copy
from tests.integration.test_monitor_support import run_prog

pytestmark = pytest.mark.integration


def pull_into(graph: Path, base: Path, refs: list[str], tag_as: dict[str, str]) -> None:
    env = make_podman_env(base)
    env.storage_conf.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{graph}"\nrunroot = "{env.runroot}"\n'
    )
    accept = base / "accept.json"
    accept.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    for ref in refs:
        env.run(
            "podman", "pull", "--signature-policy", str(accept), "-q", "--tls-verify=false", ref
        )
    for src, dest in tag_as.items():
        env.run("podman", "tag", src, dest)


def test_check_images_real_storages(
    registry: object,
    sigstore: object,
    gnupg_home: object,
    test_images: object,
    tmp_path: Path,
    host_root: Path,
) -> None:
    from tests.fixtures.require import require_tool

    require_tool("podman", "skopeo")
    pid = os.getpid()
    genv = {**os.environ, **gnupg_home.env}  # type: ignore[attr-defined]
    signed = f"{registry.host}/mon{pid}/alpha:1"  # type: ignore[attr-defined]
    unsigned = f"{registry.host}/mon{pid}/beta:1"  # type: ignore[attr-defined]
    skopeo_copy(
        test_images.ref("alpha"),  # type: ignore[attr-defined]
        f"docker://{signed}",
        env=genv,
        sign_by=gnupg_home.nopass.email,  # type: ignore[attr-defined]
        registries_d=sigstore.registries_d,  # type: ignore[attr-defined]
    )
    skopeo_copy(test_images.ref("beta"), f"docker://{unsigned}", env=genv)  # type: ignore[attr-defined]

    # the node's trust configuration (inside the --root tree)
    root = host_root
    (root / "etc/pki").mkdir()
    shutil.copy(gnupg_home.nopass.public_key, root / "etc/pki/nopass.pgp")  # type: ignore[attr-defined]
    policy = {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {
                registry.host: [  # type: ignore[attr-defined]
                    {"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/etc/pki/nopass.pgp"}
                ]
            }
        },
    }
    (root / "etc/containers/registries.d").mkdir(parents=True)
    (root / "etc/containers/policy.json").write_text(json.dumps(policy))
    (root / "etc/containers/registries.d/default.yaml").write_text(
        f"default-docker:\n  lookaside: {sigstore.lookaside}\n"  # type: ignore[attr-defined]
    )
    with (root / "etc/group").open("a") as fh:
        fh.write("podman:x:500:u7s-admin,carol\npodman_dev:x:501:\n")
    with (root / "etc/passwd").open("a") as fh:
        fh.write("u7s-admin:x:3901:3901::/var/lib/u7s-admin:/bin/sh\n")
        fh.write("carol:x:3902:3902::/home/carol:/bin/sh\n")

    # root's storage: signed + unsigned + one retagged as a registry outside the policy
    pull_into(
        root / "var/lib/containers/storage",
        tmp_path / "p-root",
        [f"docker://{signed}", f"docker://{unsigned}"],
        {signed: "docker.io/library/stranger:1"},
    )
    # u7s-admin's storage lives under usernetes/
    pull_into(
        root / "var/lib/u7s-admin/.local/share/usernetes/containers/storage",
        tmp_path / "p-u7s",
        [f"docker://{unsigned}"],
        {},
    )
    # carol has images but a broken policy.json
    pull_into(
        root / "home/carol/.local/share/containers/storage",
        tmp_path / "p-carol",
        [f"docker://{signed}"],
        {},
    )
    (root / "home/carol/.config/containers").mkdir(parents=True)
    (root / "home/carol/.config/containers/policy.json").write_text('{"default": []')

    r = run_prog(
        "podsec-inotify-check-images",
        "-vv",
        "-c",
        "100",
        env={"PODSEC_ROOT": str(root), "PODSEC_SYSLOG_SOCKET": "/nonexistent"},
        timeout=300,
    )
    out = r.stdout
    assert r.returncode == 2, out + r.stderr
    first = out.splitlines()[0]
    assert first.startswith("IMAGES CRITICAL: Users root, u7s-admin have images that violate")
    assert (
        "'bad_signatures'=2" in first
        and "'outside_policy'=1" in first
        and "'unsigned_registries'=0" in first
    )
    lines = out.splitlines()
    bad = [line for line in lines if unsigned in line]
    assert any(line.strip().startswith("root:") for line in bad)
    assert any(line.strip().startswith("u7s-admin:") for line in bad)
    assert not any(signed in line and "root:" in line and "[" not in line for line in lines)
    assert any("docker.io/library/stranger:1" in line for line in lines)
    assert any("carol" in line and "policy.json" in line for line in lines)  # reported, not fatal
