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

``load --verify`` makes two passes: a :class:`Verifier` checks every blob and every carried
signature and sends nothing, then the :class:`Loader` publishes. What is decided before the
first byte is sent lives in :mod:`~podsec.registry.load_plan`; signing, publishing and
rollback in :mod:`~podsec.registry.publish`; the request and the result in
:mod:`~podsec.registry.load_request`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from podsec.errors import PodsecError, UsageError, ValidationError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.progress import NULL_PROGRESS, Progress
from podsec.registry import compress, load_plan, naming, oci
from podsec.registry.client import RegistryClient
from podsec.registry.load_plan import PlannedImage, State, Trust
from podsec.registry.load_request import LoadedImage, LoadRequest, LoadResult, request
from podsec.registry.publish import Publisher
from podsec.registry.upload import Uploader, drain

SMALL = 4 << 20  # manifests and configs are read into memory

__all__ = ["LoadRequest", "LoadResult", "LoadedImage", "load", "request"]


class _Pass:
    """One pass over the archive: the metadata files, then the plan as soon as the contents
    are known (every check before anything is sent), then each blob checked against its
    digest. This base sends nothing: it is the :class:`Verifier`; :class:`Loader` publishes."""

    def __init__(self, host: Host, req: LoadRequest, trust: Trust, progress: Progress, task: str):
        self.host = host
        self.req = req
        self.trust = trust
        self.progress = progress
        self.task_bytes = task
        self.images: list[PlannedImage] = []
        self.small: dict[str, bytes] = {}
        self.meta: dict[str, bytes] = {}
        self.bytes_sent = 0
        self.planned = False

    def plan(self, contents: oci.Contents) -> None:
        req = self.req
        platform = load_plan.archive_platform(
            contents,
            req.archive,
            req.arch,
            target=req.target,
            node_platform=req.platform,
            confirm=req.confirm,
        )
        self.images = load_plan.planned_images(contents, platform, req.target)
        if req.verify_bundle:
            load_plan.check_bundle(self.host, self.trust, self.images, self.meta, contents)
        for image in self.images:  # every target needs a writable lookaside, checked first
            if load_plan.needs_staging(image, self.trust, req.verify_bundle):
                image.staging = load_plan.staging_for(self.host, self.trust.regd, str(image.target))
        self.planned_for(platform)
        self.planned = True

    def planned_for(self, platform: str) -> None:
        """What a pass does once the plan stands (nothing, when only verifying)."""

    def count(self, n: int) -> None:
        self.bytes_sent += n
        self.progress.advance(self.task_bytes, n)

    def small_blob(self, digest: str, data: bytes) -> None:
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise ValidationError(
                _("blob {digest} in the archive is corrupt (its content does not match)").format(
                    digest=digest
                ),
                hint=_("copy the archive again; nothing of this image was published"),
            )
        self.small[digest] = data
        for image in self.images:
            if image.entry.digest == digest:
                image.manifest = data
        self.small_blob_ready(digest, data)

    def small_blob_ready(self, digest: str, data: bytes) -> None:
        """A manifest or config arrived and matched its digest."""

    def blob(self, digest: str, size: int, reader: IO[bytes]) -> None:
        drain(reader, size, digest, self.count)


class Verifier(_Pass):
    """``load --verify``'s first pass: every blob and signature checked, nothing sent."""


class Loader(_Pass):
    """Sends the blobs while they stream, and publishes each image once all of its are in."""

    def __init__(self, host: Host, req: LoadRequest, trust: Trust, progress: Progress):
        super().__init__(host, req, trust, progress, _("load {name}").format(name=req.archive.name))
        self.task_images = _("images published")
        self.blob_repos: dict[str, list[str]] = {}
        self.have: dict[str, set[str]] = {}
        self.futures: list[Future[None]] = []
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=max(1, req.jobs))
        self.state: State | None = None
        self.uploader: Uploader | None = None
        self.publisher: Publisher | None = None

    def planned_for(self, platform: str) -> None:
        req = self.req
        target_text = load_plan.target_text(req.target, platform)
        path = (
            load_plan.state_path(req.state_dir, req.archive, req.arch, target_text)
            if req.state_dir is not None
            else None
        )
        self.state = State(path, req.archive, target_text)
        url = req.registry_url or f"http://{load_plan.registry_host(req.target)}"
        self.uploader = Uploader(url)
        self.publisher = Publisher(
            self.host,
            self.trust,
            RegistryClient(url, timeout=60),
            self.state,
            progress=self.progress,
            task_images=self.task_images,
            signer=req.signer,
            gnupg_home=req.gnupg_home,
            passphrase=req.passphrase,
            verify_bundle=req.verify_bundle,
        )
        self.publisher.skip_completed(self.images, self.pool)
        for image in self.images:
            if image.skipped:
                continue
            for blob in image.entry.blobs:
                self.blob_repos.setdefault(blob.digest, [])
                if image.repo not in self.blob_repos[blob.digest]:
                    self.blob_repos[blob.digest].append(image.repo)
            image.signature = self.pool.submit(self.publisher.sign, image)
        pending = [i for i in self.images if not i.skipped]
        self.progress.start(self.task_images, float(len(self.images)), "images")
        self.progress.advance(self.task_images, len(self.images) - len(pending))

    def small_blob_ready(self, digest: str, data: bytes) -> None:
        if digest in self.blob_repos:
            self.blob(digest, len(data), io.BytesIO(data))
        else:
            self._maybe_publish()

    def blob(self, digest: str, size: int, reader: IO[bytes]) -> None:
        repos = self.blob_repos.get(digest, [])
        if not repos:
            drain(reader, size, digest, self.count)
            return
        assert self.uploader is not None
        first = repos[0]
        if self.uploader.has_blob(first, digest):
            drain(reader, size, digest, self.count)
        else:
            self.uploader.upload(first, digest, size, reader, self.count)
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
        assert self.publisher is not None
        for image in self.images:
            if image.done or image.skipped or image.manifest is None:
                continue
            if image.need <= self.have.get(image.repo, set()):
                image.done = True
                self.futures.append(self.pool.submit(self.publisher.publish, image))

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


def _read(reader: IO[bytes], size: int) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise ValidationError(_("the archive ended inside a file"))
    return data


def load(host: Host, req: LoadRequest, progress: Progress = NULL_PROGRESS) -> LoadResult:
    """Load (and sign) every image of ``req.archive``; see the module docstring."""
    started = time.monotonic()
    naming.check_arch(req.arch)
    if req.signer is None and req.sigstore_key is None and not req.verify_bundle:
        raise UsageError(_("a signer is needed unless the archive's signatures are used"))
    compress.detect(req.archive)  # a clear error for a missing or foreign file first
    trust = load_plan.load_trust(
        req.registries_d,
        req.policy_path,
        req.signer,
        req.gnupg_home,
        sigstore_key=req.sigstore_key,
        passphrase=req.passphrase,
    )
    try:
        if req.verify_bundle:
            # pass 1: every blob and signature checked before anything is sent
            task = _("verify {name}").format(name=req.archive.name)
            _stream(Verifier(host, req, trust, progress, task), progress, task)
        return _load(host, req, trust, progress, started)
    finally:
        trust.close()


def _load(
    host: Host, req: LoadRequest, trust: Trust, progress: Progress, started: float
) -> LoadResult:
    loader = Loader(host, req, trust, progress)
    try:
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


def _stream(loader: _Pass, progress: Progress, task: str) -> None:  # noqa: PLR0912
    req = loader.req
    with compress.open_archive(req.archive) as archive, contextlib.ExitStack() as stack:
        spool: Path | None = None
        started = False
        for info in archive:
            top, _sep, rel = compress.member_name(info, req.archive).partition("/")
            if not started:
                started = True
                if top != req.arch:  # the original: no <arch>/ directory, exit 7
                    raise ValidationError(
                        _("the archive holds {found} images, not {arch}").format(
                            found=top, arch=req.arch
                        )
                    ).as_original(7)
            if top != req.arch:
                raise ValidationError(
                    _("unexpected entry {name} in the archive").format(name=info.name)
                )
            if not info.isfile():
                continue
            if not rel:
                raise ValidationError(
                    _("unexpected entry {name} in the archive").format(name=info.name)
                )
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
                    workdir = stack.enter_context(
                        tempfile.TemporaryDirectory(prefix="podsec-load.")
                    )
                    spool = Path(workdir) / "layout"
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
        elif not loader.planned:  # the original: no index.json, exit 8
            raise ValidationError(
                _("{path}: the archive holds no image blobs").format(path=req.archive)
            ).as_original(8)
    progress.finish(task)


def _blob_total(loader: _Pass) -> int:
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


def _load_layout(loader: _Pass, layout: Path) -> None:
    """Push from an unpacked layout (the original's archives)."""
    try:
        contents = oci.Layout.open(layout, loader.req.arch).contents
    except ValidationError as exc:  # the original: index.json missing or unreadable, exit 8
        raise exc.as_original(8) from None
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
