"""Every `madx ... --help` page ends with an Example section: real invocations, one per line, whole
on an 80-column terminal. The commands are taken from the app, so a new command needs its example."""

from __future__ import annotations

import re

import pytest
import typer
from rich.text import Text
from typer.testing import CliRunner

from cli.main import app

GROUP = typer.main.get_command(app)  # the click group typer builds: every registered command, by its name
COMMANDS = sorted(GROUP.commands)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _help(*args: str) -> list[str]:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert result.exit_code == 0, result.output
    return [line.strip() for line in ANSI.sub("", result.output).splitlines()]


def _examples(lines: list[str]) -> list[str]:
    """The lines under the last "Example"/"Examples" heading, up to the next blank line."""
    headings = [i for i, line in enumerate(lines) if line in ("Example", "Examples")]
    assert headings, "no Example section:\n" + "\n".join(lines)
    following = lines[headings[-1] + 1:]
    return following[:following.index("")] if "" in following else following


def test_commands_are_found():
    assert {"run", "add-language", "server", "import-adapterhub"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_help_has_an_example(name):
    shown = _examples(_help(name))
    assert shown and (shown[0] == f"madx {name}" or shown[0].startswith(f"madx {name} ")), shown
    # Every line of the example, as written, is one line on the page: nothing wrapped or joined.
    written = Text.from_markup(GROUP.commands[name].epilog).plain.splitlines()[1:]
    assert [line.strip() for line in written] == shown


def test_root_help_has_an_example():
    shown = _examples(_help())
    assert shown and all(line.startswith("madx ") for line in shown), shown
    assert {line.split()[1] for line in shown} <= set(COMMANDS)  # it shows real commands
