#!/usr/bin/env python3
"""List messages wrapped in _() under src/ that have no Russian translation.

Prints ready-to-fill .po entries (msgstr "") with their source location; exit 1 when any
message is missing. Usage: scripts/msgcheck.py [SRC_DIR [PO_DIR]]
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _msgfmt():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("podsec_msgfmt", ROOT / "scripts" / "msgfmt.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def messages(src: Path) -> dict[str, str]:
    """{message: "file:line"} of every _("literal") call."""
    found: dict[str, str] = {}
    for path in sorted(src.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "_"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.setdefault(node.args[0].value, f"{path.relative_to(src.parent)}:{node.lineno}")
    return found


def translations(po_dir: Path, lang: str = "ru") -> dict[str, str]:
    fmt = _msgfmt()
    merged: dict[str, str] = {}
    for po in sorted((po_dir / lang).glob("*.po")):
        merged.update(fmt.parse_po(po))
    return merged


def po_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def main() -> int:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "src"
    po_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "po"
    have = translations(po_dir)
    missing = {m: loc for m, loc in messages(src).items() if m not in have}
    for message, loc in missing.items():
        print(f"#: {loc}\nmsgid {po_quote(message)}\nmsgstr \"\"\n")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
