"""The `madx` command line. Each command parses its options, then calls one function."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.help import examples
from madx.errors import MadxError

app = typer.Typer(
    help="MAD-X cross-lingual transfer: language adapters, task adapters, zero-shot evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


@app.callback(epilog=examples(
    "madx demo --fast                  # the tiny pipeline, about a minute",
    "madx run configs/demo.yaml        # the real demo, ~12 minutes",
    "madx add-language es --corpus udhr:es --config configs/demo-fast.yaml --save",
    "madx results configs/demo.yaml",
))
def _root() -> None:
    """MAD-X cross-lingual transfer: language adapters, task adapters, zero-shot evaluation."""


@app.command(epilog=examples(
    "madx presets",
    "madx presets --hidden 384 --vocab 250037   # multilingual-e5-small",
))
def presets(
    model_type: Annotated[str, typer.Option(help="Architecture (a row of the surgery table).")] = "xlm-roberta",
    hidden: Annotated[int, typer.Option(help="Hidden size d.")] = 768,
    layers: Annotated[int, typer.Option(help="Number of transformer layers.")] = 12,
    vocab: Annotated[int, typer.Option(help="Vocabulary size.")] = 250002,
) -> None:
    """Parameter counts of the adapter presets on a model of the given shape (xlm-roberta-base by default).

    The model is built on PyTorch's meta device: no weights are allocated, so this is instant.
    """
    from madx.parameter_counts import preset_parameter_counts

    rows = preset_parameter_counts(model_type, hidden=hidden, layers=layers, vocab=vocab)
    table = Table(title=f"Adapter presets on a {model_type} with d={hidden}, {layers} layers, vocab {vocab:,}")
    for column in ("preset", "adapter parameters", "% of base", "bottleneck m", "invertible"):
        table.add_column(column, justify="right" if column != "preset" else "left")
    for row in rows:
        table.add_row(
            row["preset"], f"{row['parameters']:,}", f"{row['percent_of_base']:.2f}", str(row["bottleneck"]),
            row["invertible"] or "-",
        )
    console.print(table)
    console.print(f"base model: {rows[0]['base_parameters']:,} parameters")


def _register_commands() -> None:
    from cli import adapterhub, data, pipeline, servers

    pipeline.register(app)
    adapterhub.register(app)
    servers.register(app)
    data.register(app)


_register_commands()


def main() -> None:
    """Entry point: a user error prints one line and exits 1; anything else is a bug with a traceback
    (credentials in URIs masked: a tracking store's password must not reach a log)."""
    from madx import stopping

    try:
        app()
    except stopping.Interrupted as error:
        err_console.print(f"[bold yellow]interrupted:[/] {error}. Finished adapters are kept and nothing is "
                          "half-written; run the same command again to go on (language adapters resume from their "
                          "checkpoint).", highlight=False, soft_wrap=True)
        sys.exit(stopping.exit_code())
    except MadxError as error:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except Exception:  # noqa: BLE001 - printed, then a non-zero exit like Python's own
        import traceback

        from madx.errors import redact_credentials

        sys.stderr.write(redact_credentials(traceback.format_exc()))
        sys.exit(1)


if __name__ == "__main__":
    main()
