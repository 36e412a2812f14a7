"""registry.compress: tar + xz/zstd through host.run.stream (write, read back, damage)."""

import os
from pathlib import Path

import pytest

from podsec.errors import PodsecError
from podsec.registry import compress


def _members(tmp_path: Path) -> list[compress.Member]:
    out = [compress.Member("data")]
    for n in range(3):
        src = tmp_path / f"f{n}"
        src.write_bytes(os.urandom(4096) * (n + 1))
        out.append(compress.Member(f"data/f{n}", src, src.stat().st_size))
    return out


def _read_back(path: Path) -> dict[str, bytes]:
    got = {}
    with compress.open_archive(path) as archive:
        for info in archive:
            if info.isfile():
                got[info.name] = archive.extract(info).read()
        archive.check_end()
    return got


@pytest.mark.parametrize(
    ("codec", "threads", "splits"),
    [(compress.XZ, 2, (2,)), (compress.XZ, 1, ()), (compress.ZSTD, 1, ())],
)
def test_round_trip(
    tmp_path: Path, codec: compress.Codec, threads: int, splits: tuple[int, ...]
) -> None:
    members = _members(tmp_path)
    out = tmp_path / f"a{codec.suffix}"
    compress.write_archive(
        members, out, codec.with_level(1), arch="amd64", threads=threads, splits=splits
    )
    assert compress.detect(out).name == codec.name
    assert _read_back(out) == {m.name: m.source.read_bytes() for m in members if m.source}
    assert not list(tmp_path.glob("*.part*"))


def test_truncated_archive_names_the_decoder_error(tmp_path: Path) -> None:
    out = tmp_path / "a.tar.xz"
    compress.write_archive(
        _members(tmp_path), out, compress.XZ.with_level(1), arch="amd64", threads=1
    )
    data = out.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    with pytest.raises(PodsecError, match="corrupt or truncated") as err:
        _read_back(out)
    # the reason is xz's own last stderr line, kept by the runner's stream
    assert "xz: " in err.value.message
