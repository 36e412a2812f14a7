"""OCI image layouts with uncompressed, shared blobs, and their integrity checks.

skopeo's ``oci:`` destination always gzips layers, which hides the redundancy between the
images from the archive compressor. So ``save`` copies each image with skopeo into a
``dir:`` copy with decompressed layers and this module moves the blobs into one layout per
architecture: layers stored uncompressed (``application/vnd.oci.image.layer.v1.tar``, so the
layer digest equals the config's diff_id), blobs shared between images, ``index.json``
annotated with ``org.opencontainers.image.ref.name``, and ``podsec-contents.json`` listing
every image with its manifest digest and blobs (what the loader reads first).

With ``keep_original`` (signature-carrying bundles) the published manifest and blobs are kept
byte for byte, because signatures sign the manifest digest.

Kept as one module over 500 lines: one job, reading and writing these layouts (the writer
and the integrity checks share the blob and index rules; the review of issue 13 kept it).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from podsec.errors import ValidationError
from podsec.i18n import _
from podsec.progress import NULL_PROGRESS, Progress

if TYPE_CHECKING:
    from podsec.host import run

OCI_LAYOUT = '{"imageLayoutVersion":"1.0.0"}'
INDEX_MEDIA = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
LIST_MEDIA = (INDEX_MEDIA, "application/vnd.docker.distribution.manifest.list.v2+json")
REF_ANNOTATION = "org.opencontainers.image.ref.name"
CONTENTS = "podsec-contents.json"
FORMAT = "podsec-archive/1"
CHUNK = 1 << 20

_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"\xfd7zXZ\x00": "xz",
    b"BZh": "bzip2",
}


def sha256_file(path: Path, progress: Progress = NULL_PROGRESS, task: str = "") -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            if task:
                progress.advance(task, len(chunk))
    return "sha256:" + digest.hexdigest()


def compression_of(path: Path) -> str | None:
    with path.open("rb") as fh:
        head = fh.read(6)
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def _hex(digest: str) -> str:
    algo, _sep, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64:
        raise ValidationError(_("unsupported digest {digest!r}").format(digest=digest))
    return hexpart


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    media_type: str = ""


@dataclass(frozen=True)
class ImageEntry:
    """One image of a layout: its ref name, manifest digest and the blobs it needs."""

    ref: str
    digest: str
    size: int
    media_type: str
    arch: str
    config: Blob
    layers: tuple[Blob, ...]
    source: str = ""
    signatures: tuple[str, ...] = ()  # bundle paths of signature files (with_signatures)

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "ref": self.ref,
            "digest": self.digest,
            "size": self.size,
            "mediaType": self.media_type,
            "arch": self.arch,
            "config": {"digest": self.config.digest, "size": self.config.size},
            "layers": [
                {"digest": b.digest, "size": b.size, "mediaType": b.media_type} for b in self.layers
            ],
        }
        if self.source:
            data["source"] = self.source
        if self.signatures:
            data["signatures"] = list(self.signatures)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> ImageEntry:
        try:
            return cls(
                ref=str(data["ref"]),
                digest=str(data["digest"]),
                size=int(data["size"]),
                media_type=str(data["mediaType"]),
                arch=str(data["arch"]),
                config=Blob(str(data["config"]["digest"]), int(data["config"]["size"])),
                layers=tuple(
                    Blob(str(b["digest"]), int(b["size"]), str(b.get("mediaType", "")))
                    for b in data["layers"]
                ),
                source=str(data.get("source", "")),
                signatures=tuple(str(s) for s in data.get("signatures", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(
                _("{where}: invalid image entry: {err}").format(where=where, err=exc)
            ) from exc


@dataclass(frozen=True)
class Contents:
    """``podsec-contents.json``: what an archive holds (read before any blob)."""

    arch: str
    images: tuple[ImageEntry, ...]
    layers: str = "uncompressed"  # or "original" (signature-carrying bundles)
    keys: tuple[str, ...] = ()  # bundle paths of public keys
    policy: str | None = None  # bundle path of the policy fragment
    extra: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        data: dict[str, Any] = {
            "format": FORMAT,
            "arch": self.arch,
            "layers": self.layers,
            "images": [i.to_json() for i in self.images],
        }
        if self.keys:
            data["keys"] = list(self.keys)
        if self.policy:
            data["policy"] = self.policy
        data.update(self.extra)
        return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def parse(cls, raw: bytes, where: str) -> Contents:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ValidationError(
                _("{where}: not JSON: {err}").format(where=where, err=exc)
            ) from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValidationError(
                _("{where}: unknown contents format").format(where=where),
                hint=_("this archive was written by a newer podsec or is damaged"),
            )
        images = tuple(ImageEntry.from_json(i, where) for i in data.get("images", []))
        known = {"format", "arch", "layers", "images", "keys", "policy"}
        return cls(
            arch=str(data.get("arch", "")),
            images=images,
            layers=str(data.get("layers", "uncompressed")),
            keys=tuple(str(k) for k in data.get("keys", ())),
            policy=data.get("policy"),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def blob_sizes(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for image in self.images:
            sizes[image.digest] = image.size
            for blob in image.blobs:
                sizes[blob.digest] = blob.size
        return sizes


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise ValidationError(_("{what}: {path} is missing").format(what=what, path=path)) from exc
    except ValueError as exc:
        raise ValidationError(
            _("{what}: {path} is not valid JSON").format(what=what, path=path)
        ) from exc


class LayoutWriter:
    """Builds one architecture's layout in ``path`` (created, must not exist)."""

    def __init__(self, path: Path, arch: str):
        self.path = path
        self.arch = arch
        self.blobs = path / "blobs" / "sha256"
        self.blobs.mkdir(parents=True)
        (path / "oci-layout").write_text(OCI_LAYOUT)
        self.images: list[ImageEntry] = []

    # -- blobs ---------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.blobs / _hex(digest)

    def add_bytes(self, data: bytes) -> Blob:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        target = self.blob_path(digest)
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.rename(target)
        return Blob(digest, len(data))

    def _adopt(self, src: Path, expected: str | None, progress: Progress, task: str) -> Blob:
        """Move ``src`` into the blob store, checking its digest; dedup by digest."""
        digest = sha256_file(src, progress, task)
        if expected is not None and digest != expected:
            raise ValidationError(
                _("blob {name}: digest {got} does not match {expected}").format(
                    name=src.name, got=digest, expected=expected
                )
            )
        size = src.stat().st_size
        target = self.blob_path(digest)
        if target.exists():
            src.unlink()
        else:
            src.rename(target)
        return Blob(digest, size)

    def _decompress_into(self, src: Path, kind: str, progress: Progress, task: str) -> Blob:
        tmp = self.blobs / (src.name + ".layer.tmp")
        digest = hashlib.sha256()
        size = 0
        with _Decompressor(src, kind) as reader, tmp.open("wb") as out:
            while chunk := reader.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
                progress.advance(task, len(chunk))
        src.unlink()
        name = "sha256:" + digest.hexdigest()
        target = self.blob_path(name)
        if target.exists():
            tmp.unlink()
        else:
            tmp.rename(target)
        return Blob(name, size, OCI_LAYER)

    # -- images --------------------------------------------------------------------------
    def add_from_dir(  # noqa: PLR0912, PLR0915 - validation steps of one conversion
        self,
        src: Path,
        ref: str,
        source: str = "",
        *,
        keep_original: bool = False,
        progress: Progress = NULL_PROGRESS,
        task: str = "",
    ) -> ImageEntry:
        """Take the image skopeo copied to ``dir:src`` into the layout under ``ref``.

        The blobs are moved (not copied) out of ``src``. Raises ValidationError when the
        copy is inconsistent (digest mismatch, diff_ids that do not match, wrong arch).
        """
        manifest_raw = (src / "manifest.json").read_bytes()
        manifest = json.loads(manifest_raw)
        media = manifest.get("mediaType") or (
            OCI_MANIFEST if manifest.get("config", {}).get("mediaType") == OCI_CONFIG else ""
        )
        if media in LIST_MEDIA or "manifests" in manifest:
            raise ValidationError(
                _("{ref}: skopeo returned a manifest list, not one image").format(ref=ref)
            )
        if manifest.get("schemaVersion") != 2 or "config" not in manifest:
            raise ValidationError(
                _("{ref}: unsupported manifest (schema 1 images cannot be archived)").format(
                    ref=ref
                )
            )
        config_desc = manifest["config"]
        config_path = src / _hex(config_desc["digest"])
        config_raw = config_path.read_bytes()
        config = json.loads(config_raw)
        arch = config.get("architecture", "")
        if arch != self.arch:
            raise ValidationError(
                _("{ref}: the image is for {found}, not {arch}").format(
                    ref=ref, found=arch or "?", arch=self.arch
                ),
                hint=_("the source has no {arch} variant of this image").format(arch=self.arch),
            )
        diff_ids = list(config.get("rootfs", {}).get("diff_ids", []))
        layers: list[Blob] = []
        for index, desc in enumerate(manifest.get("layers", [])):
            layer_path = src / _hex(desc["digest"])
            if keep_original:
                blob = self._adopt(layer_path, desc["digest"], progress, task)
                layers.append(Blob(blob.digest, blob.size, desc.get("mediaType", "")))
                continue
            kind = compression_of(layer_path)
            if kind is None:
                blob = self._adopt(layer_path, None, progress, task)
                blob = Blob(blob.digest, blob.size, OCI_LAYER)
            else:
                blob = self._decompress_into(layer_path, kind, progress, task)
            if index < len(diff_ids) and diff_ids[index] != blob.digest:
                raise ValidationError(
                    _("{ref}: layer {n} does not match the image configuration").format(
                        ref=ref, n=index + 1
                    )
                )
            layers.append(blob)
        if len(layers) != len(diff_ids) and not keep_original:
            raise ValidationError(
                _("{ref}: {layers} layers but {ids} diff_ids in the configuration").format(
                    ref=ref, layers=len(layers), ids=len(diff_ids)
                )
            )
        if keep_original:
            cfg = self._adopt(config_path, config_desc["digest"], progress, "")
            config_blob = Blob(cfg.digest, cfg.size, config_desc.get("mediaType", ""))
            manifest_blob = self.add_bytes(manifest_raw)
        elif _already_uncompressed_oci(manifest, layers):
            # nothing to convert: keep the manifest bytes, so the digest stays the source's
            cfg = self.add_bytes(config_raw)
            config_blob = Blob(cfg.digest, cfg.size, OCI_CONFIG)
            media = OCI_MANIFEST
            manifest_blob = self.add_bytes(manifest_raw)
        else:
            cfg = self.add_bytes(config_raw)
            config_blob = Blob(cfg.digest, cfg.size, OCI_CONFIG)
            media = OCI_MANIFEST
            new: dict[str, Any] = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": cfg.digest, "size": cfg.size},
                "layers": [
                    {"mediaType": OCI_LAYER, "digest": b.digest, "size": b.size} for b in layers
                ],
            }
            if manifest.get("annotations"):
                new["annotations"] = manifest["annotations"]
            manifest_blob = self.add_bytes(_dumps(new))
        entry = ImageEntry(
            ref=ref,
            digest=manifest_blob.digest,
            size=manifest_blob.size,
            media_type=media or DOCKER_MANIFEST,
            arch=self.arch,
            config=config_blob,
            layers=tuple(layers),
            source=source,
        )
        self.images = [i for i in self.images if i.ref != ref] + [entry]
        return entry

    def replace(self, entry: ImageEntry) -> None:
        self.images = [entry if i.ref == entry.ref else i for i in self.images]

    def finish(
        self, *, layers: str = "uncompressed", keys: tuple[str, ...] = (), policy: str | None = None
    ) -> Contents:
        """Write ``index.json`` and ``podsec-contents.json``; drop unreferenced blobs."""
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": i.media_type,
                    "digest": i.digest,
                    "size": i.size,
                    "annotations": {REF_ANNOTATION: i.ref},
                    "platform": {"architecture": i.arch, "os": "linux"},
                }
                for i in self.images
            ],
        }
        (self.path / "index.json").write_bytes(_dumps(index))
        contents = Contents(self.arch, tuple(self.images), layers, keys, policy)
        (self.path / CONTENTS).write_bytes(contents.to_bytes())
        used = {_hex(i.digest) for i in self.images} | {
            _hex(b.digest) for i in self.images for b in i.blobs
        }
        for blob in self.blobs.iterdir():
            if blob.name not in used:
                blob.unlink()
        return contents


def _already_uncompressed_oci(manifest: dict[str, Any], layers: list[Blob]) -> bool:
    descs = manifest.get("layers", [])
    return (
        manifest.get("mediaType", OCI_MANIFEST) == OCI_MANIFEST
        and manifest["config"].get("mediaType") == OCI_CONFIG
        and len(descs) == len(layers)
        and all(
            d.get("mediaType") == OCI_LAYER
            and d.get("digest") == b.digest
            and d.get("size") == b.size
            for d, b in zip(descs, layers, strict=True)
        )
    )


class _Decompressor:
    """A context manager giving a binary reader of a compressed file (zstd via the CLI)."""

    def __init__(self, path: Path, kind: str):
        self.path = path
        self.kind = kind
        self._proc: run.Stream | None = None
        self._fh: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        if self.kind == "gzip":
            self._fh = cast(IO[bytes], gzip.open(self.path, "rb"))
        elif self.kind == "xz":
            self._fh = lzma.open(self.path, "rb")
        elif self.kind == "zstd":
            from podsec.host import run

            self._proc = run.stream(["zstd", "-dcq", "--", str(self.path)])
            self._fh = self._proc.stdout
        else:
            import bz2

            self._fh = bz2.open(self.path, "rb")
        assert self._fh is not None
        return self._fh

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()
        if self._proc is not None:
            code = self._proc.wait()
            self._proc.close()
            if code != 0 and exc[0] is None:
                raise ValidationError(
                    _("{path}: zstd could not decompress it").format(path=self.path)
                )


# -- reading and verifying a layout ------------------------------------------------------------


class Layout:
    """An OCI layout on disk (ours or anybody's)."""

    def __init__(self, path: Path, contents: Contents):
        self.path = path
        self.contents = contents

    @classmethod
    def open(cls, path: Path, arch: str = "") -> Layout:
        if not (path / "oci-layout").is_file():
            raise ValidationError(_("{path}: not an OCI image layout").format(path=path))
        contents_path = path / CONTENTS
        if contents_path.is_file():
            return cls(path, Contents.parse(contents_path.read_bytes(), str(contents_path)))
        return cls(path, contents_from_index(path, arch))

    def blob(self, digest: str) -> Path:
        return self.path / "blobs" / "sha256" / _hex(digest)

    def verify(self, progress: Progress = NULL_PROGRESS) -> None:
        """Every referenced blob exists with its digest and size."""
        sizes = self.contents.blob_sizes()
        task = _("verify layout")
        progress.start(task, float(sum(sizes.values())), "B")
        for digest, size in sorted(sizes.items()):
            path = self.blob(digest)
            if not path.is_file():
                raise ValidationError(
                    _("{path}: blob {digest} is missing").format(path=self.path, digest=digest)
                )
            if path.stat().st_size != size:
                raise ValidationError(
                    _("{path}: blob {digest} has the wrong size").format(
                        path=self.path, digest=digest
                    )
                )
            if sha256_file(path, progress, task) != digest:
                raise ValidationError(
                    _("{path}: blob {digest} is corrupt").format(path=self.path, digest=digest)
                )
        progress.finish(task)


def contents_from_index(path: Path, arch: str) -> Contents:
    """Contents of a layout without ``podsec-contents.json`` (the original's archives)."""
    index = _read_json(path / "index.json", "index.json")
    images: list[ImageEntry] = []
    for desc in index.get("manifests", []):
        ref = desc.get("annotations", {}).get(REF_ANNOTATION)
        if not ref:
            continue
        digest = desc["digest"]
        manifest = _read_json(path / "blobs" / "sha256" / _hex(digest), f"manifest of {ref}")
        cfg = manifest.get("config", {})
        config_blob = Blob(cfg.get("digest", ""), int(cfg.get("size", 0)), cfg.get("mediaType", ""))
        image_arch = arch
        cfg_path = path / "blobs" / "sha256" / _hex(config_blob.digest)
        if cfg_path.is_file():
            image_arch = _read_json(cfg_path, f"config of {ref}").get("architecture", arch)
        images.append(
            ImageEntry(
                ref=ref,
                digest=digest,
                size=int(desc.get("size", 0)),
                media_type=desc.get("mediaType", manifest.get("mediaType", OCI_MANIFEST)),
                arch=image_arch,
                config=config_blob,
                layers=tuple(
                    Blob(b["digest"], int(b["size"]), b.get("mediaType", ""))
                    for b in manifest.get("layers", [])
                ),
            )
        )
    return Contents(arch, tuple(images), layers="unknown")
