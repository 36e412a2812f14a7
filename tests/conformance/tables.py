"""Loading the ported containers/image tables (``data/*.json``) for the runners."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"
FIXTURES = Path(__file__).parent / "fixtures"


def rows(name: str) -> list[Any]:
    """``pytest.param`` per row of table ``name``, ids naming the table and row."""
    doc = json.loads((DATA / f"{name}.json").read_text())
    return [pytest.param(row, id=f"{name}[{i}]:{_label(row)}") for i, row in enumerate(doc["rows"])]


def _label(row: Any) -> str:
    if isinstance(row, dict):
        for key in ("name", "input", "case", "Reference", "RemoteName"):
            if key in row and isinstance(row[key], str):
                return row[key][:60]
    return ""
