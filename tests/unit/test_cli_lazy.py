"""``podsec --help`` and ``podsec monitor --help`` list their commands without importing
them (issue 17: every ``--help`` starts in <= 150 ms), from help texts that are the very ones
the commands show."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from podsec.cli import main, monitor, monitor_options

PROBE = """
import json, sys
from podsec.cli import main
try:
    main.invoke(main.cli, "podsec", sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.startswith("podsec.cli."))))
"""


def _imported_by(*args: str) -> set[str]:
    r = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    return set(json.loads(r.stdout.splitlines()[-1]))


def test_podsec_help_imports_no_group() -> None:
    loaded = _imported_by("--help")
    groups = {spec.partition(":")[0] for spec in main.GROUPS.values()}
    assert loaded & groups == set()


def test_monitor_help_imports_no_plugin() -> None:
    loaded = _imported_by("monitor", "--help")
    assert "podsec.cli.monitor" in loaded
    assert {m for m in loaded if m.startswith("podsec.cli.monitor_")} == {
        "podsec.cli.monitor_options"
    }


@pytest.mark.parametrize("name", sorted(main.GROUPS))
def test_the_listed_help_is_the_groups_own(name: str) -> None:
    assert main._load(main.GROUPS[name]).help == main.GROUP_HELP[name]


def test_every_monitor_command_is_listed_with_its_own_help() -> None:
    group = monitor.monitor
    assert isinstance(group, main.LazyGroup)
    ctx = click.Context(group, info_name="monitor")
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.help == monitor_options.HELP.get(name, command.help)
        if name != "install":
            assert name in monitor_options.HELP
