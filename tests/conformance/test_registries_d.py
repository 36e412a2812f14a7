"""registries.d: loading, merging, scope lookup and lookaside URLs — containers/image's
docker/registries_d_test.go, row by row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from podsec.errors import PodsecError
from podsec.host.paths import Host
from podsec.trust import reference, view
from podsec.trust import registries_d as rd
from tests.conformance.tables import FIXTURES, rows

FIXTURE_DIR = FIXTURES / "containers-image" / "docker" / "registries.d"
HOME = Path("/home/conformance-user")


def _dir(name: str, tmp: Path) -> Path:
    if name == "fixture":
        return FIXTURE_DIR
    if name == "(empty)":
        return tmp
    return Path(name)


@pytest.mark.parametrize("row", rows("registries_base_url"))
def test_base_url(row: dict[str, Any], tmp_path: Path) -> None:
    ref = reference.parse(row["ref"])
    try:
        conf = rd.load_dir(_dir(row["dir"], tmp_path), builtin=rd.user_builtin(HOME))
        got: str | None = rd.base_url(rd.lookaside_for(conf, str(ref)), ref.path)
    except PodsecError as exc:
        assert "\n" not in exc.message
        got = None
    expected = row["expected"]
    if expected is not None:
        expected = expected.replace("$HOME", str(HOME))
    assert got == expected


def _as_dict(conf: rd.RegistriesD) -> dict[str, Any]:
    def section(s: rd.Section) -> dict[str, str]:
        out = {}
        for key, value in (
            ("lookaside", s.lookaside),
            ("lookaside-staging", s.lookaside_staging),
            ("sigstore", s.sigstore),
            ("sigstore-staging", s.sigstore_staging),
        ):
            if value:
                out[key] = value
        return out

    out: dict[str, Any] = {"docker": {k: section(v) for k, v in conf.docker.items()}}
    if conf.default_docker is not None:
        out["default-docker"] = section(conf.default_docker)
    return out


@pytest.mark.parametrize("row", rows("registries_merge"))
def test_merge(row: dict[str, Any], tmp_path: Path) -> None:
    files = row["files"]
    if files == "fixture":
        path = FIXTURE_DIR
    else:
        path = tmp_path / "registries.d"
        if files is not None:
            path.mkdir()
            for name, text in files.items():
                (path / name).write_text(text)
    try:
        conf = rd.load_dir(path, "registries.d")
    except PodsecError as exc:
        assert not row["ok"]
        for name in row.get("error_names", []):
            assert name in exc.message
        return
    assert row["ok"]
    assert _as_dict(conf) == row["expected"]


def _config(data: dict[str, Any]) -> rd.RegistriesD:
    import yaml

    return rd.parse(yaml.safe_dump(data), "test.yaml")


@pytest.mark.parametrize("row", rows("registries_top_level"))
def test_top_level(row: dict[str, Any]) -> None:
    conf = _config(row["config"])
    for case in row["cases"]:
        got = rd.configured_lookaside(conf, case["input"], write=case["write"]) or ""
        assert got == case["expected"], case


@pytest.mark.parametrize("row", rows("registries_section_top_level"))
def test_section_top_level(row: dict[str, Any]) -> None:
    conf = _config({"default-docker": row["section"]})
    assert conf.default_docker is not None
    assert (conf.default_docker.url(row["write"]) or "") == row["expected"]


@pytest.mark.parametrize("row", rows("registries_storage_url"))
def test_storage_url(row: dict[str, Any]) -> None:
    try:
        got: str | None = rd.storage_url(row["base"], row["digest"], row["index"])
    except PodsecError:
        got = None
    assert got == row["expected"]


@pytest.mark.parametrize("row", rows("registries_builtin_default"))
def test_builtin_default(row: dict[str, Any]) -> None:
    got = view.builtin_lookaside(Host(), HOME, rootless=row["euid"] != 0)
    assert got == row["expected"].replace("$HOME", str(HOME))


@pytest.mark.parametrize("row", rows("registries_dir_path"))
def test_dir_path(row: dict[str, Any], tmp_path: Path) -> None:
    root = tmp_path / row["root"].lstrip("/") if row["root"] else tmp_path
    home = Path("/home/u")
    if row["user_dir"]:
        (root / "home/u/.config/containers/registries.d").mkdir(parents=True)
    host = Host(root)
    _policy, regd = view.paths(host, home)
    expected = row["expected"].replace("$HOME", str(home))
    if row["root"]:
        expected = expected[len(row["root"]) :]
    assert host.unroot(regd) == expected
