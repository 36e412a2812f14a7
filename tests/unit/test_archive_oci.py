"""OCI layout writer/reader and the streaming tar codec (no registry, no network)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from podsec.errors import PodsecError, UsageError, ValidationError
from podsec.registry import compress, oci


def _layer(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _dir_copy(path: Path, layers: list[bytes], *, arch: str = "amd64", gz: bool = True) -> Path:
    """What ``skopeo copy … dir:PATH`` leaves: manifest.json + blobs named by hex digest."""
    path.mkdir(parents=True)
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [_digest(x) for x in layers]},
        }
    ).encode()
    (path / _digest(config)[7:]).write_bytes(config)
    descs = []
    for layer in layers:
        blob = gzip.compress(layer, mtime=0) if gz else layer
        (path / _digest(blob)[7:]).write_bytes(blob)
        descs.append(
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"
                if gz
                else oci.OCI_LAYER,
                "digest": _digest(blob),
                "size": len(blob),
            }
        )
    manifest = {
        "schemaVersion": 2,
        "mediaType": oci.DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": _digest(config),
            "size": len(config),
        },
        "layers": descs,
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def test_layout_stores_uncompressed_shared_blobs(tmp_path: Path) -> None:
    base, a, b = _layer("bin/x", b"x" * 5000), _layer("a", b"a"), _layer("b", b"b")
    writer = oci.LayoutWriter(tmp_path / "amd64", "amd64")
    ea = writer.add_from_dir(_dir_copy(tmp_path / "ca", [base, a]), "p10/a:1")
    eb = writer.add_from_dir(_dir_copy(tmp_path / "cb", [base, b]), "p10/b:1")
    contents = writer.finish()
    # layers uncompressed: digest == diff_id, shared base stored once
    assert ea.layers[0].digest == eb.layers[0].digest == _digest(base)
    assert all(layer.media_type == oci.OCI_LAYER for layer in ea.layers)
    blobs = sorted(p.name for p in (tmp_path / "amd64" / "blobs" / "sha256").iterdir())
    assert len(blobs) == 1 + 2 + 2 * 2  # base, a, b, 2 configs, 2 manifests
    index = json.loads((tmp_path / "amd64" / "index.json").read_text())
    assert [m["annotations"][oci.REF_ANNOTATION] for m in index["manifests"]] == [
        "p10/a:1",
        "p10/b:1",
    ]
    manifest = json.loads(oci.Layout.open(tmp_path / "amd64").blob(ea.digest).read_bytes())
    assert manifest["mediaType"] == oci.OCI_MANIFEST
    # the contents file round-trips and matches what the reader derives from index.json
    parsed = oci.Contents.parse(contents.to_bytes(), "x")
    assert [i.digest for i in parsed.images] == [ea.digest, eb.digest]
    derived = oci.contents_from_index(tmp_path / "amd64", "amd64")
    assert [(i.ref, i.digest) for i in derived.images] == [(i.ref, i.digest) for i in parsed.images]
    oci.Layout.open(tmp_path / "amd64").verify()


def test_uncompressed_oci_source_keeps_its_digest(tmp_path: Path) -> None:
    src = _dir_copy(tmp_path / "c", [_layer("a", b"a")], gz=False)
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["mediaType"] = oci.OCI_MANIFEST
    manifest["config"]["mediaType"] = oci.OCI_CONFIG
    raw = json.dumps(manifest, indent=2).encode()
    (src / "manifest.json").write_bytes(raw)
    entry = oci.LayoutWriter(tmp_path / "l", "amd64").add_from_dir(src, "x:1")
    assert entry.digest == _digest(raw)


def test_wrong_arch_and_bad_layers_are_refused(tmp_path: Path) -> None:
    writer = oci.LayoutWriter(tmp_path / "arm64", "arm64")
    with pytest.raises(ValidationError, match="is for amd64, not arm64"):
        writer.add_from_dir(_dir_copy(tmp_path / "c1", [_layer("a", b"a")]), "x:1")
    src = _dir_copy(tmp_path / "c2", [_layer("a", b"a")], arch="arm64")
    config_path = next(p for p in src.iterdir() if b"diff_ids" in p.read_bytes()[:200])
    config = json.loads(config_path.read_bytes())
    config["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    config_path.write_bytes(json.dumps(config).encode())
    with pytest.raises(ValidationError, match="does not match the image configuration"):
        writer.add_from_dir(src, "y:1")


def test_verify_finds_a_damaged_blob(tmp_path: Path) -> None:
    writer = oci.LayoutWriter(tmp_path / "amd64", "amd64")
    entry = writer.add_from_dir(_dir_copy(tmp_path / "c", [_layer("a", b"a" * 100)]), "x:1")
    writer.finish()
    layout = oci.Layout.open(tmp_path / "amd64")
    blob = layout.blob(entry.layers[0].digest)
    data = bytearray(blob.read_bytes())
    data[600] ^= 1
    blob.write_bytes(bytes(data))
    with pytest.raises(ValidationError, match="corrupt"):
        layout.verify()


@pytest.mark.parametrize("codec", [compress.XZ.with_level(1), compress.ZSTD.with_level(3)])
def test_archive_stream_round_trip(tmp_path: Path, codec: compress.Codec) -> None:
    (tmp_path / "a").write_bytes(b"alpha" * 1000)
    (tmp_path / "b").write_bytes(b"beta")
    members = [
        compress.Member("amd64/"),
        compress.Member("amd64/a", tmp_path / "a", 5000),
        compress.Member("amd64/b", tmp_path / "b", 4),
    ]
    out = tmp_path / f"x{codec.suffix}"
    compress.write_archive(members, out, codec, arch="amd64", splits=[1])
    if codec.name == "xz":  # two concatenated xz streams, one tar for plain tar
        listing = subprocess.run(
            ["tar", "-tJf", str(out)], capture_output=True, text=True, check=True
        ).stdout.split()
        assert listing == ["amd64/", "amd64/a", "amd64/b"]
    assert compress.detect(out) == codec or compress.detect(out).name == codec.name
    with compress.open_archive(out) as archive:
        got = {i.name: archive.extract(i).read() for i in archive if i.isfile()}
        archive.check_end()
    assert got == {"amd64/a": b"alpha" * 1000, "amd64/b": b"beta"}


def test_truncated_and_foreign_archives(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(bytes(range(256)) * 400)
    out = tmp_path / "x.tar.xz"
    compress.write_archive(
        [compress.Member("amd64/a", tmp_path / "a", 102400)],
        out,
        compress.XZ.with_level(0),
        arch="amd64",
    )
    cut = tmp_path / "cut.tar.xz"
    cut.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    with (
        pytest.raises(ValidationError, match="corrupt or truncated"),
        compress.open_archive(cut) as archive,
    ):
        for info in archive:
            archive.extract(info).read()
        archive.check_end()
    junk = tmp_path / "junk"
    junk.write_bytes(b"not an archive" * 50)
    with pytest.raises(ValidationError, match="not an xz, zstd or tar archive"):
        compress.detect(junk)
    with pytest.raises(PodsecError, match="no such archive"):
        compress.detect(tmp_path / "missing.tar.xz")


def test_level_range() -> None:
    with pytest.raises(UsageError):
        compress.XZ.with_level(12)
    assert compress.ZSTD.with_level(22).compress_argv("amd64", 2)[2] == "--ultra"
    argv = compress.XZ.compress_argv("amd64", 1, dict_mib=128)
    assert "--x86" in argv and "--lzma2=preset=9,nice=16,depth=4,dict=128MiB" in argv
    assert "--arm64" in compress.XZ.compress_argv("arm64", 2)


def test_segmented_xz_decodes_in_parallel_and_checks_both(tmp_path: Path) -> None:
    """Our .tar.xz has one xz stream per segment: both are decoded at once, and damage in
    the second one is still reported."""
    (tmp_path / "a").write_bytes(bytes(range(256)) * 4000)
    (tmp_path / "b").write_bytes(b"beta-" * 40000)
    members = [
        compress.Member("amd64/a", tmp_path / "a", 1024000),
        compress.Member("amd64/b", tmp_path / "b", 200000),
    ]
    out = tmp_path / "x.tar.xz"
    compress.write_archive(members, out, compress.XZ.with_level(1), arch="amd64", splits=[0])
    with compress.open_archive(out) as archive:
        assert archive._decoded._rest is not None  # two decoders
        got = {i.name: archive.extract(i).read() for i in archive if i.isfile()}
        archive.check_end()
    assert got["amd64/b"] == b"beta-" * 40000
    data = bytearray(out.read_bytes())
    data[-200] ^= 0x55  # inside the second stream
    bad = tmp_path / "bad.tar.xz"
    bad.write_bytes(bytes(data))
    with (
        pytest.raises(ValidationError, match="corrupt or truncated"),
        compress.open_archive(bad) as archive,
    ):
        for info in archive:
            archive.extract(info).read()
        archive.check_end()
