"""signedIdentity matching: containers/image's policy_reference_match tables, row by row."""

from __future__ import annotations

from typing import Any

import pytest

from podsec.trust import identity, reference
from tests.conformance.tables import rows


@pytest.mark.parametrize("row", rows("identity_match"))
def test_identity_match(row: dict[str, Any]) -> None:
    image = reference.parse_normalized(row["image"]) if row["image"] is not None else None
    assert identity.matches(row["rule"], image, row["signature"]) is row["result"]


@pytest.mark.parametrize("row", rows("identity_repo_digest_or_exact_values"))
def test_repo_digest_or_exact_values(row: dict[str, Any]) -> None:
    image = reference.parse_normalized(row["image"])
    signed = reference.parse_normalized(row["signature"])
    assert identity.repo_digest_or_exact(image, signed) is row["result"]


@pytest.mark.parametrize("row", rows("identity_remap_prefix_match"))
def test_remap_prefix_match(row: dict[str, Any]) -> None:
    name = reference.parse_normalized(row["ref"]).name
    assert identity._prefix_matches(name, row["prefix"]) is row["expected"]


@pytest.mark.parametrize("row", rows("identity_remap_rewrite"))
def test_remap_rewrite(row: dict[str, Any]) -> None:
    got = identity.remap(reference.parse_normalized(row["ref"]), row["prefix"], row["signedPrefix"])
    assert (str(got) if got is not None else None) == row["expected"]
