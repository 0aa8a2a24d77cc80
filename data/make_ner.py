"""Generate the synthetic multilingual NER set (CoNLL, IOB2) from templates and gazetteers.

    python data/make_ner.py                       # the committed files, into data/ner/
    python data/make_ner.py --seed 7 --out /tmp/ner --train-size 3000

Writes `<out>/en/{train,dev,test}.conll` and `<out>/<lang>/test.conll` for every other language in
`ner_lexicon.py`: one `token<TAB>tag` per line, a blank line between sentences, tags O and
B-/I-PER, LOC, ORG. The same seed and sizes always give byte-identical files. Standard library only.

The sentences are templated and the gazetteers closed: F1 on this set only compares setups with
each other, it says nothing about any real benchmark (see data/README.md).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import random
import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_LANGUAGE = "en"
DEFAULT_SEED = 13
DEFAULT_SIZES = {"train": 1500, "dev": 300, "test": 300, "unlabeled": 2000}
LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")

# Slot kind -> entity type (None: an untagged filler).
SLOT_TYPES: dict[str, str | None] = {
    "PER": "PER", "PER_M": "PER", "PER_F": "PER", "CITY": "LOC", "COUNTRY": "LOC",
    "COMPANY": "ORG", "GROUP": "ORG", "num": None, "year": None,
}  # fmt: skip
_SLOT = re.compile(r"\{(PER_M|PER_F|PER|CITY|COUNTRY|COMPANY|GROUP|num|year)(\d?)\}")
_JOINERS = "-‐'’ʼ"  # kept inside a token when letters stand on both sides: Anne-Marie, ma'aikata


Templates = dict[str, list[str]]  # language -> templates
Gazetteers = dict[str, dict[str, list[str]]]  # language -> slot kind -> names
Sentence = list[tuple[str, str]]  # (token, tag)


def load_lexicon(path: Path = HERE / "ner_lexicon.py") -> tuple[Templates, Gazetteers]:
    """(templates, gazetteers) from the lexicon file, NFC-normalised and checked."""
    spec = importlib.util.spec_from_file_location("ner_lexicon", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    nfc = functools.partial(unicodedata.normalize, "NFC")
    templates = {lang: [nfc(t) for t in ts] for lang, ts in module.TEMPLATES.items()}
    gazetteers = {
        lang: {kind: [nfc(n) for n in names] for kind, names in kinds.items()}
        for lang, kinds in module.GAZETTEERS.items()
    }
    for lang, kinds in gazetteers.items():
        kinds["PER"] = kinds["PER_M"] + kinds["PER_F"]
    _check_lexicon(templates, gazetteers, path)
    return templates, gazetteers


def _check_lexicon(templates: Templates, gazetteers: Gazetteers, path: Path) -> None:
    for lang, ts in templates.items():
        if lang not in gazetteers:
            raise ValueError(f"{path}: language {lang!r} has templates but no gazetteer")
        for t in ts:
            for kind, _ in _SLOT.findall(t):
                if SLOT_TYPES[kind] and not gazetteers[lang].get(kind):
                    raise ValueError(f"{path}: {lang} template {t!r} uses {{{kind}}} but the gazetteer has no {kind}")
            if re.search(r"\{[^}]*\}", _SLOT.sub("", t)):
                raise ValueError(f"{path}: {lang} template {t!r} has an unknown slot; known: {sorted(SLOT_TYPES)}")


# --------------------------------------------------------------------------- tokens and tags


def tokenize(text: str) -> list[str]:
    """Split on whitespace, then split punctuation off as tokens (but not word-internal - and ')."""
    tokens: list[str] = []
    for chunk in text.split():
        word = ""
        for i, ch in enumerate(chunk):
            after = chunk[i + 1] if i + 1 < len(chunk) else ""
            inside = ch in _JOINERS and word and after and not _is_punct(after)
            leading_apostrophe = ch in "'’ʼ" and not word and after.isalpha()  # Hausa ’yan
            if _is_punct(ch) and not (inside or leading_apostrophe):
                if word:
                    tokens.append(word)
                tokens.append(ch)
                word = ""
            else:
                word += ch
        if word:
            tokens.append(word)
    return tokens


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"


def render(template: str, gazetteer: dict[str, list[str]], rng: random.Random) -> Sentence:
    """One sentence as (token, tag) pairs: the template's slots filled with distinct random names."""
    pieces = _SLOT.split(template)  # [text, kind, digit, text, kind, digit, ..., text]
    sentence: Sentence = []
    used: set[str] = set()
    for i in range(0, len(pieces), 3):
        sentence += [(token, "O") for token in tokenize(pieces[i])]
        if i + 1 >= len(pieces):
            break
        kind = pieces[i + 1]
        if kind == "num":
            sentence.append((str(rng.randint(2, 12)), "O"))
        elif kind == "year":
            sentence.append((str(rng.randint(1985, 2022)), "O"))
        else:
            name = rng.choice([n for n in gazetteer[kind] if n not in used])
            used.add(name)
            determiner, _, name_text = name.rpartition("|")  # "the|World Bank"
            if determiner:
                sentence.append((determiner.capitalize() if not sentence else determiner, "O"))
            entity = SLOT_TYPES[kind]
            sentence += [(tok, f"{'B' if j == 0 else 'I'}-{entity}") for j, tok in enumerate(tokenize(name_text))]
    return sentence


def generate(templates: list[str], gazetteer: dict[str, list[str]], size: int, rng: random.Random) -> list[Sentence]:
    return [render(rng.choice(templates), gazetteer, rng) for _ in range(size)]


def to_conll(sentences: list[Sentence]) -> str:
    return "\n".join("".join(f"{tok}\t{tag}\n" for tok, tag in s) for s in sentences)


def check_iob2(sentences: list[Sentence], where: str) -> None:
    for n, sentence in enumerate(sentences, 1):
        previous = "O"
        for token, tag in sentence:
            if tag not in LABELS or not token or any(c.isspace() for c in token):
                raise ValueError(f"{where}: sentence {n}: bad token/tag {token!r}/{tag!r}")
            if tag.startswith("I-") and previous[2:] != tag[2:]:
                raise ValueError(f"{where}: sentence {n}: {tag} after {previous}")
            previous = tag


def entities(sentences: list[Sentence]) -> list[tuple[str, str]]:
    """(type, surface) of every entity mention."""
    found: list[tuple[str, str]] = []
    for sentence in sentences:
        for token, tag in sentence:
            if tag.startswith("B-"):
                found.append((tag[2:], token))
            elif tag.startswith("I-"):
                found[-1] = (found[-1][0], f"{found[-1][1]} {token}")
    return found


# --------------------------------------------------------------------------- files


def build(seed: int, sizes: dict[str, int], languages: list[str] | None = None) -> dict[str, str]:
    """{relative path: file text} for the whole data set."""
    templates, gazetteers = load_lexicon()
    targets = [lang for lang in templates if lang != SOURCE_LANGUAGE]
    unknown = sorted(set(languages or []) - set(targets))
    if unknown:
        raise ValueError(f"no templates for {unknown}; languages in ner_lexicon.py: {targets}")
    splits = [(SOURCE_LANGUAGE, split) for split in ("train", "dev", "test")]
    splits += [(lang, "test") for lang in (languages or targets)]
    files: dict[str, str] = {}
    for lang, split in splits:
        rng = random.Random(f"madx-ner:{seed}:{lang}:{split}")  # str seeds are stable across runs
        sentences = generate(templates[lang], gazetteers[lang], sizes[split], rng)
        check_iob2(sentences, f"{lang}/{split}")
        files[f"{lang}/{split}.conll"] = to_conll(sentences)
    # Unlabeled in-domain text per language (tags dropped), from its own random stream: what a
    # language adapter may learn from, as real MAD-X adapters learn from the Wikipedia text that
    # WikiANN is drawn from. It never contains the test sentences themselves.
    for lang in [SOURCE_LANGUAGE, *(languages or targets)]:
        rng = random.Random(f"madx-ner:{seed}:{lang}:unlabeled")
        sentences = generate(templates[lang], gazetteers[lang], sizes["unlabeled"], rng)
        files[f"{lang}/unlabeled.txt"] = "".join(" ".join(tok for tok, _ in s) + "\n" for s in sentences)
    return files


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


def read_conll(text: str) -> list[Sentence]:
    sentences: list[Sentence] = []
    for block in text.split("\n\n"):
        rows = [line.split("\t") for line in block.splitlines() if line]
        if rows:
            sentences.append([(tok, tag) for tok, tag in rows])
    return sentences


def summary(files: dict[str, str]) -> list[str]:
    """Counts per file, and how many test mentions also occur in the English training data."""
    train_names = set(entities(read_conll(files.get(f"{SOURCE_LANGUAGE}/train.conll", ""))))
    lines = []
    for path, text in files.items():
        if not path.endswith(".conll"):
            lines.append(f"{path:<16} {text.count(chr(10)):>5} sentences of unlabeled text")
            continue
        sentences = read_conll(text)
        found = entities(sentences)
        counts = Counter(kind for kind, _ in found)
        line = (f"{path:<16} {len(sentences):>5} sentences {sum(map(len, sentences)):>6} tokens  "
                f"PER {counts['PER']:>4}  LOC {counts['LOC']:>4}  ORG {counts['ORG']:>4}")  # fmt: skip
        if not path.startswith(f"{SOURCE_LANGUAGE}/") and found:
            seen = sum(e in train_names for e in found)
            line += f"  mentions seen in en/train: {seen / len(found):.0%}"
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=HERE / "ner", help="output folder (default: data/ner)")
    parser.add_argument("--train-size", type=int, default=DEFAULT_SIZES["train"], help="English train sentences")
    parser.add_argument("--dev-size", type=int, default=DEFAULT_SIZES["dev"], help="English dev sentences")
    parser.add_argument("--test-size", type=int, default=DEFAULT_SIZES["test"], help="test sentences per language")
    parser.add_argument("--unlabeled-size", type=int, default=DEFAULT_SIZES["unlabeled"], help="unlabeled sentences per language")
    parser.add_argument("--languages", nargs="+", metavar="LANG", help="test languages (default: all in ner_lexicon.py)")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    args = parser.parse_args(argv)  # fmt: skip

    sizes = {"train": args.train_size, "dev": args.dev_size, "test": args.test_size, "unlabeled": args.unlabeled_size}
    if min(sizes.values()) < 1:
        parser.error(f"sizes must be at least 1, got {sizes}")
    try:
        files = build(args.seed, sizes, args.languages)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for relative, text in files.items():
        write_atomic(args.out / relative, text)
    if not args.quiet:
        print("\n".join(summary(files)))
        print(f"wrote {len(files)} files under {args.out} (seed {args.seed})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
