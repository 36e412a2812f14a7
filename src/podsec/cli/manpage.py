"""Man pages and shell completion scripts, generated from the click command tree.

A build-time tool (the packages run it; nothing at run time imports it)::

    python -m podsec.cli.manpage --pyproject pyproject.toml --man DIR [--completion DIR]

The programs come from ``[project.scripts]`` of ``pyproject.toml`` and the commands from the
click tree itself: each console script is run up to the point where it hands its click command
to ``main()`` (``capture``), so a module that moves or an entry point written differently needs
no change here. Pages: one per unified command (``podsec-policy-create.1``, every group and leaf
not hidden) and one per original program name (``podsec-create-policy.1``); a page whose name
is both (``podsec-u7s-kubeadm``) is written once. The language is the process's (``LANGUAGE``):
run once with ``LANGUAGE=ru`` for the Russian pages.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import re
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from click.shell_completion import get_completion_class

from podsec.i18n import _


class _Captured(BaseException):
    """Raised from a patched ``main()``: carries the command a console script would run.

    A BaseException, so the entry points' ``except Exception`` (internal errors → one line)
    cannot swallow it.
    """

    def __init__(self, command: click.Command, prog_name: str | None):
        super().__init__(prog_name)
        self.command = command
        self.prog_name = prog_name


def capture(entry: Callable[[], object], prog: str) -> tuple[click.Command, str]:
    """The click command and program name that console script ``entry`` runs."""

    def fake_main(self: click.Command, *args: Any, **kwargs: Any) -> Any:
        raise _Captured(self, kwargs.get("prog_name"))

    saved_main, saved_argv = click.Command.main, sys.argv
    click.Command.main = fake_main  # type: ignore[method-assign]
    sys.argv = [prog]
    try:
        entry()
    except _Captured as got:
        return got.command, got.prog_name or prog
    finally:
        click.Command.main = saved_main  # type: ignore[method-assign]
        sys.argv = saved_argv
    raise RuntimeError(f"{prog}: the entry point never called click's main()")


def scripts(pyproject: Path) -> dict[str, str]:
    """``[project.scripts]``: program name → ``module:attribute``."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    return dict(data["project"]["scripts"])


def version(pyproject: Path) -> str:
    return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])


def load_entry(spec: str) -> Callable[[], object]:
    module, _sep, attr = spec.partition(":")
    entry = importlib.import_module(module)
    for part in attr.split("."):
        entry = getattr(entry, part)
    assert callable(entry)
    return entry


# ------------------------------------------------------------------------------- the tree
@dataclass
class Page:
    """One man page: a command as a program (``prog``) or a unified path (``podsec a b``)."""

    name: str  # page name: podsec-policy-create
    path: str  # as typed: "podsec policy create"
    command: click.Command
    parent: Page | None = None
    see_also: list[str] = field(default_factory=list)


def _children(command: click.Command, ctx: click.Context) -> Iterator[tuple[str, click.Command]]:
    if not isinstance(command, click.Group):
        return
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is not None and not sub.hidden:
            yield name, sub


def walk(root: click.Command, prog: str) -> list[Page]:
    """Every visible command under ``root``, parents before children."""
    pages: list[Page] = []

    def visit(command: click.Command, path: list[str], parent: Page | None) -> None:
        page = Page("-".join(path), " ".join(path), command, parent)
        pages.append(page)
        ctx = click.Context(command, info_name=path[-1])
        for name, sub in _children(command, ctx):
            visit(sub, [*path, name], page)

    visit(root, [prog], None)
    return pages


def pages_for(pyproject: Path) -> list[Page]:
    """The unified tree (from the ``podsec`` script) and one page per other program name."""
    progs = scripts(pyproject)
    found = {prog: capture(load_entry(spec), prog) for prog, spec in sorted(progs.items())}
    unified, _prog = found.pop("podsec")
    pages = walk(unified, "podsec")
    by_name = {p.name: p for p in pages}
    by_command: dict[int, Page] = {}
    for p in pages:
        by_command.setdefault(id(p.command), p)
    for prog, (command, _name) in found.items():
        twin = by_command.get(id(command))
        if prog in by_name:
            if by_name[prog].command is not command:
                raise RuntimeError(f"man page {prog} would describe two different commands")
            continue
        page = Page(prog, prog, command)
        pages.append(page)
        by_name[prog] = page
        if twin is not None:
            page.see_also.append(twin.name)
            twin.see_also.append(prog)
    return pages


# ------------------------------------------------------------------------------- roff
def esc(text: str) -> str:
    """Text safe for roff: backslashes, hyphens as minus signs, no leading control chars."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line[:1] in (".", "'") else line for line in text.split("\n"))


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text.strip("\n")) if p.strip()]


def _render_text(text: str) -> list[str]:
    """click help text: plain paragraphs are filled; indented ones (commands) and ``\\b``
    paragraphs keep their lines."""
    out: list[str] = []
    for para in _paragraphs(text):
        lines = para.split("\n")
        if lines[0].strip() == "\b":
            out += [".PP", ".nf", *(esc(line) for line in lines[1:]), ".fi"]
        elif all(line.startswith(" ") for line in lines):
            out += [".PP", ".RS 4", ".nf", *(esc(line.strip()) for line in lines), ".fi", ".RE"]
        else:
            out += [".PP", esc(" ".join(line.strip() for line in lines))]
    return out


def _sections_of_epilog(epilog: str) -> list[tuple[str, list[str]]]:
    """``Examples:`` (any heading paragraph ending in ':') opens a section of its own."""
    sections: list[tuple[str, list[str]]] = []
    title = _("NOTES")
    body: list[str] = []
    for para in _paragraphs(epilog):
        head = para.strip()
        if "\n" not in head and head.endswith(":") and not para.startswith(" "):
            if body:
                sections.append((title, body))
            title, body = head[:-1].upper(), []
            continue
        body.append(para)
    if body:
        sections.append((title, body))
    return sections


def short_help(command: click.Command) -> str:
    """The first sentence of the help (click's own shortening cuts mid-sentence)."""
    if command.short_help:
        return command.short_help.rstrip(".")
    paras = _paragraphs(command.help or "")
    if not paras:
        return ""
    first = " ".join(line.strip() for line in paras[0].split("\n") if line.strip() != "\b")
    sentence = re.split(r"(?<=[^.])\.(?:\s|$)", first, maxsplit=1)[0].rstrip(".")
    if len(sentence) > 90:
        # a whatis line, not a paragraph: stop before the first list or aside
        head = re.split(r":\s|;\s|\s\(|\s—\s", sentence, maxsplit=1)[0]
        if len(head.split()) >= 3:
            sentence = head
    return sentence


def render(page: Page, *, version: str, date: str) -> str:
    command = page.command
    ctx = click.Context(command, info_name=page.path)
    summary = short_help(command)
    out = [
        r".\" -*- coding: UTF-8 -*-",
        r".\" Generated by podsec.cli.manpage from the click commands; do not edit.",
        f'.TH "{page.name.upper()}" "1" "{date}" "podsec {version}" "{esc(_("podsec manual"))}"',
        ".nh",
        ".ad l",
        f".SH {_('NAME')}",
        f"{esc(page.name)} \\- {esc(summary)}",
        f".SH {_('SYNOPSIS')}",
        f".B {esc(page.path)}",
        esc(" ".join(command.collect_usage_pieces(ctx))),
        f".SH {_('DESCRIPTION')}",
        *_render_text(command.help or summary),
    ]
    options = [
        r
        for p in command.get_params(ctx)
        if isinstance(p, click.Option) and (r := p.get_help_record(ctx)) is not None
    ]
    if options:
        out.append(f".SH {_('OPTIONS')}")
        for opts, help_text in options:
            out += [".TP", f"\\fB{esc(opts)}\\fR", esc(help_text) if help_text else ""]
    subs = list(_children(command, ctx))
    if subs:
        out.append(f".SH {_('COMMANDS')}")
        for name, sub in subs:
            out += [
                ".TP",
                f"\\fB{esc(name)}\\fR",
                esc(short_help(sub) + "."),
                f"{_('See')} \\fB{esc(page.name + '-' + name)}\\fR(1).",
            ]
    if command.epilog:
        for title, paras in _sections_of_epilog(command.epilog):
            out.append(f'.SH "{esc(title)}"')
            out += _render_text("\n\n".join(paras))
    see = sorted({*page.see_also, *([page.parent.name] if page.parent else [])})
    if see:
        out.append(f".SH {_('SEE ALSO')}")
        out.append(",\n".join(f"\\fB{esc(name)}\\fR(1)" for name in see))
    return "\n".join(line for line in out if line != "") + "\n"


def source_date() -> str:
    """The build date: ``SOURCE_DATE_EPOCH`` (reproducible builds) or today."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (
        datetime.datetime.fromtimestamp(int(epoch), datetime.UTC)
        if epoch
        else datetime.datetime.now(datetime.UTC)
    )
    return when.strftime("%Y-%m-%d")


def write_pages(pyproject: Path, outdir: Path) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    ver, date = version(pyproject), source_date()
    written = []
    for page in pages_for(pyproject):
        path = outdir / f"{page.name}.1"
        path.write_text(render(page, version=ver, date=date), encoding="utf-8")
        written.append(path)
    return written


# ------------------------------------------------------------------------------- completion
def complete_var(prog: str) -> str:
    """The environment variable click's ``main()`` reads for ``prog`` (its own rule)."""
    return f"_{prog}_COMPLETE".replace("-", "_").upper()


def write_completions(pyproject: Path, outdir: Path) -> list[Path]:
    """bash → ``bash/<prog>``, zsh → ``zsh/_<prog>`` for every program."""
    written = []
    for prog, spec in sorted(scripts(pyproject).items()):
        command, name = capture(load_entry(spec), prog)
        for shell, filename in (("bash", prog), ("zsh", f"_{prog}")):
            cls = get_completion_class(shell)
            assert cls is not None
            text = cls(command, {}, name, complete_var(name)).source()
            if shell == "zsh" and not text.startswith("#compdef"):
                text = f"#compdef {name}\n\n{text}"
            path = outdir / shell / filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m podsec.cli.manpage", description=__doc__)
    parser.add_argument("--pyproject", type=Path, required=True)
    parser.add_argument("--man", type=Path, help="directory for the man pages (section 1)")
    parser.add_argument("--completion", type=Path, help="directory for bash/ and zsh/ scripts")
    args = parser.parse_args(argv)
    if args.man:
        write_pages(args.pyproject, args.man)
    if args.completion:
        write_completions(args.pyproject, args.completion)
    return 0


if __name__ == "__main__":
    sys.exit(main())
