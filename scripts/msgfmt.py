#!/usr/bin/env python3
"""Compile every po/<lang>/*.po into one gettext catalog per language.

Each area keeps its own .po file (po/ru/trust.po, po/ru/monitor.po, ...) so that work on
different areas never edits the same file; they are merged into the single "podsec" domain.
Standard library only: it runs inside the package build as well as from the Makefile.
"""

from __future__ import annotations

import ast
import struct
import sys
from pathlib import Path


def parse_po(path: Path) -> dict[str, str]:
    """Return {msgid: msgstr} of one .po file (no contexts: we use none). A plural entry
    (``msgid_plural`` and ``msgstr[N]``, click's own ngettext strings) is stored as the .mo
    format has it: ``singular\0plural`` → ``form0\0form1\0…``."""
    entries: dict[str, str] = {}
    msgid: list[str] | None = None
    plural: list[str] | None = None
    msgstr: list[str] | None = None
    forms: dict[int, list[str]] = {}
    current: list[str] | None = None
    fuzzy = False

    def flush() -> None:
        if msgid is None:
            return
        key = "".join(msgid)
        if plural is not None:
            key += "\0" + "".join(plural)
            texts = ["".join(forms[i]) for i in sorted(forms)]
            value = "\0".join(texts) if texts and all(texts) else ""
        elif msgstr is not None:
            value = "".join(msgstr)
        else:
            return
        if value and not fuzzy:
            if key in entries and entries[key] != value:
                raise SystemExit(f"{path}: conflicting translations for {key!r}")
            entries[key] = value

    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if line.startswith("#,") and "fuzzy" in line:
            fuzzy = True
        elif line.startswith("msgid_plural "):
            plural = [ast.literal_eval(line[13:])]
            current = plural
        elif line.startswith("msgid "):
            flush()
            fuzzy = fuzzy and msgid is None
            msgid, plural, msgstr, forms = [ast.literal_eval(line[6:])], None, None, {}
            current = msgid
        elif line.startswith("msgstr["):
            index, _sep, text = line[7:].partition("] ")
            forms[int(index)] = [ast.literal_eval(text)]
            current = forms[int(index)]
        elif line.startswith("msgstr "):
            msgstr = [ast.literal_eval(line[7:])]
            current = msgstr
        elif line.startswith('"'):
            if current is None:
                raise SystemExit(f"{path}:{lineno}: string outside an entry")
            current.append(ast.literal_eval(line))
        elif not line:
            flush()
            msgid = plural = msgstr = current = None
            forms = {}
            fuzzy = False
    flush()
    return entries


# Plural-Forms of the languages we ship (gettext's own table)
PLURAL_FORMS = {
    "ru": "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : "
    "n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);",
}


def write_mo(entries: dict[str, str], out: Path) -> None:
    keys = sorted(entries)
    ids = b""
    strs = b""
    offsets: list[tuple[int, int, int, int]] = []
    for key in keys:
        k, v = key.encode(), entries[key].encode()
        offsets.append((len(ids), len(k), len(strs), len(v)))
        ids += k + b"\0"
        strs += v + b"\0"
    n = len(keys)
    key_table = 7 * 4
    value_table = key_table + n * 8
    ids_start = value_table + n * 8
    strs_start = ids_start + len(ids)
    out_bytes = struct.pack("Iiiiiii", 0x950412DE, 0, n, key_table, value_table, 0, 0)
    for o_id, l_id, _, _ in offsets:
        out_bytes += struct.pack("ii", l_id, ids_start + o_id)
    for _, _, o_str, l_str in offsets:
        out_bytes += struct.pack("ii", l_str, strs_start + o_str)
    out_bytes += ids + strs
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(out_bytes)
    tmp.replace(out)


def compile_all(po_root: Path, locale_root: Path) -> list[Path]:
    written = []
    for lang_dir in sorted(p for p in po_root.iterdir() if p.is_dir()):
        header = "Content-Type: text/plain; charset=UTF-8\nLanguage: %s\n" % lang_dir.name
        if lang_dir.name in PLURAL_FORMS:
            header += "Plural-Forms: %s\n" % PLURAL_FORMS[lang_dir.name]
        merged: dict[str, str] = {"": header}
        for po in sorted(lang_dir.glob("*.po")):
            for key, value in parse_po(po).items():
                if key and key in merged and merged[key] != value:
                    raise SystemExit(f"{po}: {key!r} is translated differently in another file")
                if key:
                    merged[key] = value
        out = locale_root / lang_dir.name / "LC_MESSAGES" / "podsec.mo"
        write_mo(merged, out)
        written.append(out)
    return written


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    po = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "po"
    dest = Path(sys.argv[2]) if len(sys.argv) > 2 else root / "src" / "podsec" / "locale"
    for path in compile_all(po, dest):
        print(path)
