"""`madx data fetch`: the real benchmark data under a data root, from a mirror or from upstream.

The files, their sources, sha256 and conversions are the table in `madx.benchmark_data`; this command
parses its options and fetches each file with `fetch_file`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from cli.help import examples

console = Console()
data_app = typer.Typer(
    help="The real benchmark data (MasakhaPOS, MasakhaNER 2.0, SIB-200, UD English EWT, WikiANN, news text): "
         "never in the repository, fetched into a data root that configs name as ${data_root}.",
    no_args_is_help=True,
)


@data_app.command(epilog=examples(
    "madx data fetch                        # download into ~/.cache/madx/data",
    "madx data fetch --mirror ../shared/data # copy and check, no network",
    "madx data fetch --only masakhapos --only text/hau.txt",
))
def fetch(
    into: Annotated[Path | None, typer.Option(
        help="The data root to fill (default: $MADX_DATA_ROOT, else ~/.cache/madx/data, where a config's "
             "${data_root} finds it without being told).", show_default=False)] = None,
    mirror: Annotated[Path | None, typer.Option(
        help="A folder with the same files (e.g. ../shared/data): each is copied from it and its sha256 checked; "
             "nothing is downloaded.", show_default=False)] = None,
    only: Annotated[list[str] | None, typer.Option(
        help="Only the files under this folder or path (repeatable), e.g. masakhapos/hau or text/hau.txt.",
        show_default=False)] = None,
) -> None:
    """Put the benchmark files under a data root, each checked against its pinned sha256.

    Without --mirror each file is downloaded from its upstream repository at a pinned commit.

    Where the local file differs from the upstream one it is converted: WikiANN's `en:` prefix removed, text/<lang>.txt made from MasakhaNER 2.0's training split.

    A file in place is only checked; a wrong sha256 is an error naming the file and both hashes, and nothing half-written is kept.
    """
    from madx.benchmark_data import data_root_from_environment, default_data_root, fetch_file, select
    from madx.errors import DataError

    root = (into or data_root_from_environment() or default_data_root()).resolve()
    if mirror is not None and not mirror.is_dir():
        raise DataError(f"--mirror {mirror} is not a folder")
    counts: dict[str, int] = {}
    not_downloadable = []
    for row in select(only or ()):
        if mirror is None and row.url is None and not (root / row.path).is_file():
            not_downloadable.append(row)
            continue
        what = fetch_file(row, root, mirror)
        counts[what] = counts.get(what, 0) + 1
        if what != "already there":
            console.print(f"{what}: {escape(row.path)}", highlight=False)
    summary = ", ".join(f"{count} {what}" for what, count in counts.items()) or "nothing fetched"
    console.print(f"benchmark data in {escape(str(root))}: {summary}", highlight=False, soft_wrap=True)
    for caveat in dict.fromkeys(row.caveat for row in not_downloadable):  # one line per reason, in table order
        paths = ", ".join(row.path for row in not_downloadable if row.caveat == caveat)
        console.print(f"[yellow]not fetched:[/] {escape(paths)}: {escape(caveat)}", highlight=False, soft_wrap=True)
    if root != data_root_from_environment() and root != default_data_root().resolve():
        console.print(f"configs find it with: export MADX_DATA_ROOT={escape(str(root))}", highlight=False,
                      soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `madx data` (with `fetch`) to the `madx` app."""
    app.add_typer(data_app, name="data", epilog=examples(
        "madx data fetch --mirror ../shared/data",
    ))

