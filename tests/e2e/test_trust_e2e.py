"""The whole image-trust flow with real components, under scripts/test-env (real names):

podsec writes the registry node's policy and two image makers: a GPG one (key, signedBy rule
for registry.local/<repo path>) and a sigstore one (``users create-imagemaker --sigstore``:
key pair, sigstoreSigned rule for registry.local/<other path>, use-sigstore-attachments).
The GPG maker pushes with ``podman push --sign-by`` and with podsec's Python signer; then
podman as root, podman as a rootless user and ``skopeo copy`` — all with the policy and
registries.d podsec wrote — pull the signed images, and refuse an unsigned image, another
registry, an untrusted key, a tampered signature and a signature made for another
repository, each with containers/image's reason. The sigstore maker signs with ``podsec
images sign --sigstore`` (an attachment pushed to registry.local); ``policy explain``,
``images audit`` and ``monitor check-images`` accept that image and refuse one whose
attachment's payload has one bit flipped, with containers/image's reason; Debian's skopeo and
podman refuse both ("sigstore disabled": they cannot verify sigstore signatures at all).

Every gpg-agent the fixture's signing started is stopped at its teardown, and checked gone.

Only one thing is adapted: key paths in the policy are absolute paths of the configured
system (/var/sigstore/keys/...), which lives under a --root tree here, so the copy handed to
the tools has them prefixed with that tree.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.fixtures.images import (
    gpg_agents,
    make_podman_env,
    require_real_names,
    skopeo_copy,
    stop_gpg_agents,
)

from podsec.host.paths import Host
from podsec.registry import audit, explain, sign
from podsec.registry.client import RegistryClient
from podsec.trust import attachments, keys, setup, signature, sigstore_keys, users
from podsec.trust import policy as pol
from podsec.trust import registries_d as rd
from podsec.trust import sigstore as cosign

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.rootless]

REJECTED = "Source image rejected"
SIGSTORE_PASSPHRASE = "s1gst0re"
# containers/image's reason for a payload that does not match its signature
# (signature/sigstore: "cryptographic signature verification failed: …")
TAMPERED_SIGSTORE = "cryptographic signature verification failed"
DEBIAN_SIGSTORE = "sigstore disabled"  # Debian 12's skopeo/podman: "Debian-local change: …"


def _root_tree(base: Path) -> Path:
    root = base / "root"
    (root / "etc").mkdir(parents=True)
    (root / "home").mkdir()
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n"
    )
    (root / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/gshadow").write_text("root:*::\n")
    for n in ("shadow", "gshadow"):
        (root / "etc" / n).chmod(0o600)
    for n in ("subuid", "subgid"):
        (root / "etc" / n).write_text("")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n")
    return root


def _mapped_policy(root: Path, key_dir: Path | None = None) -> str:
    """podsec's policy with key paths resolved for tools outside the --root tree."""
    data = json.loads((root / "etc/containers/policy.json").read_text())
    for scopes in data["transports"].values():
        for reqs in scopes.values():
            for r in reqs:
                if "keyPath" in r:
                    src = Path(r["keyPath"])
                    r["keyPath"] = str(
                        (key_dir / src.name) if key_dir else root / str(src).lstrip("/")
                    )
    return json.dumps(data)


class Flow:
    pass


def _podsec(
    root: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podsec.cli", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=300,
        input=input,
        env={**os.environ, "LANG": "C", **(env or {})},
    )


@pytest.fixture(scope="module")
def flow(tmp_path_factory, registry, sigstore, gnupg_home, test_images):
    require_real_names()
    from tests.fixtures.require import require_root, require_tool

    require_root()
    require_tool("podman", "skopeo", "gpg", "gpgconf", "useradd")
    base = tmp_path_factory.mktemp("e2e-trust")
    homes: list[Path] = []  # every GNUPGHOME this fixture signs with: their agents go at teardown
    try:
        yield _flow(base, homes, registry, sigstore, gnupg_home, test_images)
    finally:
        left = stop_gpg_agents(homes)
        assert not left, f"gpg-agent still running for {homes}: {left}"


def _flow(base, homes, registry, sigstore, gnupg_home, test_images):
    root = _root_tree(base)
    host = Host(root)
    f = Flow()
    f.root, f.host = root, host
    f.repo = f"e2e{os.getpid()}"
    f.maker = f"mk{os.getpid() % 100000}"
    setup.create_policy(host, registry.address, registry_node=True)
    (report,) = users.create_imagemakers(host, users.parse_maker_specs([f"{f.maker}@{f.repo}"]))
    f.fingerprint = report.fingerprint
    f.sign_by = report.sign_by
    # the sigstore maker, through the CLI, on a path of its own (a scope with makers of both
    # kinds would require both signatures)
    f.srepo, f.smaker = f"e2es{os.getpid()}", f"ms{os.getpid() % 100000}"
    r = _podsec(
        root, "users", "create-imagemaker", "--sigstore", f"{f.smaker}@{f.srepo}",
        "--passphrase-stdin", "--json", input=SIGSTORE_PASSPHRASE + "\n",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    (f.sreport,) = json.loads(r.stdout)
    f.skey = root / f"home/{f.smaker}/.config/podsec/sigstore.key"
    # publish like sigstore.local does: keys/ served by the fixture's nginx
    for k in (root / "var/sigstore/keys").iterdir():
        shutil.copy(k, sigstore.keys_dir / k.name)
    # the maker's push environment: podsec's registries.d with the staging dir mapped
    push = make_podman_env(base / "push")
    (push.config_dir / "policy.json").write_text(
        '{"default": [{"type": "insecureAcceptAnything"}]}'
    )
    regd = push.config_dir / "registries.d"
    regd.mkdir()
    maker_yaml = (root / f"home/{f.maker}/.config/containers/registries.d/default.yaml").read_text()
    (regd / "default.yaml").write_text(maker_yaml.replace(setup.STAGING, sigstore.staging))
    gnupg = root / f"home/{f.maker}/.gnupg"
    homes.append(gnupg)
    with keys.short_home(gnupg) as gh:
        assert gh is not None
        homes.append(gh)  # gone after the block: its agent is stopped inside
        try:
            push_env = _gpg_images(f, gh, push, registry, sigstore, test_images)
        finally:
            stop_gpg_agents([gh])
    # (d) signed by a key nobody trusts
    skopeo_copy(
        test_images.ref("busybox"),
        registry.ref(f"{f.repo}/untrusted:1"),
        env={**os.environ, **gnupg_home.env},
        sign_by=gnupg_home.other.email,
        registries_d=sigstore.registries_d,
    )
    # an orphaned signature dir (image deleted long ago)
    (sigstore.sigstore_dir / f"{f.repo}/gone@sha256={'f' * 64}").mkdir(parents=True)
    _sigstore_images(f, registry, test_images)
    f.push_env = push_env
    f.policy_text = _mapped_policy(root)
    return f


def _sigstore_images(f, registry, test_images):
    """The sigstore maker's images: ``signed:1`` signed with ``podsec images sign --sigstore``
    (the attachment pushed to registry.local), ``tampered:1`` whose only attachment is a
    valid signature with one bit of its payload's digest flipped."""
    skopeo_copy(test_images.ref("alpha"), registry.ref(f"{f.srepo}/signed:1"))
    (f.root.parent / "spass").write_text(SIGSTORE_PASSPHRASE + "\n")
    r = _podsec(
        f.root, "images", "sign", "--sigstore", "--key", str(f.skey),
        "--passphrase-file", str(f.root.parent / "spass"),
        f"registry.local/{f.srepo}/signed:1", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    (f.signed,) = json.loads(r.stdout)
    assert f.signed["kind"] == "sigstore" and f.signed["added"] and f.signed["accepted"], f.signed
    skopeo_copy(test_images.ref("beta"), registry.ref(f"{f.srepo}/tampered:1"))
    client = RegistryClient(registry.url)
    f.tampered_digest = client.head_manifest(f"{f.srepo}/tampered", "1")
    assert f.tampered_digest
    key = sigstore_keys.load_private(f.skey.read_bytes(), SIGSTORE_PASSPHRASE.encode())
    good = cosign.sign_image(key, f"registry.local/{f.srepo}/tampered:1", f.tampered_digest)
    flipped = bytearray(good.payload)
    flipped[flipped.index(b"sha256:") + 7] ^= 1  # one bit of the signed digest
    forged = cosign.Sigstore(good.mime_type, bytes(flipped), good.annotations)
    assert sign.push_sigstore(client, f"{f.srepo}/tampered", f.tampered_digest, [forged])


def _gpg_images(f, gh, push, registry, sigstore, test_images):
    """The GPG maker's images (a)-(h) but (d), signed with the key in ``gh``; returns
    the push environment."""
    env = {**push.env, "GNUPGHOME": str(gh)}
    # (a) podman push --sign-by, the production path
    image_id = subprocess.run(
        ["podman", "pull", "-q", test_images.ref("alpha")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    r = subprocess.run(
        [
            "podman",
            "push",
            "--sign-by",
            f.sign_by,
            image_id,
            f"registry.local/{f.repo}/alpha:1",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    # (b) podsec's Python signer
    skopeo_copy(test_images.ref("beta"), registry.ref(f"{f.repo}/beta:1"), env=env)
    client = RegistryClient(registry.url)
    f.beta_digest = client.head_manifest(f"{f.repo}/beta", "1")
    sig = signature.sign(
        signature.make_payload(f"registry.local/{f.repo}/beta:1", f.beta_digest), f.sign_by, gh
    )
    signature.store_signature(sigstore.sigstore_dir, f"{f.repo}/beta", f.beta_digest, sig)
    # (c) unsigned
    skopeo_copy(test_images.ref("busybox"), registry.ref(f"{f.repo}/unsigned:1"), env=env)
    # (e) tampered: a valid maker signature with one bit flipped
    skopeo_copy(test_images.ref("busybox"), registry.ref(f"{f.repo}/tampered:1"), env=env)
    bb = client.head_manifest(f"{f.repo}/tampered", "1")
    good = signature.sign(
        signature.make_payload(f"registry.local/{f.repo}/tampered:1", bb), f.sign_by, gh
    )
    bad = bytearray(good)
    bad[-1] ^= (
        0x01  # the last byte of the signature value (len-20 sometimes hit a packet header: "No data")
    )
    signature.store_signature(sigstore.sigstore_dir, f"{f.repo}/tampered", bb, bytes(bad))
    # (f) a valid signature copied to another repository
    skopeo_copy(test_images.ref("beta"), registry.ref(f"{f.repo}/otherrepo:1"), env=env)
    signature.store_signature(sigstore.sigstore_dir, f"{f.repo}/otherrepo", f.beta_digest, sig)
    # (g) one digest under two tags, only retag:2 signed (issue 14)
    skopeo_copy(test_images.ref("alpha"), registry.ref(f"{f.repo}/retag:1"), env=env)
    skopeo_copy(test_images.ref("alpha"), registry.ref(f"{f.repo}/retag:2"), env=env)
    f.retag_digest = client.head_manifest(f"{f.repo}/retag", "1")
    assert f.retag_digest and f.retag_digest == client.head_manifest(f"{f.repo}/retag", "2")
    retag = signature.sign(
        signature.make_payload(f"registry.local/{f.repo}/retag:2", f.retag_digest),
        f.sign_by,
        gh,
    )
    signature.store_signature(sigstore.sigstore_dir, f"{f.repo}/retag", f.retag_digest, retag)
    # (h) a payload whose docker-reference is duplicated (the last one names the image)
    skopeo_copy(test_images.ref("beta"), registry.ref(f"{f.repo}/dup:1"), env=env)
    dup_payload = signature.make_payload(f"registry.local/{f.repo}/dup:1", f.beta_digest)
    dup_payload = dup_payload.replace(
        b'"docker-reference":',
        f'"docker-reference":"registry.local/{f.repo}/dup:9","docker-reference":'.encode(),
    )
    dup = signature.sign(dup_payload, f.sign_by, gh)
    signature.store_signature(sigstore.sigstore_dir, f"{f.repo}/dup", f.beta_digest, dup)
    return env


REFUSALS = [
    ("unsigned:1", "A signature was required, but no signature exists"),
    ("untrusted:1", "Invalid GPG signature"),
    # "Invalid GPG signature" (RSA) / "Unexpected GPG signature count 0" (ed25519) / gpgme's
    # "No data" when the flipped signature no longer parses (varies with the random key)
    ("tampered:1", "GPG signature|No data"),
    ("otherrepo:1", "is not accepted"),
]


def _says(reason, text):
    """``reason`` (alternatives separated by |) appears in ``text``."""
    return any(alt in text for alt in reason.split("|"))


def _skopeo(flow, ref, tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(flow.policy_text)
    return subprocess.run(
        [
            "skopeo",
            "--policy",
            str(policy),
            "--registries.d",
            str(flow.root / "etc/containers/registries.d"),
            "copy",
            "--src-tls-verify=false",
            f"docker://{ref}",
            f"dir:{tmp_path / 'out'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_podsec_policy_files_are_what_tools_read(flow):
    p = pol.load(flow.root / "etc/containers/policy.json")
    assert (
        p.transports["docker"][f"registry.local/{flow.repo}"][0].key_path
        == f"/var/sigstore/keys/{flow.maker}.pgp"
    )
    assert (
        "lookaside: http://sigstore.local:81/sigstore/"
        in (flow.root / "etc/containers/registries.d/default.yaml").read_text()
    )


@pytest.mark.parametrize("name", ["alpha:1", "beta:1"])
def test_skopeo_accepts_signed(flow, tmp_path, name):
    r = _skopeo(flow, f"registry.local/{flow.repo}/{name}", tmp_path)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(("name", "reason"), REFUSALS)
def test_skopeo_refuses(flow, tmp_path, name, reason):
    r = _skopeo(flow, f"registry.local/{flow.repo}/{name}", tmp_path)
    assert r.returncode != 0
    assert REJECTED in r.stderr and _says(reason, r.stderr), r.stderr


def test_skopeo_refuses_other_registry(flow, registry, tmp_path):
    r = _skopeo(flow, f"{registry.address}/{flow.repo}/beta:1", tmp_path)
    assert REJECTED in r.stderr and "is rejected by policy" in r.stderr, r.stderr


def test_podman_root(flow, registry, tmp_path):
    env = make_podman_env(tmp_path / "root-pull", insecure=("registry.local", registry.address))
    (env.config_dir / "policy.json").write_text(flow.policy_text)
    shutil.copytree(flow.root / "etc/containers/registries.d", env.config_dir / "registries.d")
    for name in ("alpha:1", "beta:1"):
        env.run("podman", "pull", f"registry.local/{flow.repo}/{name}")
    out = env.run("podman", "run", "--rm", "--network=none", f"registry.local/{flow.repo}/alpha:1")
    assert "hello from alpha" in out.stdout
    for name, reason in [*REFUSALS, ("@other", "is rejected by policy")]:
        ref = (
            f"{registry.address}/{flow.repo}/beta:1"
            if name == "@other"
            else f"registry.local/{flow.repo}/{name}"
        )
        r = env.run("podman", "pull", ref, check=False)
        assert r.returncode != 0 and _says(reason, r.stderr), (name, r.stderr)


def _agreement_images(flow):
    """Every image of this flow, by tag and by digest."""
    names = [
        "alpha:1",
        "beta:1",
        *[name for name, _reason in REFUSALS],
        "retag:1",
        "retag:2",
        f"retag@{flow.retag_digest}",
        "dup:1",
        f"beta@{flow.beta_digest}",
        f"otherrepo@{flow.beta_digest}",
    ]
    return [f"registry.local/{flow.repo}/{n}" for n in names]


def test_skopeo_and_podman_agree_with_podsec(flow, registry, tmp_path):
    """Same policy, same signatures: containers/image (skopeo, podman) and podsec's engine
    give the same verdict on every image of the flow."""
    env = make_podman_env(tmp_path / "agree", insecure=("registry.local", registry.address))
    (env.config_dir / "policy.json").write_text(flow.policy_text)
    shutil.copytree(flow.root / "etc/containers/registries.d", env.config_dir / "registries.d")
    table = []
    for n, ref in enumerate(_agreement_images(flow)):
        (tmp_path / f"s{n}").mkdir()
        skopeo = _skopeo(flow, ref, tmp_path / f"s{n}").returncode == 0
        podman = env.run("podman", "pull", ref, check=False).returncode == 0
        podsec = explain.explain(flow.host, ref, None).verdict
        table.append((ref, skopeo, podman, podsec.accepted, podsec.reason))
    print("\n".join(f"{r}: skopeo={s} podman={p} podsec={q} ({why})" for r, s, p, q, why in table))
    disagree = [row for row in table if not row[1] == row[2] == row[3]]
    assert not disagree, disagree
    verdicts = {ref.rsplit("/", 1)[1]: q for ref, _s, _p, q, _w in table}
    # the cases issue 14 is about, as containers/image decides them
    assert (
        verdicts["retag:2"] and not verdicts["retag:1"] and verdicts[f"retag@{flow.retag_digest}"]
    )
    assert not verdicts["dup:1"]


def test_podman_rootless(flow, rootless_user):
    u = rootless_user
    cfg = u.home / ".config/containers"
    u.run("mkdir", "-p", str(cfg / "registries.d"), str(u.home / "keys"))
    for k in (flow.root / "var/sigstore/keys").glob("*.pgp"):
        u.run("sh", "-c", f"cat > {u.home}/keys/{k.name}", input=k.read_text())
    u.run("sh", "-c", f"cat > {cfg}/policy.json", input=_mapped_policy(flow.root, u.home / "keys"))
    u.run(
        "sh",
        "-c",
        f"cat > {cfg}/registries.d/default.yaml",
        input=(flow.root / "etc/containers/registries.d/default.yaml").read_text(),
    )
    u.run(
        "sh",
        "-c",
        f"cat > {cfg}/registries.conf",
        input='[[registry]]\nlocation = "registry.local"\ninsecure = true\n',
    )
    env_conf = ["env", f"CONTAINERS_REGISTRIES_CONF={cfg}/registries.conf"]
    u.run(*env_conf, "podman", "pull", f"registry.local/{flow.repo}/alpha:1")
    out = u.run(
        *env_conf, "podman", "run", "--rm", "--network=none", f"registry.local/{flow.repo}/alpha:1"
    )
    assert "hello from alpha" in out.stdout
    u.run(*env_conf, "podman", "pull", f"registry.local/{flow.repo}/beta:1")
    for name, reason in REFUSALS:
        r = u.run(*env_conf, "podman", "pull", f"registry.local/{flow.repo}/{name}", check=False)
        assert r.returncode != 0 and _says(reason, r.stderr), (name, r.stderr)


def test_explain(flow):
    e = explain.explain(flow.host, f"registry.local/{flow.repo}/alpha:1", None)
    v = e.verdict
    assert v.accepted, v.reason
    assert e.policy_file == "/etc/containers/policy.json" and e.transport == "docker"
    assert v.scope == f"registry.local/{flow.repo}"
    assert v.keys == (f"/var/sigstore/keys/{flow.maker}.pgp",)
    assert v.lookaside_url.startswith(
        # containers/image appends "/" + folder to the base: a double slash (what skopeo reads)
        f"http://sigstore.local:81/sigstore//{flow.repo}/alpha@sha256="
    )
    assert v.signatures[0].fingerprint == flow.fingerprint
    # a refusal names the signature's own claims, read without verifying it
    v = explain.explain(flow.host, f"registry.local/{flow.repo}/retag:1", None).verdict
    (check,) = v.signatures
    assert not check.ok and check.claims is not None
    assert check.claims.docker_reference == f"registry.local/{flow.repo}/retag:2"
    assert check.claims.manifest_digest == flow.retag_digest
    assert check.claims.key_id == flow.fingerprint
    for name, reason in REFUSALS:
        v = explain.explain(flow.host, f"registry.local/{flow.repo}/{name}", None).verdict
        assert not v.accepted
        assert reason.split(" GPG")[0] in v.reason or "GPG signature" in v.reason, (name, v.reason)
    v = explain.explain(flow.host, "docker.io/library/busybox:latest", None).verdict
    assert v.scope == pol.DEFAULT_SCOPE and not v.accepted
    # the system policy accepts only containers-storage beside docker (issue 16)
    v = explain.explain(flow.host, "oci:/srv/x:y", None).verdict
    assert not v.accepted and "rejected by policy" in v.reason
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "podsec.cli",
            "--root",
            str(flow.root),
            "policy",
            "explain",
            f"registry.local/{flow.repo}/unsigned:1",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    assert json.loads(r.stdout)["reason"] == "A signature was required, but no signature exists"
    # --user: the maker has their own registries.d but no policy of their own
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "podsec.cli",
            "--root",
            str(flow.root),
            "policy",
            "explain",
            f"registry.local/{flow.repo}/alpha:1",
            "--user",
            flow.maker,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    data = json.loads(r.stdout)
    assert r.returncode == 0 and data["accepted"], r.stderr
    # image makers have a policy of their own (issue 16: unrestricted but for registry.local)
    assert data["policy_file"] == f"/home/{flow.maker}/.config/containers/policy.json"
    assert data["registries_d"] == f"/home/{flow.maker}/.config/containers/registries.d"


def test_audit(flow, sigstore):
    rep = audit.audit(flow.host, registry="registry.local", signatures_dir=sigstore.sigstore_dir)
    mine = {
        i.repository.split("/", 1)[1]: i
        for i in rep.items
        if i.repository.startswith(flow.repo + "/")
    }
    assert mine["alpha"].status == audit.OK and mine["alpha"].signer == flow.fingerprint
    assert mine["beta"].status == audit.OK
    assert mine["unsigned"].status == audit.UNSIGNED
    assert mine["untrusted"].status == audit.BAD
    assert mine["tampered"].status == audit.BAD
    assert mine["otherrepo"].status == audit.BAD and "is not accepted" in mine["otherrepo"].reason
    assert f"{flow.repo}/gone@sha256={'f' * 64}" in rep.orphans
    assert rep.findings >= 5


def _cli(flow, *args):
    return subprocess.run(
        [sys.executable, "-m", "podsec.cli", "--root", str(flow.root), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LANG": "C"},
    )


def test_cli_show_audit_status(flow, registry, sigstore):
    r = _cli(flow, "policy", "show", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["policy_file"] == "/etc/containers/policy.json"
    assert f"registry.local/{flow.repo}" in data["signed_registries"]
    assert data["default_lookaside"] == "http://sigstore.local:81/sigstore/"
    r = _cli(flow, "images", "audit", "--json")
    assert r.returncode == 1, r.stderr
    rep = json.loads(r.stdout)
    statuses = {i["repository"]: i["status"] for i in rep["items"]}
    assert statuses[f"{flow.repo}/alpha"] == "ok"
    assert statuses[f"{flow.repo}/unsigned"] == "unsigned"
    assert rep["findings"] >= 4
    r = _cli(flow, "services", "status", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert all(s["answering"] for s in json.loads(r.stdout))


# ------------------------------------------------------------------ the sigstore way
def _sref(flow, name):
    return f"registry.local/{flow.srepo}/{name}"


def test_sigstore_maker_files(flow, registry):
    """create-imagemaker --sigstore wrote what containers/image reads: a sigstoreSigned rule
    with the published key, attachments on for that scope only."""
    p = pol.load(flow.root / "etc/containers/policy.json")
    (req,) = p.transports["docker"][f"registry.local/{flow.srepo}"]
    assert (req.type, req.key_path) == ("sigstoreSigned", f"/var/sigstore/keys/{flow.smaker}.pub")
    assert flow.sreport["fingerprint"].startswith("sha256:")
    system = rd.load_dir(flow.root / "etc/containers/registries.d")
    assert rd.use_sigstore_attachments(system, _sref(flow, "signed:1"))
    assert not rd.use_sigstore_attachments(system, f"registry.local/{flow.repo}/alpha:1")
    tags = RegistryClient(registry.url).tags(f"{flow.srepo}/signed")
    assert attachments.tag_for(flow.signed["digest"]) in (tags or [])


def test_sigstore_explain(flow):
    r = _cli(flow, "policy", "explain", _sref(flow, "signed:1"), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(r.stdout)
    assert data["accepted"] and data["scope"] == f"registry.local/{flow.srepo}", data
    assert data["sigstore_attachments"] == (
        f"registry.local/{flow.srepo}/signed:{attachments.tag_for(flow.signed['digest'])}"
    )
    r = _cli(flow, "policy", "explain", _sref(flow, "tampered:1"), "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    data = json.loads(r.stdout)
    assert not data["accepted"] and TAMPERED_SIGSTORE in data["reason"], data


def test_sigstore_audit(flow, sigstore):
    rep = audit.audit(flow.host, registry="registry.local", signatures_dir=sigstore.sigstore_dir)
    mine = {
        i.repository.split("/", 1)[1]: i
        for i in rep.items
        if i.repository.startswith(flow.srepo + "/")
    }
    # the attachment tags (sha256-….sig) are not images of their own
    assert set(mine) == {"signed", "tampered"}, mine
    assert mine["signed"].status == audit.OK, mine["signed"].reason
    assert mine["tampered"].status == audit.BAD
    assert TAMPERED_SIGSTORE in mine["tampered"].reason
    r = _cli(flow, "images", "audit", "--json")
    statuses = {i["repository"]: i["status"] for i in json.loads(r.stdout)["items"]}
    assert statuses[f"{flow.srepo}/signed"] == "ok"
    assert statuses[f"{flow.srepo}/tampered"] == "bad-signature"


def test_sigstore_check_images(flow, tmp_path):
    """The check-images plugin over root's real podman storage in the node tree: the signed
    image complies, the tampered one is a 102 with containers/image's reason."""
    from tests.integration.test_monitor_images import pull_into

    pull_into(
        flow.root / "var/lib/containers/storage",
        tmp_path / "pull",
        [f"docker://{_sref(flow, 'signed:1')}", f"docker://{_sref(flow, 'tampered:1')}"],
        {},
    )
    r = _podsec(
        flow.root, "monitor", "check-images", "-vv", "-c", "100",
        env={"PODSEC_SYSLOG_SOCKET": "/nonexistent"},
    )  # fmt: skip
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout.startswith("IMAGES CRITICAL"), r.stdout
    lines = r.stdout.splitlines()
    start = lines.index("[102] users have unsigned images:") + 1
    bad = list(itertools.takewhile(lambda line: line.startswith("  "), lines[start:]))
    assert len(bad) == 1, r.stdout
    assert _sref(flow, "tampered:1") in bad[0] and TAMPERED_SIGSTORE in bad[0], r.stdout
    assert _sref(flow, "signed:1") not in r.stdout


def test_debian_tools_refuse_sigstore(flow, registry, tmp_path):
    """Debian 12's skopeo and podman cannot verify sigstore signatures: they refuse the
    signed image and the tampered one alike, with Debian's reason (podsec accepts the first:
    on a Debian node the containerd admission webhook is what enforces these)."""
    env = make_podman_env(tmp_path / "deb", insecure=("registry.local", registry.address))
    (env.config_dir / "policy.json").write_text(flow.policy_text)
    shutil.copytree(flow.root / "etc/containers/registries.d", env.config_dir / "registries.d")
    for n, name in enumerate(("signed:1", "tampered:1")):
        (tmp_path / f"s{n}").mkdir()
        s = _skopeo(flow, _sref(flow, name), tmp_path / f"s{n}")
        assert s.returncode != 0 and DEBIAN_SIGSTORE in s.stderr, s.stderr
        p = env.run("podman", "pull", _sref(flow, name), check=False)
        assert p.returncode != 0 and DEBIAN_SIGSTORE in p.stderr, p.stderr
    assert explain.explain(flow.host, _sref(flow, "signed:1"), None).verdict.accepted


def test_fixture_gpg_agents_are_counted(flow):
    """The teardown's check can see an agent: one runs for the GPG maker's home after a
    signature made there (stopped again here, and at teardown)."""
    gnupg = flow.root / f"home/{flow.maker}/.gnupg"
    with keys.short_home(gnupg) as gh:
        signature.sign(b"{}", flow.sign_by, gh)
        assert gpg_agents([gh]), "no gpg-agent seen for the home just used"
        assert stop_gpg_agents([gh]) == []
