"""`madx import-adapterhub` and `madx export-adapterhub`: move adapters between AdapterHub and madx.

Each command parses its options and calls one function of `madx.adapterhub`; errors are
`MadxError`s, which the `madx` entry point prints on one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.help import examples


def import_adapterhub(
    path: Annotated[
        Path,
        typer.Argument(
            help="AdapterHub adapter folder: adapter_config.json + adapter.safetensors or pytorch_adapter.bin "
            "(+ head_config.json and head weights), e.g. a published MAD-X language adapter, unpacked.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(help="madx adapter folder to write (replaced atomically if it exists).", show_default=False),
    ],
    name: Annotated[
        str | None,
        typer.Option(help="Name of the adapter in madx (default: the name stored in the AdapterHub config)."),
    ] = None,
    head: Annotated[
        bool,
        typer.Option(help="Import the folder's tagging head as the token-classification head (--no-head skips it)."),
    ] = True,
) -> None:
    """Convert an AdapterHub adapter (adapters / adapter-transformers) into a madx adapter folder.

    Pfeiffer (seq_bn), Houlsby (double_seq_bn) and MAD-X (seq_bn_inv, NICE) adapters convert exactly.

    An option madx cannot compute exactly (scaling, extra LayerNorms, gating, LoRA, GLOW, ...) is refused by name.

    adapter.safetensors is preferred; a pytorch_adapter.bin is read with torch.load(weights_only=True).
    """
    from madx import adapterhub

    written = adapterhub.import_adapterhub(path, out, name=name, with_head=head)
    typer.echo(f"imported {path} -> {written}")


def export_adapterhub(
    adapter: Annotated[
        Path,
        typer.Argument(help="madx adapter folder (adapter_config.json + adapter.safetensors).", show_default=False),
    ],
    out: Annotated[
        Path,
        typer.Option(help="AdapterHub folder to write (replaced atomically if it exists).", show_default=False),
    ],
    model_class: Annotated[
        str | None,
        typer.Option(
            help="Model class recorded in adapter_config.json (default: XLMRobertaAdapterModel, RobertaAdapterModel "
            "or BertAdapterModel). The bare class (e.g. XLMRobertaModel) writes keys without the model prefix."
        ),
    ] = None,
) -> None:
    """Write a madx adapter folder in AdapterHub's format, loadable with `adapters`' load_adapter.

    Writes the full adapter config (with its version), adapter.safetensors and pytorch_adapter.bin.

    A token head becomes a one-layer tagging head: head_config.json, model_head.safetensors, pytorch_model_head.bin.
    """
    from madx import adapterhub

    written = adapterhub.export_adapterhub(adapter, out, model_class=model_class)
    typer.echo(f"exported {adapter} -> {written}")


def register(app: typer.Typer) -> None:
    """Add `import-adapterhub` and `export-adapterhub` to the `madx` app."""
    app.command("import-adapterhub", epilog=examples(
        "madx import-adapterhub downloads/sw-wiki-madx --out adapters/sw",
    ))(import_adapterhub)
    app.command("export-adapterhub", epilog=examples(
        "madx export-adapterhub runs/demo/adapters/language/de --out hub/de",
    ))(export_adapterhub)
