"""``load-sign`` and ``load --verify``: archive → registry.local, signed, verified, resumable.

One streaming pass over the archive (xz/zstd → tar → HTTP): no unpacked copy on disk. The
archive lists its images first (``podsec-contents.json``), so every layer is sent to the
registry while it is being decompressed, and each image is published the moment its last
blob is in, in this order:

1. its signature is written to the lookaside staging directory (made while the layers
   stream, in a thread pool);
2. its manifest is put under the tag (now the image is visible — already signed);
3. it is checked against the policy exactly as consumers will (``check_image``: signature
   fetched from the lookaside URL, verified with the policy's key); a refusal deletes the
   manifest again and removes the signature.

Layers stay uncompressed in the registry, so the manifest digest there is the digest in the
archive. A re-run skips every image whose tag already holds that digest and passes the
policy (the state file records progress for the report). Original podsec archives (no
contents file first) are unpacked to a temporary directory instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from podsec.errors import NotFoundError, PodsecError, UsageError, ValidationError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.names import REGISTRY_HOST
from podsec.progress import NULL_PROGRESS, Progress
from podsec.registry import compress, naming, oci
from podsec.registry.client import RegistryClient
from podsec.registry.upload import Uploader, drain
from podsec.trust import keys as trust_keys
from podsec.trust import manifest as trust_manifest
from podsec.trust import policy as trust_policy
from podsec.trust import registries_d, signature, verify

SMALL = 4 << 20  # manifests and configs are read into memory
BUNDLE_SIGS = "podsec-signatures/"


@dataclass(frozen=True)
class LoadRequest:
    archive: Path
    arch: str
    target: naming.Reference | None = None  # REGISTRY/PATH; None: registry.local/<platform>
    signer: str | None = None  # load-sign: the maker's key; None with verify_bundle
    gnupg_home: Path | None = None
    passphrase: str | None = None
    registry_url: str | None = None  # default http://<target host>
    registries_d: Path | None = None
    policy_path: Path | None = None
    platform: str | None = None  # U7S_PLATFORM when set explicitly
    verify_bundle: bool = False  # load --verify: use the archive's signatures
    state_dir: Path | None = None
    jobs: int = 4
    confirm: Callable[[str], bool] | None = None


@dataclass(frozen=True)
class LoadedImage:
    ref: str
    target: str
    digest: str
    status: str  # "pushed" | "skipped"
    note: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "ref": self.ref,
            "target": self.target,
            "digest": self.digest,
            "status": self.status,
            "note": self.note,
        }


@dataclass(frozen=True)
class LoadResult:
    images: tuple[LoadedImage, ...]
    bytes_sent: int
    seconds: float
    state_file: Path | None = None


@dataclass
class _Image:
    entry: oci.ImageEntry
    target: naming.Reference
    need: set[str]
    manifest: bytes | None = None
    signature: Future[Path | None] | None = None
    done: bool = False
    skipped: bool = False
    note: str = ""
    bundle_sigs: list[bytes] = field(default_factory=list)
    staging: Path = Path()

    @property
    def repo(self) -> str:
        return self.target.repo


class _State:
    """Progress of one archive into one target, for the report and for resuming."""

    def __init__(self, path: Path | None, archive: Path, target: str):
        self.path = path
        self.lock = threading.Lock()
        self.data: dict[str, Any] = {"archive": str(archive), "target": target, "images": {}}
        if path is not None and path.is_file():
            try:
                loaded = json.loads(path.read_text())
                if isinstance(loaded, dict) and isinstance(loaded.get("images"), dict):
                    self.data = loaded
            except (OSError, ValueError):
                pass  # a damaged state file only costs re-checking

    def done(self, ref: str, digest: str) -> bool:
        entry = self.data["images"].get(ref)
        return isinstance(entry, dict) and entry.get("digest") == digest

    def record(self, ref: str, target: str, digest: str) -> None:
        with self.lock:
            self.data["images"][ref] = {"target": target, "digest": digest, "at": int(time.time())}
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
            tmp.replace(self.path)


def state_path(state_dir: Path, archive: Path, arch: str, target: str) -> Path:
    st = archive.stat()
    key = f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}|{arch}|{target}"
    return state_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"


def default_state_dir(home: Path) -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(home / ".local" / "state")
    return Path(base) / "podsec" / "load"


class _Loader:
    def __init__(self, host: Host, req: LoadRequest, progress: Progress):
        self.host = host
        self.req = req
        self.progress = progress
        self.images: list[_Image] = []
        self.blob_repos: dict[str, list[str]] = {}
        self.have: dict[str, set[str]] = {}
        self.small: dict[str, bytes] = {}
        self.meta: dict[str, bytes] = {}
        self.errors: list[BaseException] = []
        self.futures: list[Future[None]] = []
        self.lock = threading.Lock()
        self.bytes_sent = 0
        self.pool = ThreadPoolExecutor(max_workers=max(1, req.jobs))
        self.state: _State | None = None
        self.planned = False
        self.dry_run = False
        self.task_bytes = _("load {name}").format(name=req.archive.name)
        self.task_images = _("images published")
        self.regd = registries_d.RegistriesD()
        self.policy: trust_policy.Policy | None = None
        self.signer_key: Path | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="podsec-load.")
        self.client: RegistryClient | None = None
        self.uploader: Uploader | None = None

    # -- configuration checks (before anything is read or sent) ------------------------
    def configure(self) -> None:
        req = self.req
        if req.registries_d is not None:
            self.regd = registries_d.load_dir(req.registries_d)
        if req.policy_path is None or not req.policy_path.is_file():
            raise NotFoundError(
                _("no policy at {path}: images could not be verified after the push").format(
                    path=req.policy_path
                ),
                hint=_("run podsec policy create first"),
            )
        self.policy = trust_policy.load(req.policy_path)
        if req.signer is not None:
            found = trust_keys.find_secret_key(req.gnupg_home, req.signer)
            if found is None:
                raise NotFoundError(
                    _("no secret key for {signer} in {home}").format(
                        signer=req.signer, home=req.gnupg_home or "~/.gnupg"
                    ),
                    hint=_("the image maker's key is made by podsec users create-imagemaker"),
                )
            pub = Path(self._tmp.name) / "signer.pgp"
            pub.write_text(trust_keys.export_public(req.gnupg_home, req.signer))
            self.signer_key = pub

    def _staging_for(self, ref: str) -> Path:
        url = registries_d.configured_lookaside(self.regd, ref, write=True)
        if url is None or not url.startswith("file://"):
            raise PodsecError(
                _("no lookaside-staging directory (file://) is configured for {ref}").format(
                    ref=ref
                ),
                hint=_(
                    "image makers sign through lookaside-staging in registries.d "
                    "(podsec users create-imagemaker sets it up)"
                ),
            )
        return Path(verify.host_url(self.host, url)[len("file://") :])

    # -- plan ------------------------------------------------------------------------------
    def plan(self, contents: oci.Contents) -> None:  # noqa: PLR0912 - one check per rule
        req = self.req
        if contents.arch and contents.arch != req.arch:
            raise ValidationError(
                _("the archive holds {found} images, not {arch}").format(
                    found=contents.arch, arch=req.arch
                )
            )
        if not contents.images:
            raise ValidationError(_("{path}: the archive lists no images").format(path=req.archive))
        for entry in contents.images:
            if entry.arch and entry.arch != req.arch:
                raise ValidationError(
                    _("{ref} in the archive is for {found}, not {arch}").format(
                        ref=entry.ref, found=entry.arch, arch=req.arch
                    )
                )
        platform = naming.platform_of(contents.images[0].ref)
        if platform.startswith("k8s-"):
            raise ValidationError(
                _("the archive uses the old platform name {platform}; it is not supported").format(
                    platform=platform
                ),
                hint=_("rebuild the archive with podsec images save-k8s"),
            )
        if req.target is None and req.platform and req.platform != platform:
            question = _(
                "the archive is for platform {found}, this node uses {platform}; continue?"
            ).format(found=platform, platform=req.platform)
            if req.confirm is None or not req.confirm(question):
                raise UsageError(
                    _("the archive is for platform {found}, not {platform}").format(
                        found=platform, platform=req.platform
                    ),
                    hint=_("pass --yes to load it anyway, or REGISTRY/PATH to choose the target"),
                )
        target_text = str(req.target) if req.target else f"registry.local/{platform}"
        if req.state_dir is not None:
            self.state = _State(
                state_path(req.state_dir, req.archive, req.arch, target_text),
                req.archive,
                target_text,
            )
        else:
            self.state = _State(None, req.archive, target_text)
        host = req.target.host if req.target else REGISTRY_HOST
        url = req.registry_url or f"http://{host}"
        self.client = RegistryClient(url, timeout=60)
        self.uploader = Uploader(url)
        for entry in contents.images:
            target = naming.target_for(entry.ref, platform, req.target)
            self.images.append(_Image(entry, target, {b.digest for b in entry.blobs}))
        if req.verify_bundle:
            self._check_bundle(contents)
        for image in self.images:  # every target needs a writable lookaside, checked first
            image.staging = self._staging_for(str(image.target))
        if self.dry_run:
            self.planned = True
            return
        self._skip_completed()
        for image in self.images:
            if image.skipped:
                continue
            for blob in image.entry.blobs:
                self.blob_repos.setdefault(blob.digest, [])
                if image.repo not in self.blob_repos[blob.digest]:
                    self.blob_repos[blob.digest].append(image.repo)
            image.signature = self.pool.submit(self._sign, image)
        pending = [i for i in self.images if not i.skipped]
        self.progress.start(self.task_images, float(len(self.images)), "images")
        self.progress.advance(self.task_images, len(self.images) - len(pending))
        self.planned = True

    def _skip_completed(self) -> None:
        assert self.client is not None and self.state is not None

        def check(image: _Image) -> None:
            try:
                body = self.client.manifest(image.repo, _tag(image.target))[0]  # type: ignore[union-attr]
            except NotFoundError:
                return
            # the digest is the manifest's, never the registry's Docker-Content-Digest
            if not trust_manifest.matches_digest(body, image.entry.digest):
                return
            if self._verdict(image).accepted:
                image.skipped = True
                image.note = _("already loaded")
                self.state.record(image.entry.ref, str(image.target), image.entry.digest)  # type: ignore[union-attr]

        list(self.pool.map(check, self.images))

    def _verdict(self, image: _Image) -> verify.Verdict:
        assert self.policy is not None
        return verify.check_image(
            self.host, str(image.target), image.entry.digest, self.policy, self.regd
        )

    # -- signatures --------------------------------------------------------------------
    def _sign(self, image: _Image) -> Path | None:
        ref, digest = str(image.target), image.entry.digest
        if self.req.verify_bundle:
            stored = None
            for sig in image.bundle_sigs:
                stored = self._store(image, sig)
            return stored
        assert self.req.signer is not None and self.signer_key is not None
        existing = self._existing_signature(image)
        if existing is not None:
            return existing
        payload = signature.make_payload(ref, digest)
        sig = signature.sign(payload, self.req.signer, self.req.gnupg_home, self.req.passphrase)
        return self._store(image, sig)

    def _store(self, image: _Image, sig: bytes) -> Path:
        """Write a signature file; a failed write (full disk) leaves no partial file."""
        folder = image.staging / signature.sig_dir_name(image.target.repo, image.entry.digest)
        before = set(folder.glob("signature-*")) if folder.is_dir() else set()
        try:
            return signature.store_signature(
                image.staging, image.target.repo, image.entry.digest, sig
            )
        except OSError as exc:
            for path in set(folder.glob("signature-*")) - before:
                path.unlink(missing_ok=True)
            raise PodsecError(
                _("cannot write the signature of {ref} under {path}: {err}").format(
                    ref=image.target, path=image.staging, err=exc.strerror or exc
                ),
                hint=_("free some space and re-run: the image was not published"),
            ) from exc

    def _existing_signature(self, image: _Image) -> Path | None:
        """A signature by our key for this image left by an interrupted run: reuse it."""
        assert self.signer_key is not None
        folder = image.staging / signature.sig_dir_name(image.target.repo, image.entry.digest)
        if not folder.is_dir():
            return None
        for path in sorted(folder.glob("signature-*")):
            try:
                verified = signature.verify(path.read_bytes(), [self.signer_key])
            except PodsecError:
                continue
            # ours: this digest, this exact reference (what _sign would write again)
            if verified.manifest_digest == image.entry.digest and verified.docker_reference == str(
                image.target
            ):
                return path
        return None

    def _check_bundle(self, contents: oci.Contents) -> None:
        """load --verify: every image's bundled signatures must satisfy the TARGET's policy
        (its own trusted keys) before anything is sent."""
        assert self.policy is not None
        for image in self.images:
            sigs = []
            for rel in image.entry.signatures:
                data = self.meta.get(rel)
                if data is None:
                    raise ValidationError(
                        _("{ref}: signature {path} is missing from the archive").format(
                            ref=image.entry.ref, path=rel
                        )
                    )
                sigs.append(data)
            if not sigs:
                raise ValidationError(
                    _("{ref}: the archive carries no signature for it").format(ref=image.entry.ref),
                    hint=_("bundles are written by podsec images save --with-signatures"),
                )
            verdict = verify.evaluate(
                self.host, self.policy, str(image.target), image.entry.digest, sigs
            )
            if not verdict.accepted:
                raise ValidationError(
                    _("{ref}: refused by the policy of this node: {reason}").format(
                        ref=image.target, reason=verdict.reason
                    ),
                    hint=_bundle_hint(contents),
                )
            image.bundle_sigs = sigs

    # -- blobs -----------------------------------------------------------------------------
    def small_blob(self, digest: str, data: bytes) -> None:
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise ValidationError(
                _("blob {digest} in the archive is corrupt (its content does not match)").format(
                    digest=digest
                ),
                hint=_("copy the archive again; nothing of this image was published"),
            )
        self.small[digest] = data
        manifest_of = [i for i in self.images if i.entry.digest == digest]
        for image in manifest_of:
            image.manifest = data
        if not self.dry_run and digest in self.blob_repos:
            self.blob(digest, len(data), io.BytesIO(data))
        elif not self.dry_run:
            self._maybe_publish()

    def blob(self, digest: str, size: int, reader: IO[bytes]) -> None:
        def count(n: int) -> None:
            self.bytes_sent += n
            self.progress.advance(self.task_bytes, n)

        repos = [] if self.dry_run else self.blob_repos.get(digest, [])
        if not repos:
            drain(reader, size, digest, count)
            return
        assert self.uploader is not None
        first = repos[0]
        if self.uploader.has_blob(first, digest):
            drain(reader, size, digest, count)
        else:
            self.uploader.upload(first, digest, size, reader, count)
        with self.lock:
            self.have.setdefault(first, set()).add(digest)
        for repo in repos[1:]:
            if not self.uploader.mount(repo, digest, first) and not self.uploader.has_blob(
                repo, digest
            ):
                raise PodsecError(
                    _("the registry did not link blob {digest} into {repo}").format(
                        digest=digest, repo=repo
                    )
                )
            with self.lock:
                self.have.setdefault(repo, set()).add(digest)
        self._maybe_publish()

    def _maybe_publish(self) -> None:
        for image in self.images:
            if image.done or image.skipped or image.manifest is None:
                continue
            if image.need <= self.have.get(image.repo, set()):
                image.done = True
                self.futures.append(self.pool.submit(self._publish, image))

    def _publish(self, image: _Image) -> None:
        assert self.client is not None and image.signature is not None
        assert image.manifest is not None and self.state is not None
        sig_path = image.signature.result()  # signed before it becomes visible
        digest = self.client.put_manifest(
            image.repo, _tag(image.target), image.manifest, image.entry.media_type
        )
        if digest != image.entry.digest:
            self._rollback(image, digest, sig_path)
            raise ValidationError(
                _("{ref}: the registry stored digest {got}, expected {expected}").format(
                    ref=image.target, got=digest, expected=image.entry.digest
                )
            )
        verdict = self._verdict(image)
        if not verdict.accepted:
            self._rollback(image, digest, sig_path)
            raise PodsecError(
                _("{ref}: the policy refuses the pushed image ({reason}); it was removed").format(
                    ref=image.target, reason=verdict.reason
                ),
                hint=_(
                    "the policy must trust the signer's key for this path "
                    "(podsec users create-imagemaker USER@PATH)"
                ),
            )
        image.note = verdict.reason
        if not any(r.type == "signedBy" for r in verdict.requirements):
            image.note = _("accepted, but the policy requires no signature for it")
        self.state.record(image.entry.ref, str(image.target), digest)
        self.progress.advance(self.task_images)

    def _rollback(self, image: _Image, digest: str, sig_path: Path | None) -> None:
        assert self.client is not None
        try:
            self.client.delete_manifest(image.repo, digest)
        except PodsecError as exc:
            raise PodsecError(
                _(
                    "{ref} is published but failed verification and could not be deleted: {err}"
                ).format(ref=image.target, err=exc.message),
                hint=_("delete it from the registry by hand"),
            ) from exc
        if sig_path is not None and not self.req.verify_bundle:
            sig_path.unlink(missing_ok=True)

    # -- end ---------------------------------------------------------------------------------
    def wait(self) -> None:
        """Wait for every signing and publishing task; raise the first failure."""
        first: BaseException | None = None
        for image in self.images:
            if image.signature is not None:
                try:
                    image.signature.result()
                except BaseException as exc:
                    first = first or exc
        for future in self.futures:
            try:
                future.result()
            except BaseException as exc:
                first = first or exc
        if first is not None:
            raise first

    def check_complete(self) -> None:
        missing = [str(i.target) for i in self.images if not (i.done or i.skipped)]
        if missing:
            raise ValidationError(
                _("the archive ended before these images were complete: {refs}").format(
                    refs=", ".join(missing)
                ),
                hint=_("the archive is truncated; copy it again and re-run to resume"),
            )

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self._tmp.cleanup()


def _tag(ref: naming.Reference) -> str:
    return ref.tag or ref.digest or "latest"


def _bundle_hint(contents: oci.Contents) -> str:
    if contents.keys:
        return _(
            "the archive carries the signer's public key ({keys}); trust it on this node "
            "only if you trust its maker"
        ).format(keys=", ".join(contents.keys))
    return _("the signer's key is not trusted on this node")


def _read(reader: IO[bytes], size: int) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise ValidationError(_("the archive ended inside a file"))
    return data


def load(host: Host, req: LoadRequest, progress: Progress = NULL_PROGRESS) -> LoadResult:
    """Load (and sign) every image of ``req.archive``; see the module docstring."""
    started = time.monotonic()
    naming.check_arch(req.arch)
    if req.signer is None and not req.verify_bundle:
        raise UsageError(_("a signer is needed unless the archive's signatures are used"))
    compress.detect(req.archive)  # a clear error for a missing or foreign file first
    if req.verify_bundle:
        # pass 1: every blob and signature checked before anything is sent
        checker = _Loader(host, req, progress)
        checker.dry_run = True
        checker.task_bytes = _("verify {name}").format(name=req.archive.name)
        try:
            checker.configure()
            _stream(checker, progress, checker.task_bytes)
        finally:
            checker.close()
    loader = _Loader(host, req, progress)
    try:
        loader.configure()
        try:
            _stream(loader, progress, loader.task_bytes)
        except BaseException:
            # images whose blobs are all in still get published (signed); the stream's
            # error is the one reported
            with contextlib.suppress(BaseException):
                loader.wait()
            raise
        loader.wait()
        loader.check_complete()
        result = tuple(
            LoadedImage(
                i.entry.ref,
                str(i.target),
                i.entry.digest,
                "skipped" if i.skipped else "pushed",
                i.note,
            )
            for i in loader.images
        )
        state = loader.state.path if loader.state else None
        return LoadResult(result, loader.bytes_sent, time.monotonic() - started, state)
    finally:
        loader.close()


def _stream(loader: _Loader, progress: Progress, task: str) -> None:  # noqa: PLR0912
    req = loader.req
    with compress.open_archive(req.archive) as archive:
        spool: Path | None = None
        started = False
        for info in archive:
            top, _sep, rel = info.name.lstrip("./").partition("/")
            if not started:
                started = True
                if top != req.arch:
                    raise ValidationError(
                        _("the archive holds {found} images, not {arch}").format(
                            found=top, arch=req.arch
                        )
                    )
            if top != req.arch:
                raise ValidationError(
                    _("unexpected entry {name} in the archive").format(name=info.name)
                )
            if not info.isfile():
                continue
            if spool is not None:
                _spool(archive, info, spool / rel)
                continue
            if not rel.startswith("blobs/"):
                if info.size > SMALL:
                    raise ValidationError(_("{name} is too large").format(name=info.name))
                loader.meta[rel] = _read(archive.extract(info), info.size)
                continue
            digest = "sha256:" + rel.rsplit("/", 1)[-1]
            if not loader.planned:
                if oci.CONTENTS not in loader.meta:
                    # an original podsec archive: blobs come before the index; unpack it
                    spool = Path(loader._tmp.name) / "layout"
                    for name, data in loader.meta.items():
                        (spool / name).parent.mkdir(parents=True, exist_ok=True)
                        (spool / name).write_bytes(data)
                    _spool(archive, info, spool / rel)
                    continue
                loader.plan(oci.Contents.parse(loader.meta[oci.CONTENTS], oci.CONTENTS))
                progress.start(task, float(_blob_total(loader)), "B")
            reader = archive.extract(info)
            if info.size <= SMALL and (
                digest in {i.entry.digest for i in loader.images}
                or digest in {i.entry.config.digest for i in loader.images}
            ):
                loader.small_blob(digest, _read(reader, info.size))
            else:
                loader.blob(digest, info.size, reader)
        if not started:
            raise archive.corrupt(_("it is empty"))
        archive.check_end()
        if spool is not None:
            _load_layout(loader, spool)
        elif not loader.planned:
            raise ValidationError(
                _("{path}: the archive holds no image blobs").format(path=req.archive)
            )
    progress.finish(task)


def _blob_total(loader: _Loader) -> int:
    sizes: dict[str, int] = {}
    for image in loader.images:
        for blob in image.entry.blobs:
            sizes[blob.digest] = blob.size
    return sum(sizes.values())


def _spool(archive: compress.ArchiveReader, info: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    reader = archive.extract(info)
    with path.open("wb") as out:
        while chunk := reader.read(1 << 20):
            out.write(chunk)


def _load_layout(loader: _Loader, layout: Path) -> None:
    """Push from an unpacked layout (the original's archives)."""
    contents = oci.Layout.open(layout, loader.req.arch).contents
    loader.plan(contents)
    sizes = contents.blob_sizes()
    loader.progress.start(loader.task_bytes, float(sum(sizes.values())), "B")
    small = {i.entry.digest for i in loader.images} | {i.entry.config.digest for i in loader.images}
    for digest, size in sizes.items():
        path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
        if not path.is_file():
            raise ValidationError(
                _("blob {digest} is missing from the archive").format(digest=digest)
            )
        if digest in small:
            loader.small_blob(digest, path.read_bytes())
            continue
        with path.open("rb") as fh:
            loader.blob(digest, size, fh)
