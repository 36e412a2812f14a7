"""A reader for the Go composite literals containers/image writes its test tables in.

Used only by ``port.py`` to turn ``*_test.go`` tables into the JSON data files of
``tests/conformance/data`` (the data is committed; this is how it was made). It reads
string literals (interpreted and raw), ``+`` concatenation, ``strings.Repeat``, type
conversions such as ``digest.Digest("…")``, ``nil``/``true``/``false``, numbers, and
``{…}`` literals with or without keys. Anything else becomes ``("call"|"ident", …)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<raw>`[^`]*`)
  | (?P<str>"(?:\\.|[^"\\\n])*")
  | (?P<rune>'(?:\\.|[^'\\])')
  | (?P<num>-?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<punct>\.\.\.|:=|==|!=|[{}\[\]():,+&*.=]|\S)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class Ident:
    name: str


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]


def _unquote(lit: str) -> str:
    if lit.startswith("`"):
        return lit[1:-1]
    body = lit[1:-1]
    out, i = [], 0
    simple = {
        "n": "\n",
        "t": "\t",
        "r": "\r",
        "\\": "\\",
        '"': '"',
        "'": "'",
        "a": "\a",
        "b": "\b",
        "f": "\f",
        "v": "\v",
    }
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        n = body[i + 1]
        if n in simple:
            out.append(simple[n])
            i += 2
        elif n == "x":
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
        elif n == "u":
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        elif n == "U":
            out.append(chr(int(body[i + 2 : i + 10], 16)))
            i += 10
        elif n.isdigit():
            out.append(chr(int(body[i + 1 : i + 4], 8)))
            i += 4
        else:
            raise ValueError(f"escape \\{n}")
    return "".join(out)


def tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"cannot tokenize at {text[pos : pos + 40]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append((kind, m.group()))
    return out


class Reader:
    def __init__(self, text: str, constants: dict[str, Any] | None = None):
        self.toks = tokens(text)
        self.i = 0
        self.constants = constants or {}

    def peek(self, k: int = 0) -> tuple[str, str]:
        return self.toks[self.i + k] if self.i + k < len(self.toks) else ("eof", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok[0] == "eof":
            raise ValueError("unexpected end of input")
        if value is not None and tok[1] != value:
            raise ValueError(f"expected {value!r}, got {tok!r} at token {self.i}")
        self.i += 1
        return tok

    def skip_type(self) -> None:
        """Skip a type expression before a composite literal (``[]struct{…}``, ``mSA``)."""
        while True:
            kind, val = self.peek()
            if val in ("[", "]", "*", "&", "...") or val == "map":
                self.take()
            elif kind == "ident" and val in ("struct", "interface"):
                self.take()
                self._skip_braces()
                return
            elif kind == "ident":
                self.take()
                if self.peek()[1] == "[":  # generic instantiation
                    self._skip_brackets()
                return
            elif kind == "num":
                self.take()
            else:
                return

    def _skip_braces(self) -> None:
        depth = 0
        while True:
            _k, v = self.take()
            if v == "{":
                depth += 1
            elif v == "}":
                depth -= 1
                if depth == 0:
                    return

    def _skip_brackets(self) -> None:
        depth = 0
        while True:
            _k, v = self.take()
            if v == "[":
                depth += 1
            elif v == "]":
                depth -= 1
                if depth == 0:
                    return

    def composite(self) -> Any:
        """``{ elements }`` → list, or dict when every element is keyed."""
        self.take("{")
        items: list[Any] = []
        keyed: dict[Any, Any] = {}
        while self.peek()[1] != "}":
            first = self.value()
            if self.peek()[1] == ":":
                self.take(":")
                key = first.name if isinstance(first, Ident) else first
                keyed[key] = self.value()
            else:
                items.append(first)
            if self.peek()[1] == ",":
                self.take(",")
        self.take("}")
        if keyed and items:
            raise ValueError("mixed keyed and positional elements")
        return keyed if keyed else items

    def value(self) -> Any:
        left = self.primary()
        while self.peek()[1] == "+":
            self.take("+")
            right = self.primary()
            left = left + right
        return left

    def primary(self) -> Any:
        kind, val = self.peek()
        if kind in ("str", "raw"):
            self.take()
            return _unquote(val)
        if kind == "num":
            self.take()
            return float(val) if "." in val else int(val)
        if val == "{":
            return self.composite()
        if val in ("[", "&", "*"):
            self.skip_type()
            if self.peek()[1] == "{":
                return self.composite()
            return self.primary()
        if kind == "ident":
            self.take()
            if val in ("nil",):
                return None
            if val in ("true", "false"):
                return val == "true"
            if val in ("map", "struct"):
                self.i -= 1
                self.skip_type()
                return self.composite()
            if self.peek()[1] == "(":
                self.take("(")
                args = []
                while self.peek()[1] != ")":
                    args.append(self.value())
                    if self.peek()[1] == ",":
                        self.take(",")
                self.take(")")
                if val == "strings.Repeat":
                    return args[0] * args[1]
                if val in ("digest.Digest", "string", "sbKeyType", "[]byte") and len(args) == 1:
                    return args[0]
                return Call(val, tuple(args))
            if self.peek()[1] == "{" and val[:1].isupper() is False and val not in self.constants:
                # a named type: mSA{…}, tcase{…}
                return self.composite()
            if self.peek()[1] == "{" and val[:1].isupper():
                return self.composite()
            if val in self.constants:
                return self.constants[val]
            return Ident(val)
        raise ValueError(f"unexpected token {kind} {val!r}")


def table_after(source: str, marker: str, constants: dict[str, Any] | None = None) -> Any:
    """The composite literal that follows ``marker`` in ``source`` (its type skipped)."""
    start = source.index(marker) + len(marker)
    rest = source[start:]
    r = Reader(rest, constants)
    r.skip_type()
    return r.composite()


def string_constants(source: str) -> dict[str, Any]:
    """``name = "…"`` / ``name = digest.Digest("…")`` constants of a Go file."""
    out: dict[str, Any] = {}
    for m in re.finditer(r"^\s*(\w+)\s*(?:\w+\s*)?=\s*(.+)$", source, re.M):
        try:
            value = Reader(m.group(2)).value()
        except (ValueError, IndexError):
            continue
        if isinstance(value, str):
            out[m.group(1)] = value
    return out
