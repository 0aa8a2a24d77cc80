"""The real benchmark data, pinned: each file's place under a data root, its upstream source, sha256 and licence.

MasakhaPOS, MasakhaNER 2.0, SIB-200, UD English EWT, WikiANN and unlabeled news text for language
adapters are never part of the repository (non-commercial and share-alike licences). A pipeline YAML
names them under `${data_root}` (flows/config.py resolves it), and `madx data fetch` fills a data
root with them:

- from a **mirror** (a folder with the same layout, such as the shared `../shared/data`): each file is
  copied and its sha256 checked; nothing is downloaded;
- from **upstream**: the file of the source repository at its pinned commit is downloaded, converted
  where the local file is not the upstream one byte for byte (`CONVERSIONS`), and checked.

Either way `madx.packages.pinned_file` writes it: a file is kept only once its sha256 is the one pinned
here (the `MANIFEST.json` of the shared mirror), and nothing half-written is ever left behind.

How each row was established (the public repositories, compared with the mirror's files): MasakhaPOS,
SIB-200 and MasakhaNER 2.0 dev/test files are the upstream files as they are (same length in characters
as the stored upstream versions, same first lines); WikiANN's upstream writes every token as
`en:<token>` (removing that prefix gives the mirror's files to the character, for all three splits);
`text/<lang>.txt` is MasakhaNER 2.0's training split, its words joined by spaces, one sentence a
line (compared on the first and last sentences of Hausa). What could not be established is said in a
row's `caveat`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from madx.errors import DataError
from madx.packages import cache_dir, pinned_file

# Where `${data_root}` points when set: it overrides a config's `data_root:` key, and `madx data fetch`
# fills it by default.
DATA_ROOT_ENV = "MADX_DATA_ROOT"


def default_data_root() -> Path:
    """The folder `madx data fetch` fills when neither --into nor $MADX_DATA_ROOT says otherwise
    (`cache_dir()/data`, by default ~/.cache/madx/data); a config finds its files there by default."""
    return cache_dir() / "data"


def data_root_from_environment() -> Path | None:
    """$MADX_DATA_ROOT as an absolute path (relative to the current directory), or None when unset."""
    value = os.environ.get(DATA_ROOT_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None


# -- where the files come from ---------------------------------------------------------------------
@dataclass(frozen=True)
class Upstream:
    """A public repository at a pinned commit, and what its licence says of the files taken from it."""

    name: str
    repository: str  # owner/name on GitHub
    commit: str | None  # None: not recorded anywhere, so its files cannot be downloaded (only mirrored)
    licence: str
    base_url: str | None = None  # default: the repository's raw files at `commit` (tests use file:// folders)

    def url(self, path: str) -> str | None:
        if self.base_url is not None:
            return self.base_url.rstrip("/") + "/" + path
        if self.commit is None:
            return None
        return f"https://raw.githubusercontent.com/{self.repository}/{self.commit}/{path}"


MASAKHAPOS = Upstream(
    "MasakhaPOS", "masakhane-io/masakhane-pos", "a42273eb27d37f3dedfc3914bfccb88199e10454",
    "annotations CC BY-NC 4.0 (research use, non-commercial); the repository's code MIT")
MASAKHANER2 = Upstream(
    "MasakhaNER 2.0", "masakhane-io/masakhane-ner", "ba5843cd08aa491d5f96a5e809e71eb9ec461391",
    "CC BY-NC 4.0 (research use, non-commercial)")
SIB200 = Upstream(
    "SIB-200", "dadelani/sib-200", "593cea88519930f776c1a4a1980b6a35b39dca57",
    "repository Apache-2.0; the sentences are FLORES-200, CC BY-SA 4.0")
WIKIANN = Upstream(
    "WikiANN (Rahimi et al. splits)", "davidsbatista/NER-datasets", "db7ff3ca4ba1df39907f8bdc036a556fed5ecde7",
    "as distributed with XTREME / Rahimi et al.")
UD_ENGLISH_EWT = Upstream(
    "UD English EWT", "UniversalDependencies/UD_English-EWT", None, "CC BY-SA 4.0")


# -- how an upstream file becomes the local one ----------------------------------------------------
def _lines(data: bytes, what: str) -> list[str]:
    try:
        return data.decode("utf-8").split("\n")
    except UnicodeDecodeError as error:
        raise DataError(f"{what}: byte {error.start} is not UTF-8; expected a UTF-8 text file") from None


def strip_english_prefix(data: bytes, what: str) -> bytes:
    """WikiANN (Rahimi splits) writes each token as `en:<token>`: drop the prefix, keep the rest of the
    line (tab and tag) and the blank lines between sentences."""
    lines = _lines(data, what)
    for number, line in enumerate(lines, start=1):
        if line and not line.startswith("en:"):
            raise DataError(f"{what}:{number}: expected a token written `en:<token>`, got {line[:60]!r}")
    return "\n".join(line.removeprefix("en:") for line in lines).encode("utf-8")


def words_per_sentence(data: bytes, what: str) -> bytes:
    """A `word TAG` file (blank line between sentences) as plain text: each sentence's words joined by
    single spaces, one sentence a line, the labels dropped."""
    sentences, words = [], []
    for line in _lines(data, what):
        if line:
            words.append(line.split(" ", 1)[0])
        elif words:
            sentences.append(" ".join(words))
            words = []
    if words:
        sentences.append(" ".join(words))
    return "".join(f"{sentence}\n" for sentence in sentences).encode("utf-8")


def conllu_upos(data: bytes, what: str) -> bytes:
    """A CoNLL-U file as `word UPOS` lines with a blank line after each sentence: the FORM and UPOS of
    each syntactic word; comments, multiword-token ranges (`1-2`) and empty nodes (`8.1`) dropped."""
    out: list[str] = []
    for number, line in enumerate(_lines(data, what), start=1):
        if not line:
            if out and out[-1]:
                out.append("")
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise DataError(f"{what}:{number}: expected 10 tab-separated CoNLL-U columns, got {len(fields)}")
        if fields[0].isdigit():
            out.append(f"{fields[1]} {fields[3]}")
    if out and out[-1]:
        out.append("")
    return "".join(f"{line}\n" for line in out).encode("utf-8")


@dataclass(frozen=True)
class Conversion:
    """How an upstream file becomes the local one: `convert(upstream bytes, what) -> local bytes`."""

    description: str
    convert: Callable[[bytes, str], bytes]


CONVERSIONS: dict[str, Conversion] = {
    "none": Conversion("the upstream file as it is", lambda data, what: data),
    "strip-en-prefix": Conversion("the `en:` prefix of every token removed", strip_english_prefix),
    "words-per-line": Conversion("the words of each sentence, space-joined, one sentence a line, labels dropped",
                                 words_per_sentence),
    "conllu-upos": Conversion("`FORM UPOS` per syntactic word, a blank line after each sentence", conllu_upos),
}


# -- the files -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataFile:
    """One file under the data root: where it comes from, how it is made from that, its pinned sha256."""

    path: str  # relative to the data root, e.g. masakhapos/hau/test.txt
    sha256: str
    upstream: Upstream
    upstream_path: str  # the file in the upstream repository it is made from
    conversion: str = "none"  # a key of CONVERSIONS
    caveat: str = ""  # what could not be established about this row (empty: nothing)

    @property
    def url(self) -> str | None:
        return self.upstream.url(self.upstream_path)

    @property
    def licence(self) -> str:
        return self.upstream.licence


# The sha256 of every file, as the shared mirror's MANIFEST.json gives them.
_SHA256 = {
    "masakhaner2/hau/dev.txt": "1eee64451c25a3c96ae7fd780446ba5b29bf4eaca1b70d1d2c4ebc9571a70951",
    "masakhaner2/hau/test.txt": "64c27e3e9ce2d47ee12e6e21ae2047cdc320ef9c65baec7d1f331189a881a234",
    "masakhaner2/ibo/dev.txt": "75cdebb3d04f4300ac1368e4f72a4e2027e586c31db53771a8da548ce368b2ac",
    "masakhaner2/ibo/test.txt": "149eb6edd255b35e204764c868949ac263edb06bd190ec000f24168d3d5f4c7d",
    "masakhaner2/kin/dev.txt": "f7be4442fd522b4d4b112f660d90b9d4b093c02ca758e247687b1771a1fd6134",
    "masakhaner2/kin/test.txt": "07a1a34ec9914b13e36391c90fa0c7db7ac1bee06ee1aa5ca61c7abdeaad9558",
    "masakhaner2/sna/dev.txt": "8d2fbd73c8821eb26b5704d6db0ef3e3652c974c3d8d3c1a783951021cacfa4a",
    "masakhaner2/sna/test.txt": "11e5d87026a333ff8744ae25bac09ea452fe8c841ec05919c951a57a360dc114",
    "masakhaner2/swa/dev.txt": "9fb0d2c4e5b98e8b45bcc275bd63c08ac9b71dc8d40c187bfc0883d89dab86a0",
    "masakhaner2/swa/test.txt": "8a165881018514d8e24333e6e785f7e1774d0cdbde56cbc39b76dc87db7235d8",
    "masakhaner2/zul/dev.txt": "8bb6b06e6c4a347e458ce76df17e3ca646ff34b79ecd0037e69f06a0ac75a35d",
    "masakhaner2/zul/test.txt": "06e982fa6feb51c799a2fae33fd9fa5f5a40ebd0a6a798c233d9ca958c202e5b",
    "masakhapos/hau/dev.txt": "e226cdca33ec125f70f8d0e0c2e6c69de91d547cbda2d00bceb409c819824abe",
    "masakhapos/hau/test.txt": "7240ca5d6310ceaf2c5db27e2052667d7e0def66361ec7e81e2c830d4cead807",
    "masakhapos/ibo/dev.txt": "36693c186350d3ac9416903ffdffec1c47a1d1c2a1d859b225e8bfe947e58099",
    "masakhapos/ibo/test.txt": "35e417984c50d2dcb43051b3c1c3f8659b0ab15e681922e58d2973ebf292d9bd",
    "masakhapos/kin/dev.txt": "7aa913fbae578a4825e17fd160d2e15c3add9c89fa5f86a2af7495fef96bc075",
    "masakhapos/kin/test.txt": "177933da961355c8f044d4e1bcc29001137a26b6a718d0be5f2036ea07aaedea",
    "masakhapos/sna/dev.txt": "37d14a15ec6f2d33191c34bdf9b5afe25a3f68bc038107b2bcfefe61ca78068f",
    "masakhapos/sna/test.txt": "afbc14308df30fb90452d7bd265ded3e6d0696aaa9774439efa254a139e04699",
    "masakhapos/swa/dev.txt": "c1aac714528b48d66c28da20bd420b034e32f614501c56a04a59527e4f20da55",
    "masakhapos/swa/test.txt": "e951eea0efb70d640c1af362cd12abde56dab99504791fa0c3073551b674c0ab",
    "masakhapos/zul/dev.txt": "7c4ab43bf978338365a5f25e4bb82645377bb30cd0dbc70750500c918e136551",
    "masakhapos/zul/test.txt": "25c10500ac9f14d43bccad66553d9e2a15221c99b37590149c7182d49b5516b5",
    "sib200/eng_Latn/dev.tsv": "48fe23ed3c66e6978c6cdeff3f661ab9ea6451001d967e23d94796b009777181",
    "sib200/eng_Latn/labels.txt": "f52879a3f02d9edea97f85e3839f242ed4853dd6459d57dfaec1501dc37e95f7",
    "sib200/eng_Latn/test.tsv": "fd7012f846f5a8caead1e7419023d64a28351893f3d9c7ebcde4c5481ca5d326",
    "sib200/eng_Latn/train.tsv": "056c2989673d0724cb27edb0d9ee5c6305b2548c17f9fd8f2092f40c98ac0156",
    "sib200/hau_Latn/dev.tsv": "dbba8629e41ca9a4b8fce968f33e3685a7572afb47208ba94d9d3c98f5c44b01",
    "sib200/hau_Latn/labels.txt": "f52879a3f02d9edea97f85e3839f242ed4853dd6459d57dfaec1501dc37e95f7",
    "sib200/hau_Latn/test.tsv": "d8c32b380a412a92f9e6b38e536342af6ab787696a273681f2508b97472c7b26",
    "sib200/ibo_Latn/dev.tsv": "11e782572e4d95b7b0b8739ca14d552ee8bda9ef21383b77fb720f90a28d6ffe",
    "sib200/ibo_Latn/labels.txt": "f52879a3f02d9edea97f85e3839f242ed4853dd6459d57dfaec1501dc37e95f7",
    "sib200/ibo_Latn/test.tsv": "9f086f683695ed616d58df3bf0eb7fc1b006d4c2b1bb6097cef1ce953d768c6f",
    "sib200/kin_Latn/dev.tsv": "a62b09e649ff1fe7d4f21edb1d87b2e846e1619e33b4657ce27947b1e7bb52af",
    "sib200/kin_Latn/labels.txt": "f52879a3f02d9edea97f85e3839f242ed4853dd6459d57dfaec1501dc37e95f7",
    "sib200/kin_Latn/test.tsv": "4f4c20016ca208bc6774c876c7ca3c0fe16af3ca51b452ead34792978805ba42",
    "sib200/sna_Latn/dev.tsv": "02632687ff728673fd1fe913d9c0fafb158cf8150629163eebd231d6840dd0b9",
    "sib200/sna_Latn/labels.txt": "f52879a3f02d9edea97f85e3839f242ed4853dd6459d57dfaec1501dc37e95f7",
    "sib200/sna_Latn/test.tsv": "1848f6404499f3c3d0673a44f402615cc6c7940638a627e21ad36dcc82581dfc",
    "sib200/swh_Latn/dev.tsv": "b8dfce0f80e7fd5b94a1fdc224fe4bbac6d237061d4a75ec4bb311d8493b3add",
    "sib200/swh_Latn/labels.txt": "f52879a3f02d9edea97f85e3839f242ed4853dd6459d57dfaec1501dc37e95f7",
    "sib200/swh_Latn/test.tsv": "008e4ff2441c46d6fc92714658dedb2c185bafe06cb914e03342734a3a2c8288",
    "sib200/zul_Latn/dev.tsv": "389ba9965032fde13d190bc2ed83eb393e4898fc6968911c3bdece18c330b3a2",
    "sib200/zul_Latn/labels.txt": "f52879a3f02d9edea97f85e3839f242ed4853dd6459d57dfaec1501dc37e95f7",
    "sib200/zul_Latn/test.tsv": "d0f1cc1f6031ab9609a66c3d995d26f268a59211bff025e1834773868d7bf93d",
    "text/hau.txt": "ffda7e9e51f1112d93887c1a72639dd328e47c63fd8e84cf7ad7ea23e734615a",
    "text/ibo.txt": "7db90aff5d29e111b86def30d44bda9ee6eada4175dab5f4252905b687bbc559",
    "text/kin.txt": "ca9dfb43a1837dec734cc3fe35e212f7aa96ed38c7221f2bcd70a1fab6e83b81",
    "text/sna.txt": "96d954d592b4c030fc939b22fbf1da51418bf2e87ce973071056023967780b56",
    "text/swa.txt": "f5a600264255657201a3b26a06c8bd364d9be47b196a295e0396926f2b95ccc1",
    "text/zul.txt": "75ff506b2020ac316439ed6316c9d2aa4caf2f735cc7559343c92b3bcdb07620",
    "ud/en_ewt/dev.txt": "646f9d9b5130d92eeab51c72ae941367e505506662c7e8b47b7915c5a92f9f45",
    "ud/en_ewt/test.txt": "267d788492bc5854c7d0bfe3c48688ccbc4eabda7e4c114528d1b72b9e30bd43",
    "ud/en_ewt/train.txt": "3be1d259551c67ca59a39f886c6dd4db16cb7c4c774dfa3d3f45c97c3f84f374",
    "wikiann/en/dev.txt": "3686e7e7cf1e978ac1c94d66444035fb1605360a4e8e3134229b5a267595353e",
    "wikiann/en/test.txt": "d156fc05da4a69a999816a4c45901d08f1621c6c5ec654c97aa989955c64ea4f",
    "wikiann/en/train.txt": "d3d4007ce413439574ddf1de29afd7a9c066482fe4d2a5a3d45040c96a084596",
}

# The development languages (MasakhaPOS / MasakhaNER 2.0 codes) and their SIB-200 codes.
LANGUAGES = {"hau": "hau_Latn", "ibo": "ibo_Latn", "kin": "kin_Latn", "sna": "sna_Latn", "swa": "swh_Latn",
             "zul": "zul_Latn"}

# What could not be established, per file (everything else was compared with the upstream repositories).
_CAVEATS = {
    "masakhapos/hau/dev.txt": "upstream path by the repository's layout: no stored version of it was seen",
    "masakhapos/zul/dev.txt": "upstream path by the repository's layout: no stored version of it was seen",
    "masakhaner2/hau/test.txt": "the stored upstream versions seen differ in length from the mirror's file "
                                "(357,427 and 359,258 characters against 357,445): the pinned commit's was not seen",
    **{f"sib200/{code}/labels.txt": "written by the repository's create_sib_data.py (a copy of data/eng/labels.txt); "
                                    "no stored version of it was seen"
       for code in (*LANGUAGES.values(), "eng_Latn")},
    **{f"text/{language}.txt": "the conversion was compared on Hausa's first and last sentences; byte identity "
                               "at the pinned commit is left to the sha256 check"
       for language in LANGUAGES},
    **{f"ud/en_ewt/{split}.txt": "the UD release these were made from is not recorded (MANIFEST.json names no "
                                 "source for ud/), so there is nothing to download: copy them from a mirror. They "
                                 "hold 12,544 / 2,001 / 2,077 sentences; pin the commit whose CoNLL-U gives these "
                                 "sha256 to make them downloadable"
       for split in ("train", "dev", "test")},
}


def _benchmark_files() -> tuple[DataFile, ...]:
    rows = []

    def add(path: str, upstream: Upstream, upstream_path: str, conversion: str = "none") -> None:
        rows.append(DataFile(path, _SHA256[path], upstream, upstream_path, conversion, _CAVEATS.get(path, "")))

    for language, sib_code in LANGUAGES.items():
        for split in ("dev", "test"):
            add(f"masakhapos/{language}/{split}.txt", MASAKHAPOS, f"data/{language}/{split}.txt")
            add(f"masakhaner2/{language}/{split}.txt", MASAKHANER2, f"MasakhaNER2.0/data/{language}/{split}.txt")
        add(f"text/{language}.txt", MASAKHANER2, f"MasakhaNER2.0/data/{language}/train.txt", "words-per-line")
        for name in ("dev.tsv", "test.tsv", "labels.txt"):
            add(f"sib200/{sib_code}/{name}", SIB200, f"data/annotated/{sib_code}/{name}")
    for name in ("train.tsv", "dev.tsv", "test.tsv", "labels.txt"):
        add(f"sib200/eng_Latn/{name}", SIB200, f"data/annotated/eng_Latn/{name}")
    for split in ("train", "dev", "test"):
        add(f"wikiann/en/{split}.txt", WIKIANN, f"WikiANN/en/{split}", "strip-en-prefix")
        add(f"ud/en_ewt/{split}.txt", UD_ENGLISH_EWT, f"en_ewt-ud-{split}.conllu", "conllu-upos")
    return tuple(sorted(rows, key=lambda row: row.path))


BENCHMARK_FILES: tuple[DataFile, ...] = _benchmark_files()


def select(prefixes: Iterable[str] = (), files: Iterable[DataFile] = BENCHMARK_FILES) -> list[DataFile]:
    """The files under any of `prefixes` (a folder such as `masakhapos` or `masakhapos/hau`, or one
    file's path); all of them when none is given. A prefix that matches nothing is an error."""
    files, prefixes = list(files), [prefix.strip().strip("/") for prefix in prefixes]
    if not prefixes:
        return files

    def under(row: DataFile, prefix: str) -> bool:
        return row.path == prefix or row.path.startswith(prefix + "/")

    unknown = [prefix for prefix in prefixes if not any(under(row, prefix) for row in files)]
    if unknown:
        folders = sorted({row.path.split("/")[0] for row in files})
        raise DataError(f"no benchmark file lies under {', '.join(map(repr, unknown))}; the folders are "
                        f"{', '.join(folders)} (e.g. masakhapos/hau or text/hau.txt)")
    return [row for row in files if any(under(row, prefix) for prefix in prefixes)]


# -- fetching --------------------------------------------------------------------------------------
def fetch_file(row: DataFile, into: Path, mirror: Path | None = None, timeout: float = 60.0) -> str:
    """Put `row` under the data root `into`: copied from `mirror` when given (no network), else
    downloaded from its upstream URL and converted; its sha256 checked either way (an intact file
    already in place is only checked). Returns "already there", "copied" or "downloaded"."""
    target = Path(into) / row.path
    existed = target.is_file()
    if mirror is not None:
        source = Path(mirror) / row.path
        if not existed and not source.is_file():
            raise DataError(f"the mirror {mirror} has no {row.path}: is it a copy of the benchmark data folder "
                            "(the layout of ../shared/data)?")
        pinned_file(target, row.sha256, lambda tmp: shutil.copyfile(source, tmp), f"the mirror's {source}")
        return "already there" if existed else "copied"
    url, conversion = row.url, CONVERSIONS[row.conversion]
    if not existed and url is None:
        raise DataError(f"{row.path} cannot be downloaded: {row.caveat or 'it has no pinned upstream'}")

    def download_and_convert(tmp: Path) -> None:
        tmp.write_bytes(conversion.convert(_download(url, timeout), url))

    origin = url if row.conversion == "none" else f"{url} with {row.conversion} ({conversion.description})"
    pinned_file(target, row.sha256, download_and_convert, origin)
    return "already there" if existed else "downloaded"


def _download(url: str, timeout: float) -> bytes:
    import urllib.error  # here, not at the top: loading a config imports this module and needs no HTTP client
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - URLs from the pinned table
            return response.read()
    except urllib.error.HTTPError as error:
        reason = f"HTTP {error.code} {error.reason}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = str(getattr(error, "reason", None) or error)
    raise DataError(f"cannot download {url} ({reason}); without a network, copy the files from a mirror: "
                    "madx data fetch --mirror DIR")


def with_base_url(files: Iterable[DataFile], base_url: str) -> list[DataFile]:
    """`files` with every upstream's files read from `base_url` + the upstream path instead (a local
    copy of the upstream repositories, e.g. file:///srv/upstream/)."""
    return [replace(row, upstream=replace(row.upstream, base_url=base_url)) for row in files]
