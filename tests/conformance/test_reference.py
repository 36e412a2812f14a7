"""docker/reference: containers/image's parsing and normalisation tables, row by row.

Each row is a case of containers/image's own tests (see ``source`` in each data file); the
assertion is that podsec's parser answers what containers/image's does.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from podsec.trust import reference as r
from tests.conformance.tables import rows


def _fails(func: Any, text: str) -> bool:
    try:
        func(text)
    except r.ReferenceError:
        return True
    return False


@pytest.mark.parametrize("row", rows("reference_parse"))
def test_parse(row: dict[str, Any]) -> None:
    if row["err"]:
        assert _fails(r.parse_plain, row["input"])
        return
    ref = r.parse_plain(row["input"])
    assert ref.name == row["repository"]
    assert ref.domain == row["domain"]
    assert (ref.tag or "") == row["tag"]
    assert (ref.digest or "") == row["digest"]


@pytest.mark.parametrize("row", rows("reference_parse_named"))
def test_parse_named(row: dict[str, Any]) -> None:
    if row["err"]:
        assert _fails(r.parse_named, row["input"])
        return
    ref = r.parse_named(row["input"])
    assert (ref.domain, ref.path) == (row["domain"], row["name"])


@pytest.mark.parametrize(
    "row", rows("reference_validate_name") + rows("reference_validate_remote_name")
)
def test_validate_name(row: dict[str, Any]) -> None:
    assert _fails(r.parse_normalized, row["input"]) is not row["valid"]


@pytest.mark.parametrize("row", rows("reference_repository_info"))
def test_repository_info(row: dict[str, Any]) -> None:
    names = [row["FamiliarName"], row["FullName"]] + (
        [row["AmbiguousName"]] if row.get("AmbiguousName") else []
    )
    for name in names:
        ref = r.parse_normalized(name)
        assert r.DockerRef(ref.domain, ref.path).familiar() == row["FamiliarName"]
        assert str(ref) == row["FullName"]
        assert ref.domain == row["Domain"]
        assert ref.path == row["RemoteName"]


@pytest.mark.parametrize("row", rows("reference_parse_any"))
def test_parse_any(row: dict[str, Any]) -> None:
    ref = r.parse_any(row["input"])
    assert str(ref) == row["equivalent"]
    if row.get("expected_kind") == "digestReference":
        assert ref.path == "" and ref.digest == row["equivalent"]


@pytest.mark.parametrize("row", rows("reference_normalized_split"))
def test_normalized_split(row: dict[str, Any]) -> None:
    ref = r.parse_normalized(row["input"])
    assert (ref.domain, ref.path) == (row["domain"], row["name"])


@pytest.mark.parametrize("row", rows("reference_parse_docker_ref"))
def test_parse_docker_ref(row: dict[str, Any]) -> None:
    assert str(r.parse_docker_ref(row["input"])) == row["expected"]


_REGEXES = {
    "domain": re.compile(r.DOMAIN, re.ASCII),
    "anchored_name": r._ANCHORED_NAME_RE,
    "reference": r._REFERENCE_RE,
    "identifier": r._IDENTIFIER_RE,
}


@pytest.mark.parametrize(
    "row",
    rows("regexp_domain")
    + rows("regexp_full_name")
    + rows("regexp_reference")
    + rows("regexp_identifier"),
)
def test_regexp(row: dict[str, Any]) -> None:
    m = _REGEXES[row["regex"]].fullmatch(row["input"])
    assert (m is not None) is row["match"]
    if m is not None:
        got = [g or "" for g in m.groups()]
        assert got[: len(row["subs"])] == row["subs"]
