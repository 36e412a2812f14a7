"""podsec.readers: the one reader for config and state files refuses what is not a bounded,
UTF-8, regular file, and bounds the nesting of what it parses."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from podsec import readers
from podsec.readers import FileFormatError


def _special(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    elif kind == "loop":
        path.symlink_to(path.name)
    elif kind == "device":
        return Path("/dev/null")
    return path


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("fifo", "is a FIFO, not a regular file"),
        ("dir", "is a directory, not a regular file"),
        ("socket", "is a socket, not a regular file"),
        ("loop", "symbolic link loop"),
        ("device", "is a character device, not a regular file"),
    ],
)
def test_special_files_are_refused_at_once(tmp_path: Path, kind: str, problem: str) -> None:
    path = _special(tmp_path, kind)
    start = time.monotonic()
    with pytest.raises(FileFormatError) as err:
        readers.read_text(path)
    assert time.monotonic() - start < 1  # a FIFO without a writer must not block
    assert str(err.value) == f"{path}: {problem}"
    assert err.value.problem == problem


def test_missing_is_none_and_shown_name(tmp_path: Path) -> None:
    assert readers.read_bytes(tmp_path / "nope") is None
    (tmp_path / "f").write_text("x")
    assert readers.read_bytes(tmp_path / "f" / "below") is None
    with pytest.raises(FileFormatError, match=r"^/etc/x: is a directory"):
        readers.read_text(tmp_path, shown="/etc/x")


def test_size_bound(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"a" * 101)
    with pytest.raises(FileFormatError, match="larger than 100 bytes"):
        readers.read_bytes(path, limit=100)
    assert readers.read_bytes(path, limit=101) == b"a" * 101


def test_utf8_error_gives_the_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_bytes(b'{"default": "\xc3\x28"}')
    with pytest.raises(FileFormatError, match=r"not valid UTF-8 \(byte 13\)"):
        readers.read_json(path)


@pytest.mark.parametrize("depth", [65, 100_000])
def test_json_nesting_bounded(depth: int) -> None:
    with pytest.raises(FileFormatError, match="nested deeper than 64 levels"):
        readers.parse_json("[" * depth + "]" * depth, "x.json")
    assert readers.parse_json("[" * 63 + "]" * 63, "x.json") is not None


def test_json_syntax_error_position() -> None:
    with pytest.raises(FileFormatError, match=r"^x.json: invalid JSON at line 2, column 1"):
        readers.parse_json('{"a": 1,\n}', "x.json")


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        "a:\n" + "".join(" " * i + "- \n" for i in range(1, 200)),
    ],
)
def test_yaml_nesting_bounded(text: str) -> None:
    with pytest.raises(FileFormatError, match="nested deeper than 64 levels"):
        readers.parse_yaml(text, "x.yaml")


def test_yaml_recursive_alias_and_billion_laughs() -> None:
    with pytest.raises(FileFormatError, match="recursive alias"):
        readers.parse_yaml("a: &a [1, *a]\n", "x.yaml")
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(FileFormatError, match="too many nodes through aliases"):
        readers.parse_yaml("\n".join(lines), "x.yaml")
    # plain aliases (kubectl accepts them) still work
    assert readers.parse_yaml("a: &x {b: 1}\nc: *x\n", "x.yaml") == {"a": {"b": 1}, "c": {"b": 1}}


def test_yaml_keeps_the_callers_constructors() -> None:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!up", lambda loader, node: str(node.value).upper())
    assert readers.parse_yaml("a: !up b\n", "x.yaml", loader=Loader) == {"a": "B"}
    assert readers.parse_yaml("---\na: 1\n---\nb: 2\n", "x", all_documents=True) == [
        {"a": 1},
        {"b": 2},
    ]
    with pytest.raises(FileFormatError, match=r"invalid YAML at line 1, column 8"):
        readers.parse_yaml("a: [1, ", "x.yaml")


def test_toml_bounded() -> None:
    with pytest.raises(FileFormatError, match="nested deeper than 64 levels"):
        readers.parse_toml("a = " + "[" * 5000 + "]" * 5000, "podsec.toml")
    with pytest.raises(FileFormatError, match="invalid TOML"):
        readers.parse_toml("[u7s", "podsec.toml")
