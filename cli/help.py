"""The "Example" section at the end of every `madx ... --help` page (a command's epilog)."""

from __future__ import annotations

from rich.markup import escape


def examples(*lines: str) -> str:
    """An epilog showing real invocations, one per line, as typed (a `# comment` may follow one).

    Typer prints an epilog as Rich markup, keeping single line breaks; the lines are escaped so that
    a `[...]` in them is shown, not read as markup. Keep each line under ~76 characters: the help
    page wraps at the terminal's width, and an 80-column terminal must show every line whole."""
    heading = "Example" if len(lines) == 1 else "Examples"
    return f"[bold]{heading}[/]\n" + "\n".join(escape(line) for line in lines)
