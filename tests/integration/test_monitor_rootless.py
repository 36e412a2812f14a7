"""check-images and watch-containers on the live system for a real rootless user: the
user's own policy.json and registries.d, images pulled by the user into their rootless
storage (files owned by their subordinate ids), read by the root plugin; an image without
a signature is reported for that user, the signed one is not."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from tests.fixtures.images import skopeo_copy
from tests.integration.test_monitor_support import run_prog

pytestmark = [pytest.mark.integration, pytest.mark.rootless]


def test_rootless_user_images_checked_by_root(
    registry: object,
    sigstore: object,
    gnupg_home: object,
    test_images: object,
    rootless_user: object,
) -> None:
    user = rootless_user
    pid = os.getpid()
    genv = {**os.environ, **gnupg_home.env}  # type: ignore[attr-defined]
    signed = f"{registry.host}/monrl{pid}/alpha:1"  # type: ignore[attr-defined]
    unsigned = f"{registry.host}/monrl{pid}/beta:1"  # type: ignore[attr-defined]
    skopeo_copy(
        test_images.ref("alpha"),  # type: ignore[attr-defined]
        f"docker://{signed}",
        env=genv,
        sign_by=gnupg_home.nopass.email,  # type: ignore[attr-defined]
        registries_d=sigstore.registries_d,  # type: ignore[attr-defined]
    )
    skopeo_copy(test_images.ref("beta"), f"docker://{unsigned}", env=genv)  # type: ignore[attr-defined]

    home: Path = user.home  # type: ignore[attr-defined]
    conf = home / ".config/containers"
    (conf / "registries.d").mkdir(parents=True, exist_ok=True)
    key = home / "nopass.pgp"
    shutil.copy(gnupg_home.nopass.public_key, key)  # type: ignore[attr-defined]
    policy = {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {
                registry.host: [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(key)}]  # type: ignore[attr-defined]
            }
        },
    }
    (conf / "policy.json").write_text(json.dumps(policy))
    (conf / "registries.d/default.yaml").write_text(
        f"default-docker:\n  lookaside: {sigstore.lookaside}\n"  # type: ignore[attr-defined]
    )
    accept = home / "accept.json"
    accept.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    for p in (
        home / ".config",
        conf,
        conf / "registries.d",
        conf / "policy.json",
        conf / "registries.d/default.yaml",
        key,
        accept,
    ):
        os.chown(p, user.uid, user.gid)  # type: ignore[attr-defined]
    # the signed image passes the user's own policy; the unsigned one needs an override
    user.run("podman", "pull", "-q", "--tls-verify=false", f"docker://{signed}", timeout=300)  # type: ignore[attr-defined]
    user.run(  # type: ignore[attr-defined]
        "podman", "pull", "-q", "--tls-verify=false", "--signature-policy", str(accept),
        f"docker://{unsigned}", timeout=300,
    )  # fmt: skip
    # rootless podman here may use the vfs driver (vfs-images/...): both layouts are read
    storage = home / ".local/share/containers/storage"
    assert any(storage.glob("*-images/images.json"))

    r = run_prog(
        "podsec-inotify-check-images",
        "-vv",
        "-c",
        "100",
        env={"PODSEC_SYSLOG_SOCKET": "/nonexistent"},
        timeout=600,
    )
    name = user.name  # type: ignore[attr-defined]
    lines = r.stdout.splitlines()
    assert r.returncode == 2, r.stdout + r.stderr
    assert any(line.strip().startswith(f"{name}: {unsigned}") for line in lines), r.stdout
    assert not any(line.strip().startswith(f"{name}: {signed}") for line in lines), r.stdout
