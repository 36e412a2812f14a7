"""Man pages (EN, RU) and shell completion generated from the click tree: one page for every
program of pyproject's [project.scripts] and every visible unified command, rendered by man
without a warning, and completion scripts that really complete."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import click
import pytest

from podsec.cli import manpage
from podsec.cli.main import cli
from tests.fixtures.require import missing

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = REPO / "pyproject.toml"
VENV_BIN = REPO / ".venv/bin"


def _generate(out: Path, lang: str, *extra: str) -> None:
    env = {**os.environ, "LANGUAGE": lang, "LC_ALL": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run(
        [sys.executable, "-m", "podsec.cli.manpage", f"--pyproject={PYPROJECT}", *extra],
        env=env,
        check=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("man")
    _generate(out, "en", f"--man={out / 'en'}", f"--completion={out / 'completion'}")
    _generate(out, "ru", f"--man={out / 'ru'}")
    return {"en": out / "en", "ru": out / "ru", "completion": out / "completion"}


def _unified_paths() -> set[str]:
    """Every visible command of the unified tree, walked here with click's own API."""
    found: set[str] = set()

    def visit(command: click.Command, path: list[str]) -> None:
        found.add("-".join(path))
        if isinstance(command, click.Group):
            ctx = click.Context(command, info_name=path[-1])
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    visit(sub, [*path, name])

    visit(cli, ["podsec"])
    return found


def test_a_page_for_every_program_and_every_unified_command(pages: dict[str, Path]) -> None:
    scripts = set(tomllib.loads(PYPROJECT.read_text())["project"]["scripts"])
    expected = scripts | _unified_paths()
    for lang in ("en", "ru"):
        have = {p.stem for p in pages[lang].glob("*.1")}
        assert have == expected, (expected - have, have - expected)
    # an original name that is also the unified path of the same command: one page
    assert "podsec-u7s-kubeadm" in scripts and "podsec-u7s-kubeadm" in _unified_paths()
    assert {"podsec-create-policy", "podsec-policy-create", "podsec-inotify-check-policy"} <= have


def _render(page: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MANWIDTH": "80", "LC_ALL": "C.UTF-8", "MAN_KEEP_FORMATTING": ""}
    return subprocess.run(
        ["man", "--warnings=all", "-E", "UTF-8", "-l", str(page)],
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_every_page_renders_without_warnings(pages: dict[str, Path], lang: str) -> None:
    for tool in ("man", "groff", "lexgrog"):
        if shutil.which(tool) is None:
            missing(f"program {tool} (man-db, groff-base) is not installed")
    for page in sorted(pages[lang].glob("*.1")):
        r = _render(page)
        assert r.returncode == 0 and r.stderr == "", f"{page.name}: {r.stderr}"
        assert page.stem.upper() in r.stdout
        strict = subprocess.run(
            ["groff", "-man", "-ww", "-z", "-K", "utf8", "-Tutf8", str(page)],
            text=True,
            capture_output=True,
            check=False,
        )
        assert strict.stderr == "", f"{page.name}: {strict.stderr}"
        # whatis/apropos can parse the NAME section (lintian's bad-whatis-entry)
        whatis = subprocess.run(["lexgrog", str(page)], text=True, capture_output=True)
        assert whatis.returncode == 0 and f'"{page.stem} - ' in whatis.stdout, whatis.stdout


def test_pages_describe_the_command(pages: dict[str, Path]) -> None:
    text = _render(pages["en"] / "podsec-create-policy.1").stdout
    assert "podsec-create-policy [OPTIONS] REGISTRY_IP" in text
    assert "--trust FINGERPRINT|sha256:HEX" in text and "Pin for the published policy" in text
    assert "EXAMPLES" in text and "podsec policy create 192.168.1.10" in text
    assert "podsec-policy-create(1)" in text  # the unified twin
    group = _render(pages["en"] / "podsec-rbac.1").stdout
    assert "COMMANDS" in group and "podsec-rbac-bind(1)" in group
    assert "SEE ALSO" in group and "podsec(1)" in group


def test_russian_pages_are_russian(pages: dict[str, Path]) -> None:
    text = _render(pages["ru"] / "podsec-create-policy.1").stdout
    for heading in ("ИМЯ", "СИНТАКСИС", "ОПИСАНИЕ", "ПАРАМЕТРЫ", "ПРИМЕРЫ", "СМОТРИТЕ ТАКЖЕ"):
        assert heading in text
    assert re.search(r"Настроить доверие", text), text[:800]
    assert "Руководство podsec" in text


def _complete(script: Path, words: list[str]) -> list[str]:
    """Source the generated bash completion and ask it, as bash does on Tab."""
    prog = words[0]
    func = f"_{prog.replace('-', '_')}_completion"
    body = textwrap.dedent(
        f"""
        source {script}
        COMP_WORDS=({" ".join(words)})
        COMP_CWORD={len(words) - 1}
        {func} {prog}
        printf '%s\\n' "${{COMPREPLY[@]}}"
        """
    )
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    r = subprocess.run(
        ["bash", "-c", body], env=env, text=True, capture_output=True, timeout=60, check=True
    )
    return r.stdout.split()


def test_bash_completion_completes(pages: dict[str, Path]) -> None:
    bash = pages["completion"] / "bash"
    scripts = set(tomllib.loads(PYPROJECT.read_text())["project"]["scripts"])
    assert {p.name for p in bash.iterdir()} == scripts
    assert "policy" in _complete(bash / "podsec", ["podsec", "pol"])
    assert _complete(bash / "podsec", ["podsec", "policy", "cr"]) == ["create"]
    assert "--trust" in _complete(bash / "podsec-create-policy", ["podsec-create-policy", "--tr"])
    # a Nagios plugin: completion must not turn into its UNKNOWN exit
    assert "--json" in _complete(
        bash / "podsec-inotify-check-policy", ["podsec-inotify-check-policy", "--js"]
    )


def test_zsh_completion_is_valid_zsh(pages: dict[str, Path]) -> None:
    zsh = pages["completion"] / "zsh"
    assert (zsh / "_podsec").read_text().startswith("#compdef podsec")
    if shutil.which("zsh") is None:
        missing("program zsh is not installed")
    for script in zsh.iterdir():
        subprocess.run(["zsh", "-n", str(script)], check=True)


def test_capture_needs_no_module_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entry points are followed to the click command they run, however they are written:
    a module nobody listed, an entry that wraps main() in its own try/except."""
    (tmp_path / "movedmod.py").write_text(
        textwrap.dedent(
            """
            import click, sys

            @click.command(help="Do the thing. More words.")
            @click.option("--flag", is_flag=True, help="A flag.")
            def thing(flag):
                pass

            def entry():
                try:
                    thing.main(prog_name="podsec-thing")
                except Exception:
                    sys.exit(3)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    command, prog = manpage.capture(manpage.load_entry("movedmod:entry"), "podsec-thing")
    assert prog == "podsec-thing" and command.name == "thing"
    page = manpage.render(
        manpage.Page("podsec-thing", "podsec-thing", command), version="1", date="2026-01-01"
    )
    assert "podsec\\-thing \\- Do the thing\n" in page and "\\fB\\-\\-flag\\fR" in page
