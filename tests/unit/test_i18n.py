"""Every message wrapped in _() has a Russian translation."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _msgcheck():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("msgcheck", ROOT / "scripts/msgcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_message_is_translated() -> None:
    mc = _msgcheck()
    have = mc.translations(ROOT / "po")
    missing = {m: loc for m, loc in mc.messages(ROOT / "src").items() if m not in have}
    assert missing == {}, "run scripts/msgcheck.py and add the entries to po/ru/<area>.po"


def test_placeholders_survive_translation() -> None:
    import re

    mc = _msgcheck()
    have = mc.translations(ROOT / "po")
    for msgid, msgstr in have.items():
        if not msgid:
            continue
        assert set(re.findall(r"\{[^}]*\}", msgid)) == set(re.findall(r"\{[^}]*\}", msgstr)), msgid
