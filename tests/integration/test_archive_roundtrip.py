"""save → load-sign → podman pull with real skopeo, docker-registry, nginx (lookaside), gpg.

Also the bad-input cases of issue 5: corrupt and truncated archives, wrong arch, missing
signer key, registry gone mid-load, full disk — each must fail with one clear line, exit
non-zero, leave no unsigned image in the registry, and a re-run must complete the job.
"""

from __future__ import annotations

import contextlib
import json
import lzma
import os
import socket
import subprocess
import tarfile
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.fixtures import kill_points
from tests.fixtures.images import (
    GnupgHome,
    PodmanEnv,
    Registry,
    Sigstore,
    _umount_under,
    build_oci_layout,
    make_podman_env,
)
from tests.fixtures.require import free_port, require_root

from podsec.trust import policy as policy_mod

pytestmark = pytest.mark.integration

PODSEC = [str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "podsec")]
NAMES = ("p10/busybox", "p10/alpha", "p10/beta")


@dataclass(frozen=True)
class Setup:
    registry: Registry
    sigstore: Sigstore
    gpg: GnupgHome
    env: PodmanEnv
    archive: Path
    path: str  # REGISTRY/PATH target of this test
    digests: dict[str, str]

    def podsec(
        self, *args: str, check: bool = False, **env: str
    ) -> subprocess.CompletedProcess[str]:
        if args[:2] in (("images", "load-sign"), ("images", "load")):
            # verify against this test's policy, not the machine's /etc/containers
            args = (*args, "--policy", str(self.env.config_dir / "policy.json"))
        result = subprocess.run(
            [*PODSEC, *args],
            env={**self.env.env, **self.gpg.env, **env},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def load_sign(
        self,
        archive: Path,
        *extra: str,
        arch: str = "amd64",
        signer: str | None = None,
        url: str | None = None,
        registry: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """`podsec images load-sign ARCHIVE ARCH SIGNER PATH [--registry-url URL] EXTRA…`,
        signed by the passphrase-less key unless ``signer`` is given."""
        signer = signer or self.gpg.nopass.email
        args = ["images", "load-sign", str(archive), arch, signer, self.path]
        if registry:
            args += ["--registry-url", url or self.registry.url]
        return self.podsec(*args, *extra)

    def load(self, *extra: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.load_sign(self.archive, "--json", *extra, url=url)

    def head(self, name: str) -> str | None:
        repo = f"{self.path.split('/', 1)[1]}/{name}"
        req = urllib.request.Request(
            f"{self.registry.url}/v2/{repo}/manifests/1",
            method="HEAD",
            headers={
                "Accept": "application/vnd.oci.image.manifest.v1+json, "
                "application/vnd.docker.distribution.manifest.v2+json"
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.headers["Docker-Content-Digest"]
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
            return None

    def signature_dir(self, name: str, digest: str) -> Path:
        repo = f"{self.path.split('/', 1)[1]}/{name}"
        return self.sigstore.sigstore_dir / f"{repo}@sha256={digest.split(':')[1]}"

    def pull(self, name: str) -> subprocess.CompletedProcess[str]:
        return self.env.run(
            "podman", "pull", "--tls-verify=false", f"{self.path}/{name}:1", check=False
        )


def _policy(env: PodmanEnv, sigstore: Sigstore, scope: str, key: Path) -> None:
    policy = {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {scope: [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(key)}]},
            "containers-storage": {"": [{"type": "insecureAcceptAnything"}]},
            "oci": {"": [{"type": "insecureAcceptAnything"}]},
            "dir": {"": [{"type": "insecureAcceptAnything"}]},
        },
    }
    (env.config_dir / "policy.json").write_text(json.dumps(policy, indent=4))
    regd = env.config_dir / "registries.d"
    regd.mkdir(exist_ok=True)
    (regd / "default.yaml").write_text((sigstore.registries_d / "default.yaml").read_text())


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("archive-src") / "oci"
    digests = build_oci_layout(path, NAMES)
    return path, digests


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, layout: tuple[Path, dict[str, str]]) -> Path:
    """One archive of the three images, made by the real CLI."""
    src, _digests = layout
    out = tmp_path_factory.mktemp("archive-out") / "oci"
    result = subprocess.run(
        [
            *PODSEC,
            "images",
            "save",
            str(out),
            "amd64",
            f"oci:{src}",
            *[f"{n}:1" for n in NAMES],
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return out / "amd64.tar.xz"


_counter = iter(range(1000))


@pytest.fixture
def setup(
    tmp_path: Path,
    registry: Registry,
    sigstore: Sigstore,
    gnupg_home: GnupgHome,
    saved: Path,
    layout: tuple[Path, dict[str, str]],
) -> Iterator[Setup]:
    path = f"{registry.host}/arch{os.getpid()}-{next(_counter)}"
    base = tmp_path / "penv"
    base.mkdir()
    env = make_podman_env(base, insecure=(registry.host,))
    _policy(env, sigstore, path, gnupg_home.nopass.public_key)
    try:
        yield Setup(registry, sigstore, gnupg_home, env, saved, path, layout[1])
    finally:
        _umount_under(base)


def _contents(archive: Path) -> dict:
    with lzma.open(archive) as fh, tarfile.open(fileobj=fh, mode="r|") as tar:
        for member in tar:
            if member.name.endswith("podsec-contents.json"):
                return json.loads(tar.extractfile(member).read())
    raise AssertionError("no contents")


def _published_are_signed(s: Setup) -> None:
    """Every tag the registry serves has a signature that the policy accepts."""
    for name in NAMES:
        short = name.split("/", 1)[1]
        digest = s.head(short)
        if digest is None:
            continue
        assert s.signature_dir(short, digest).is_dir(), f"{short} is published unsigned"
        assert s.pull(short).returncode == 0


# ------------------------------------------------------------------------------ tests
def test_save_writes_uncompressed_shared_layout(
    saved: Path, layout: tuple[Path, dict[str, str]]
) -> None:
    contents = _contents(saved)
    assert contents["arch"] == "amd64" and contents["layers"] == "uncompressed"
    refs = {i["ref"]: i["digest"] for i in contents["images"]}
    assert set(refs) == {f"{n}:1" for n in NAMES}
    # the source layout's layers were uncompressed already: digests are preserved
    assert refs == {f"{n}:1": d for n, d in layout[1].items()}
    with lzma.open(saved) as fh, tarfile.open(fileobj=fh, mode="r|") as tar:
        names = [m.name for m in tar]
    assert names[:6] == [
        "amd64",
        "amd64/blobs",
        "amd64/blobs/sha256",
        "amd64/oci-layout",
        "amd64/podsec-contents.json",
        "amd64/index.json",
    ]
    # busybox base layer stored once although all three images use it
    blobs = [n for n in names if "/blobs/sha256/" in n]
    assert len(blobs) == len(set(blobs)) == 1 + 3 * 3  # base + (manifest, config, layer) each


def test_save_readable_by_skopeo(saved: Path, tmp_path: Path) -> None:
    subprocess.run(["tar", "-xJf", str(saved), "-C", str(tmp_path)], check=True)
    out = subprocess.run(
        ["skopeo", "--insecure-policy", "inspect", f"oci:{tmp_path}/amd64:p10/alpha:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Architecture"] == "amd64"


def test_load_sign_then_pull_under_policy(setup: Setup) -> None:
    result = setup.load()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {i["status"] for i in report["images"]} == {"pushed"}
    for name in NAMES:
        short = name.split("/", 1)[1]
        digest = setup.head(short)
        assert digest == setup.digests[name]  # layers stay uncompressed: same digest
        assert (setup.signature_dir(short, digest) / "signature-1").is_file()
        pulled = setup.pull(short)
        assert pulled.returncode == 0, pulled.stderr
    # a re-run skips everything and adds no second signature
    again = setup.load()
    assert again.returncode == 0, again.stderr
    assert {i["status"] for i in json.loads(again.stdout)["images"]} == {"skipped"}
    for name in NAMES:
        short = name.split("/", 1)[1]
        assert not (setup.signature_dir(short, setup.digests[name]) / "signature-2").exists()


def test_untrusted_signer_is_rolled_back(setup: Setup) -> None:
    result = setup.load_sign(setup.archive, signer=setup.gpg.other.email)
    assert result.returncode != 0
    assert "policy refuses" in result.stderr
    for name in NAMES:
        assert setup.head(name.split("/", 1)[1]) is None


def test_wrong_arch(setup: Setup) -> None:
    result = setup.load_sign(setup.archive, arch="arm64")
    assert result.returncode != 0
    assert "holds amd64 images, not arm64" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


def test_missing_signer_key(setup: Setup) -> None:
    result = setup.load_sign(setup.archive, signer="nobody@podsec.test")
    assert result.returncode != 0
    assert "no secret key for nobody@podsec.test" in result.stderr
    for name in NAMES:
        assert setup.head(name.split("/", 1)[1]) is None


def _tamper(archive: Path, dest: Path, member_suffix: str, *, truncate: bool = False) -> Path:
    """Copy ``archive`` with one byte flipped in the member ending with ``member_suffix``
    (or cut in the middle of it)."""
    raw = lzma.decompress(archive.read_bytes())
    tar_path = dest.with_suffix("")
    tar_path.write_bytes(raw)
    with tarfile.open(tar_path) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(member_suffix))
        offset = member.offset_data + member.size // 2
    data = bytearray(raw)
    if truncate:
        data = data[:offset]
    else:
        data[offset] ^= 0xFF
    dest.write_bytes(lzma.compress(bytes(data)))
    tar_path.unlink()
    return dest


def test_corrupt_layer_publishes_nothing_unsigned(setup: Setup, tmp_path: Path) -> None:
    base_layer = _contents(setup.archive)["images"][0]["layers"][0]["digest"].split(":")[1]
    bad = _tamper(setup.archive, tmp_path / "bad.tar.xz", base_layer)
    result = setup.load_sign(bad)
    assert result.returncode != 0
    assert "corrupt" in result.stderr
    for name in NAMES:  # every image needs the base layer: none may be visible
        assert setup.head(name.split("/", 1)[1]) is None
    good = setup.load()
    assert good.returncode == 0, good.stderr
    _published_are_signed(setup)


def test_truncated_archive_then_rerun(setup: Setup, tmp_path: Path) -> None:
    last_layer = _contents(setup.archive)["images"][-1]["layers"][-1]["digest"].split(":")[1]
    cut = _tamper(setup.archive, tmp_path / "cut.tar.xz", last_layer, truncate=True)
    result = setup.load_sign(cut)
    assert result.returncode != 0
    assert "truncated" in result.stderr or "corrupt" in result.stderr
    _published_are_signed(setup)
    good = setup.load()
    assert good.returncode == 0, good.stderr
    statuses = {i["ref"]: i["status"] for i in json.loads(good.stdout)["images"]}
    assert "pushed" in statuses.values()
    _published_are_signed(setup)
    assert all(setup.head(n.split("/", 1)[1]) for n in NAMES)


def test_not_an_archive(setup: Setup, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.xz"
    junk.write_bytes(b"hello world" * 100)
    result = setup.load_sign(junk, registry=False)
    assert result.returncode != 0
    assert "not an xz, zstd or tar archive" in result.stderr


class _DroppingProxy:
    """A TCP proxy to the registry that cuts every connection after ``budget`` bytes of
    requests in total: the registry "goes away" in the middle of an upload."""

    def __init__(self, target: tuple[str, int], budget: int):
        self.target = target
        self.budget = budget
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _addr = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while data := src.recv(65536):
                if counted:
                    with self.lock:
                        self.budget -= len(data)
                        cut = self.budget < 0
                    if cut:
                        break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.sock.close()


def test_registry_down_mid_load_then_rerun(setup: Setup) -> None:
    proxy = _DroppingProxy((setup.registry.address, setup.registry.port), 1_500_000)
    try:
        result = setup.load(url=f"http://127.0.0.1:{proxy.port}")
    finally:
        proxy.close()
    assert result.returncode != 0
    assert "cannot reach the registry" in result.stderr, result.stderr
    assert "Re-run to resume" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 2  # the error and its hint
    _published_are_signed(setup)
    good = setup.load()
    assert good.returncode == 0, good.stderr
    assert all(setup.head(n.split("/", 1)[1]) for n in NAMES)
    _published_are_signed(setup)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    require_root()
    mnt = tmp_path / "full"
    mnt.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "podsec-test-full", str(mnt)], check=True
    )
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_save_to_full_disk(small_tmpfs: Path, layout: tuple[Path, dict[str, str]]) -> None:
    src, _d = layout
    out = small_tmpfs / "oci"
    result = subprocess.run(
        [*PODSEC, "images", "save", str(out), "amd64", f"oci:{src}", "p10/alpha:1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "space" in result.stderr.lower()
    assert list(out.iterdir()) == [] if out.exists() else True


def test_save_argument_errors(tmp_path: Path) -> None:
    bad_arch = subprocess.run(
        [*PODSEC, "images", "save", str(tmp_path / "o"), "amd64,sparc", "docker://", "x/y:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad_arch.returncode == 2
    assert "unknown architecture 'sparc'" in bad_arch.stderr
    no_image = subprocess.run(
        [*PODSEC, "images", "save", str(tmp_path / "o"), "amd64", "docker://"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert no_image.returncode == 2


# ------------------------------------------------------------------------------ bundles
@dataclass(frozen=True)
class Bundle:
    setup: Setup
    archive: Path
    refs: tuple[str, ...]  # REGISTRY/PATH/p10/<name>:1 as signed


def _delete(s: Setup, ref: str) -> None:
    """Remove an image and its signatures: the "fresh" target of the round trip."""
    name, tag = ref.split("/", 1)[1].rsplit(":", 1)
    req = urllib.request.Request(
        f"{s.registry.url}/v2/{name}/manifests/{tag}",
        method="HEAD",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.docker.distribution.manifest.v2+json"
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            digest = resp.headers["Docker-Content-Digest"]
    except urllib.error.HTTPError:
        return
    urllib.request.urlopen(
        urllib.request.Request(f"{s.registry.url}/v2/{name}/manifests/{digest}", method="DELETE"),
        timeout=10,
    )
    sig_dir = s.sigstore.sigstore_dir / f"{name}@sha256={digest.split(':')[1]}"
    for f in sig_dir.glob("signature-*"):
        f.unlink()


@pytest.fixture
def bundle(setup: Setup, layout: tuple[Path, dict[str, str]], tmp_path: Path) -> Bundle:
    """Images pushed and signed (skopeo --sign-by) into the registry, then saved with
    --with-signatures, then removed from the registry and the lookaside."""
    from tests.fixtures.images import skopeo_copy

    src, _digests = layout
    refs = []
    for name in NAMES:
        ref = f"{setup.path}/{name}:1"
        skopeo_copy(
            f"oci:{src}:{name}:1",
            f"docker://{ref}",
            env={**os.environ, **setup.gpg.env},
            sign_by=setup.gpg.nopass.email,
            registries_d=setup.sigstore.registries_d,
        )
        refs.append(ref)
    out = tmp_path / "bundle"
    result = setup.podsec(
        "images",
        "save",
        str(out),
        "amd64",
        "docker://",
        *refs,
        "--with-signatures",
        "--no-src-tls-verify",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    for ref, name in zip(refs, NAMES, strict=True):
        _delete(setup, ref)
        assert setup.head(name) is None
    return Bundle(setup, out / "amd64.tar.xz", tuple(refs))


def _load_verify(b: Bundle, archive: Path) -> subprocess.CompletedProcess[str]:
    return b.setup.podsec(
        "images",
        "load",
        "--verify",
        str(archive),
        "amd64",
        b.setup.path,
        "--registry-url",
        b.setup.registry.url,
        "--json",
    )


def _nothing_pushed(b: Bundle) -> None:
    for name in NAMES:
        assert b.setup.head(name) is None


def test_bundle_round_trip_without_resigning(bundle: Bundle) -> None:
    contents = _contents(bundle.archive)
    assert contents["layers"] == "original"
    assert contents["keys"] and contents["policy"] == "podsec-policy.json"
    with lzma.open(bundle.archive) as fh, tarfile.open(fileobj=fh, mode="r|") as tar:
        files = {
            m.name: tar.extractfile(m).read() for m in tar if m.isfile() and "/podsec-" in m.name
        }
    fragment = policy_mod.parse(files["amd64/podsec-policy.json"].decode(), "podsec-policy.json")
    _scope, reqs = policy_mod.scope_for(fragment, "docker", bundle.refs[0])
    assert reqs[0].type == "signedBy"
    assert reqs[0].key_path == "/var/sigstore/keys/" + Path(bundle.setup.gpg.nopass.public_key).name
    carried_key = files["amd64/" + contents["keys"][0]]
    assert carried_key == bundle.setup.gpg.nopass.public_key.read_bytes()
    assert all(i["signatures"] for i in contents["images"])
    result = _load_verify(bundle, bundle.archive)
    assert result.returncode == 0, result.stderr
    carried = {i["digest"] for i in contents["images"]}
    for name in NAMES:
        digest = bundle.setup.head(name)
        assert digest in carried  # the originals, byte for byte
        sig = bundle.setup.signature_dir(name, digest) / "signature-1"
        assert sig.is_file()
        assert not (sig.parent / "signature-2").exists()  # not re-signed
        pulled = bundle.setup.pull(name)
        assert pulled.returncode == 0, pulled.stderr


def test_bundle_tampered_layer_pushes_nothing(bundle: Bundle, tmp_path: Path) -> None:
    layer = _contents(bundle.archive)["images"][1]["layers"][-1]["digest"].split(":")[1]
    bad = _tamper(bundle.archive, tmp_path / "bad.tar.xz", layer)
    result = _load_verify(bundle, bad)
    assert result.returncode != 0
    assert "corrupt" in result.stderr
    _nothing_pushed(bundle)


def test_bundle_tampered_signature_pushes_nothing(bundle: Bundle, tmp_path: Path) -> None:
    sig = _contents(bundle.archive)["images"][2]["signatures"][0]
    bad = _tamper(bundle.archive, tmp_path / "badsig.tar.xz", sig)
    result = _load_verify(bundle, bad)
    assert result.returncode != 0
    assert "refused by the policy of this node" in result.stderr
    _nothing_pushed(bundle)


def test_bundle_untrusted_signer_pushes_nothing(bundle: Bundle) -> None:
    _policy(
        bundle.setup.env,
        bundle.setup.sigstore,
        bundle.setup.path,
        bundle.setup.gpg.other.public_key,
    )
    result = _load_verify(bundle, bundle.archive)
    assert result.returncode != 0
    assert "refused by the policy of this node" in result.stderr
    assert "podsec-keys/" in result.stderr  # the hint names the carried key
    _nothing_pushed(bundle)


# ------------------------------------------------------------------------------ compatibility
def test_original_archive_loads(
    setup: Setup, layout: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """An archive made the original way (skopeo oci: with uncompressed layers, tar | xz; no
    contents file, blobs in directory order) is unpacked to a temp dir and loaded."""
    src, _digests = layout
    work = tmp_path / "orig"
    (work / "amd64").mkdir(parents=True)
    for name in NAMES:
        subprocess.run(
            [
                "skopeo",
                "--insecure-policy",
                "copy",
                "--quiet",
                "--dest-oci-accept-uncompressed-layers",
                f"oci:{src}:{name}:1",
                f"oci:{work}/amd64:{name}:1",
            ],
            check=True,
            timeout=120,
        )
    tar = subprocess.run(
        ["tar", "cf", "-", "-C", str(work), "amd64"], check=True, capture_output=True, timeout=120
    ).stdout
    archive = tmp_path / "amd64.tar.xz"
    archive.write_bytes(lzma.compress(tar))
    result = setup.load_sign(archive, "--json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["images"]) == 3
    for name in NAMES:
        pulled = setup.pull(name.split("/", 1)[1])
        assert pulled.returncode == 0, pulled.stderr


def test_legacy_names_and_every_arch_checked(
    layout: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    src, _digests = layout
    legacy = Path(PODSEC[0]).with_name("podsec-save-oci")
    ok = subprocess.run(
        [str(legacy), str(tmp_path / "a"), "amd64", f"oci:{src}", "p10/alpha:1", "p10/beta:1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "a" / "amd64.tar.xz").is_file()
    # the test images exist for amd64 only: the arm64 archive must not pretend otherwise
    bad = subprocess.run(
        [str(legacy), str(tmp_path / "b"), "amd64,arm64", f"oci:{src}", "p10/alpha:1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode != 0
    assert "not arm64" in bad.stderr
    assert not (tmp_path / "b" / "arm64.tar.xz").exists()
    assert not list((tmp_path / "b").glob(".podsec-save-*"))


def test_full_lookaside_disk_then_rerun(setup: Setup, small_tmpfs: Path) -> None:
    """The signatures cannot be written (full disk): nothing is published, no partial
    signature file stays, and after freeing space the re-run completes."""
    regd = setup.env.config_dir / "registries.d" / "default.yaml"
    regd.write_text(
        f"default-docker:\n  lookaside: file://{small_tmpfs}/\n"
        f"  lookaside-staging: file://{small_tmpfs}/\n"
    )
    filler = small_tmpfs / "filler"
    with filler.open("wb") as fh, contextlib.suppress(OSError):
        fh.write(b"\0" * (2 << 20))
    result = setup.load()
    assert result.returncode != 0
    assert "cannot write the signature" in result.stderr
    for name in NAMES:
        assert setup.head(name.split("/", 1)[1]) is None
    assert not [p for p in small_tmpfs.rglob("signature-*") if p.stat().st_size == 0]
    filler.unlink()
    good = setup.load()
    assert good.returncode == 0, good.stderr
    for name in NAMES:
        short = name.split("/", 1)[1]
        assert setup.head(short) == setup.digests[name]


def test_legacy_load_sign_name(setup: Setup) -> None:
    legacy = Path(PODSEC[0]).with_name("podsec-load-sign-oci")
    result = subprocess.run(
        [
            str(legacy),
            str(setup.archive),
            "amd64",
            setup.gpg.nopass.email,
            setup.path,
            "--registry-url",
            setup.registry.url,
            "--policy",
            str(setup.env.config_dir / "policy.json"),
        ],
        env={**setup.env.env, **setup.gpg.env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert setup.pull("alpha").returncode == 0
    usage = subprocess.run(
        [str(legacy), str(setup.archive)], capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 2
    assert "podsec-load-sign-oci" in usage.stderr


def test_default_target_with_real_names(
    tmp_path: Path,
    registry: Registry,
    sigstore: Sigstore,
    gnupg_home: GnupgHome,
    saved: Path,
) -> None:
    """The original's 3-argument form: registry.local/<the archive's platform>, port 80."""
    from tests.fixtures.images import require_real_names

    require_real_names()
    env = make_podman_env(tmp_path / "penv", insecure=("registry.local",))
    try:
        _policy(env, sigstore, "registry.local/p10", gnupg_home.nopass.public_key)
        result = subprocess.run(
            [
                *PODSEC,
                "images",
                "load-sign",
                str(saved),
                "amd64",
                gnupg_home.nopass.email,
                "--policy",
                str(env.config_dir / "policy.json"),
            ],
            env={**env.env, **gnupg_home.env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        for name in NAMES:
            pulled = env.run("podman", "pull", f"registry.local/{name}:1", check=False)
            assert pulled.returncode == 0, pulled.stderr
    finally:
        _umount_under(tmp_path / "penv")


def test_registry_not_running(setup: Setup) -> None:
    port = free_port()  # closed again: nothing listens there
    result = setup.load(url=f"http://127.0.0.1:{port}")
    assert result.returncode != 0
    assert "cannot reach the registry" in result.stderr
    _published_are_signed(setup)


def test_save_source_errors(
    layout: tuple[Path, dict[str, str]], tmp_path: Path, saved: Path
) -> None:
    src, _digests = layout
    missing = subprocess.run(
        [*PODSEC, "images", "save", str(tmp_path / "o"), "amd64", f"oci:{src}", "p10/nope:1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1
    assert "cannot copy" in missing.stderr and "p10/nope:1" in missing.stderr
    assert not (tmp_path / "o").exists()  # nothing written, not even the directory save made
    exists = subprocess.run(
        [*PODSEC, "images", "save", str(saved.parent), "amd64", f"oci:{src}", "p10/alpha:1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert exists.returncode == 2
    assert "already exists" in exists.stderr


def test_passphrase_key(setup: Setup) -> None:
    """A maker key with a passphrase: without it nothing is published; with
    --passphrase-file the load completes and verifies."""
    key = setup.gpg.withpass
    _policy(setup.env, setup.sigstore, setup.path, key.public_key)
    refused = setup.load_sign(setup.archive, signer=key.email)
    assert refused.returncode != 0
    assert f"cannot sign with key {key.email}" in refused.stderr
    for name in NAMES:
        assert setup.head(name.split("/", 1)[1]) is None
    ok = setup.load_sign(
        setup.archive, "--passphrase-file", str(key.passphrase_file), signer=key.email
    )
    assert ok.returncode == 0, ok.stderr
    for name in NAMES:
        pulled = setup.pull(name.split("/", 1)[1])
        assert pulled.returncode == 0, pulled.stderr


# ------------------------------------------------------------------ kill -9 of load-sign
KILLS = 10  # half over the run, half bisecting the window where it publishes


def _is_temp(path: Path) -> bool:  # an interrupted write's temporary file (.NAME.XXXXXXXX)
    return path.name.startswith(".")


def _lookaside_tree(s: Setup, state_dir: Path) -> dict[str, object]:
    """What load-sign writes here, comparable across targets: this target's lookaside
    folders (each signature-N as what it verifies to — a partial file verifies to nothing)
    and the state file (its images and digests), under names without the target; temporary
    files are left out (counted by the caller)."""
    from podsec.errors import PodsecError
    from podsec.trust import signature

    out: dict[str, object] = {}
    lookaside = s.sigstore.sigstore_dir / s.path.split("/", 1)[1]
    for path in sorted(lookaside.rglob("*")):
        key = f"lookaside/{path.relative_to(lookaside)}"
        if _is_temp(path):
            continue
        if not path.is_file():
            out[key] = ("dir",)
            continue
        try:
            got = signature.verify(path.read_bytes(), [s.gpg.nopass.public_key])
            out[key] = ("signature", got.docker_reference.replace(s.path, "PATH"),
                        got.manifest_digest, oct(path.stat().st_mode & 0o777))  # fmt: skip
        except PodsecError as exc:
            out[key] = ("no valid signature", str(exc)[:80])
    for path in sorted(state_dir.rglob("*")):
        if _is_temp(path):
            continue
        if not path.is_file():
            out[f"state/{path.relative_to(state_dir)}"] = ("dir",)
            continue
        try:
            images = json.loads(path.read_text())["images"]
            out["state/STATE.json"] = sorted((r, i["digest"]) for r, i in images.items())
        except (ValueError, KeyError):
            out[f"state/{path.name}"] = ("partial state file", path.read_bytes()[:80])
    return out


def test_load_sign_killed_anywhere(setup: Setup, tmp_path: Path) -> None:
    """kill -9 of `podsec images load-sign` at KILLS points (issue 15), each into a fresh
    target (the blobs are sent again each time): every file it writes is either absent (as
    before) or as a complete run writes it — a signature verifies, the state file is whole
    (it records progress per image: the images it lists are a part of the complete run's);
    no image is visible in the registry without a signature the policy accepts (podman
    pulls it under the policy); a re-run completes and converges to one run's files (no
    second signature). An interrupted write's temporary file (.signature.XXXXXXXX) is the
    one permitted leftover, counted."""
    import dataclasses
    import signal
    import time

    def target(i: int | str) -> tuple[Setup, Path, list[str]]:
        s = dataclasses.replace(setup, path=f"{setup.path}/k{i}")
        state = tmp_path / f"state-{i}"
        state.mkdir()
        argv = [*PODSEC, "images", "load-sign", str(s.archive), "amd64", s.gpg.nopass.email,
                s.path, "--registry-url", s.registry.url, "--policy",
                str(s.env.config_dir / "policy.json")]  # fmt: skip
        return s, state, argv

    def env(state: Path) -> dict[str, str]:
        return {**setup.env.env, **setup.gpg.env, "XDG_STATE_HOME": str(state)}

    ref, ref_state, argv = target("ref")
    started = time.monotonic()
    first = subprocess.run(argv, env=env(ref_state), capture_output=True, text=True, timeout=300)
    duration = time.monotonic() - started
    assert first.returncode == 0, first.stderr
    after = _lookaside_tree(ref, ref_state)
    assert sum(1 for k in after if "/signature-" in k) == len(NAMES)
    total = len(after)
    report: list[tuple[float, int, int, int]] = []  # at, files, images visible, temp files
    times = kill_points.even(duration, KILLS // 2)
    while len(report) < KILLS:
        if not times:  # bisect where it publishes: the last kill before, the first after
            finished = [(r[0], r[1] == total and r[2] == len(NAMES)) for r in report]
            times = kill_points.refine(finished, duration, 2)
        at = times.pop(0)
        s, state, argv = target(len(report))
        proc = subprocess.Popen(argv, env=env(state), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(at)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        time.sleep(0.5)  # an orphaned gpg finishes (its signature goes nowhere)
        now = _lookaside_tree(s, state)
        for key, entry in now.items():
            if key == "state/STATE.json":  # progress, recorded per image: a whole file
                assert isinstance(entry, list) and set(entry) <= set(after[key]), entry
                continue
            assert entry == after.get(key), f"kill at {at:.2f}s: {key} is {entry}"
        visible = [n for n in NAMES if s.head(n.split("/", 1)[1])]
        _published_are_signed(s)  # each visible image pulls under the policy
        written = [s.sigstore.sigstore_dir / s.path.split("/", 1)[1], state]
        temps = sum(1 for top in written for p in top.rglob("*") if _is_temp(p))
        again = subprocess.run(argv, env=env(state), capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, f"re-run after a kill at {at:.2f}s: {again.stderr}"
        assert _lookaside_tree(s, state) == after, f"kill at {at:.2f}s: not converged"
        assert all(s.head(n.split("/", 1)[1]) for n in NAMES)
        report.append((at, len(now), len(visible), temps))
    _published_are_signed(s)
    print(f"load-sign killed at {[round(r[0], 2) for r in report]} of {duration:.2f}s: "
          f"files {[r[1] for r in report]} of {total}, images visible "
          f"{[r[2] for r in report]} of {len(NAMES)}, temp leftovers {sum(r[3] for r in report)}")  # fmt: skip
    assert any(0 < r[1] < total or 0 < r[2] < len(NAMES) for r in report), "none mid-run"
