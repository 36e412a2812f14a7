"""An image maker's own policy, enforced by the real podman of a real rootless user (issue 16).

`users create-imagemaker` gives the maker ~/.config/containers/policy.json: unrestricted (the
seed's makers pull, tag and build from third-party images) except that registry.local is still
accepted only signed by the makers' keys. Until now the file was only read back; here the
files podsec wrote in a --root tree are handed to a live rootless account (tests/fixtures
rootless_user, in the run's own namespace) and podman decides:

- a third-party image (the same registry under another name: its address) — pulled by the maker,
  refused under the system policy an image user gets;
- an unsigned image in registry.local — refused for the maker too;
- an image in registry.local signed with the maker's own key (made by podsec) — pulled.

Needs the run's real names (scripts/test-env: registry.local resolves to the fixture).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from tests.fixtures.images import skopeo_copy
from tests.fixtures.require import missing
from tests.integration.test_seed_node import node, podsec

pytestmark = pytest.mark.integration
FIXTURES = (node,)
KEYS = "/var/sigstore/keys/"
# a repository path of its own: the session's registry is shared, and the rotation tests
# re-sign everything under registry.local/apps
SCOPE = "makerpull"


def _own(user: object, *paths: Path) -> None:
    for p in paths:
        os.chown(p, user.uid, user.gid)  # type: ignore[attr-defined]


def _forget_home(path: Path) -> None:
    subprocess.run(["gpgconf", "--homedir", str(path / "g"), "--kill", "all"], check=False,
                   capture_output=True, timeout=30)  # fmt: skip
    shutil.rmtree(path, ignore_errors=True)


def _pull(user: object, image: str) -> tuple[bool, str]:
    r = user.run(  # type: ignore[attr-defined]
        "podman", "pull", "-q", "--tls-verify=false", f"docker://{image}", timeout=300, check=False
    )
    return r.returncode == 0, r.stderr


def test_maker_policy_under_real_podman(
    node: Path, registry, sigstore, test_images, rootless_user, request
) -> None:
    if not registry.real_names:
        missing("registry.local must resolve to the test registry (scripts/test-env)")
    root, user = node, rootless_user
    maker = f"mk{os.getpid() % 100000}"
    assert podsec(root, "policy", "create", "10.20.30.40", "--registry-node").returncode == 0
    r = podsec(root, "users", "create-imagemaker", f"{maker}@{SCOPE}")
    assert r.returncode == 0, r.stderr

    # the maker signs with the key podsec made for it (lookaside: the fixture's nginx); a copy
    # of its GnuPG home on a short path: gpg-agent's socket path must fit in 108 bytes
    short = Path(tempfile.mkdtemp(prefix="mkg-"))
    request.addfinalizer(lambda: _forget_home(short))
    shutil.copytree(root / f"home/{maker}/.gnupg", short / "g")
    gnupg = {**os.environ, "GNUPGHOME": str(short / "g")}
    pid = os.getpid()
    signed = f"registry.local/{SCOPE}/alpha{pid}:1"
    unsigned = f"registry.local/{SCOPE}/beta{pid}:1"
    third = f"{registry.address}:{registry.port}/third{pid}/beta:1"  # not registry.local
    sign = skopeo_copy(
        test_images.ref("alpha"),
        f"docker://{signed}",
        env=gnupg,
        sign_by=f"{maker}@registry.local",
        registries_d=sigstore.registries_d,
        check=False,
    )
    assert sign.returncode == 0, sign.stderr
    skopeo_copy(test_images.ref("beta"), f"docker://{unsigned}")
    skopeo_copy(test_images.ref("beta"), f"docker://{third}")

    # the trust files podsec wrote, where podman looks for them in the live account: key
    # paths from the tree's /var/sigstore/keys, the lookaside served by the fixture
    home = user.home
    conf = home / ".config/containers"
    (conf / "registries.d").mkdir(parents=True)
    keys = home / "keys"  # readable by the account (pytest's tmp directories are not)
    shutil.copytree(root / KEYS.strip("/"), keys)
    _own(user, keys, *keys.iterdir())
    (conf / "registries.d/default.yaml").write_text(
        f"default-docker:\n  lookaside: {sigstore.lookaside}\n"
    )
    maker_policy = (root / f"home/{maker}/.config/containers/policy.json").read_text()
    system_policy = (root / "etc/containers/policy.json").read_text()
    assert KEYS in maker_policy
    _own(user, home / ".config", conf, conf / "registries.d", conf / "registries.d/default.yaml")

    def as_policy(text: str) -> None:
        (conf / "policy.json").write_text(text.replace(KEYS, f"{keys}/"))
        _own(user, conf / "policy.json")

    as_policy(maker_policy)
    ok, err = _pull(user, third)
    assert ok, f"the maker may pull a third-party image: {err}"
    ok, err = _pull(user, unsigned)
    assert not ok and "Source image rejected" in err, err
    ok, err = _pull(user, signed)
    assert ok, f"the maker's own signature is accepted: {err}"

    # the same account under the system policy (what an image user gets): the third-party
    # image is refused, the signed one still pulls
    user.run("podman", "rmi", "-a", "-f", timeout=120, check=False)  # type: ignore[attr-defined]
    as_policy(system_policy)
    ok, err = _pull(user, third)
    assert not ok and "Source image rejected" in err, err
    ok, err = _pull(user, signed)
    assert ok, err
