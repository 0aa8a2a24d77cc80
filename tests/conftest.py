"""Shared fixtures: tiny real models and tokenizers, built offline by the tests themselves."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# Never let a test wait on a network: hub lookups fail at once instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# One compute thread in every process the tests start too (madx commands, servers, Dask workers):
# the suite runs one pytest worker per core, and more threads than cores only wait on each other.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Real models and data fetched from package registries (madx/packages.py) stay in the user's cache
# that `make setup` filled: pinned by sha256, never written by a test.
if "MADX_ASSETS_DIR" not in os.environ and "MADX_CACHE_DIR" not in os.environ:
    os.environ["MADX_ASSETS_DIR"] = os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "madx", "assets")
# The MLflow store template (tasks/tracking.py) of this session, not the user's ~/.cache/madx.
if "MADX_CACHE_DIR" not in os.environ:
    os.environ["MADX_CACHE_DIR"] = tempfile.mkdtemp(prefix="madx-test-cache-")
    atexit.register(shutil.rmtree, os.environ["MADX_CACHE_DIR"], ignore_errors=True)

import pytest
import torch
import transformers

# One thread: torch's default threading collapses when other processes share the two cores.
torch.set_num_threads(1)
transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

TINY_TEXT = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Maria Schmidt works for the United Nations in Geneva.",
    "Kila mtu ana haki ya kuishi, uhuru na usalama wa nafsi yake.",
    "Todos los seres humanos nacen libres e iguales en dignidad y derechos.",
    "Alle Menschen sind frei und gleich an Würde und Rechten geboren.",
    "Gbogbo ènìyàn ni a bí ní òmìnira; iyì àti ẹ̀tọ́ kọ̀ọ̀kan sì dọ́gba.",
    "Ko te katoa o nga tangata i te whanaungatanga mai e watea ana.",
    "John Smith visited Nairobi and Lagos with the World Health Organization.",
]



def _shared_data() -> Path | None:
    """The real benchmark data beside the checkout (../shared/data, what CI has), or $MADX_SHARED_DATA."""
    repo = Path(__file__).resolve().parents[1]
    for candidate in (os.environ.get("MADX_SHARED_DATA"), repo.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "MANIFEST.json").is_file():
            return Path(candidate)
    return None


SHARED = _shared_data()
needs_shared_data = pytest.mark.skipif(SHARED is None, reason="the shared benchmark data (../shared/data) is not here")

@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory):
    """A real SentencePiece XLM-R tokenizer trained on a few hundred multilingual sentences."""
    from madx.tokenizer import train_sentencepiece_tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    lines = [f"{sentence} {i}" for i in range(40) for sentence in TINY_TEXT]
    train_sentencepiece_tokenizer(lines, out, vocab_size=300)
    return out


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))


def tiny_config(model_type: str = "xlm-roberta", vocab_size: int = 300, hidden: int = 32, layers: int = 2, **extra):
    """A random-init config small enough that a forward pass takes about a millisecond."""
    config_class = transformers.CONFIG_MAPPING[model_type]
    fields = dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=130,
        type_vocab_size=1 if model_type != "bert" else 2,
        pad_token_id=1 if model_type != "bert" else 0,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    fields.update(extra)
    return config_class(**fields)


@pytest.fixture
def make_tiny_model():
    """Factory: `make_tiny_model("bert", "mlm")` -> a seeded random tiny model in eval mode."""

    heads = {
        "bare": transformers.AutoModel,
        "mlm": transformers.AutoModelForMaskedLM,
        "token": transformers.AutoModelForTokenClassification,
    }

    def build(model_type: str = "xlm-roberta", head: str = "mlm", seed: int = 0, **config_fields):
        torch.manual_seed(seed)
        model = heads[head].from_config(tiny_config(model_type, **config_fields))
        return model.eval()

    return build


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory, tiny_tokenizer):
    """A saved tiny XLM-R MLM + tokenizer folder: loads like `from_pretrained("xlm-roberta-base")`."""
    out = tmp_path_factory.mktemp("tiny-xlmr")
    torch.manual_seed(0)
    config = tiny_config("xlm-roberta", vocab_size=len(tiny_tokenizer), hidden=32, layers=2)
    config.pad_token_id, config.bos_token_id, config.eos_token_id = (
        tiny_tokenizer.pad_token_id, tiny_tokenizer.cls_token_id, tiny_tokenizer.sep_token_id)
    model = transformers.AutoModelForMaskedLM.from_config(config)
    # A real checkpoint's MLM head predicts better than chance (madx refuses one that does not): give
    # this one a weak prior towards the unigram distribution of the text it is tested on (scaled by 0.3,
    # so a language adapter still has much to learn): a count-based "pretrained" head.
    counts = torch.ones(config.vocab_size)
    for ids in tiny_tokenizer(TINY_TEXT, add_special_tokens=False)["input_ids"]:
        counts += torch.bincount(torch.tensor(ids), minlength=config.vocab_size)
    with torch.no_grad():
        model.lm_head.bias.copy_(0.3 * (counts / counts.sum()).log())
    model.save_pretrained(out)
    tiny_tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def toy_corpus(tmp_path_factory):
    """A repeated toy corpus: small enough to train on in a second, regular enough to learn."""
    path = tmp_path_factory.mktemp("corpus") / "toy.txt"
    path.write_text("\n".join(TINY_TEXT * 12) + "\n", encoding="utf-8")
    return path


NER_TEMPLATES = [
    ("{PER} lives in {LOC} .", None),
    ("{PER} works for {ORG} in {LOC} .", None),
    ("The {ORG} opened an office in {LOC} .", None),
    ("{PER} met {PER2} yesterday .", None),
    ("Nothing happened today .", None),
]
NER_NAMES = {
    "PER": [["Maria", "Schmidt"], ["John"], ["Amina", "Juma"], ["Kofi"], ["Ana", "Lopez"]],
    "LOC": [["Nairobi"], ["Lagos"], ["New", "York"], ["Geneva"], ["Buenos", "Aires"]],
    "ORG": [["World", "Health", "Organization"], ["Red", "Cross"], ["UNESCO"], ["Acme", "Bank"]],
}


def write_toy_conll(path, n_sentences: int, seed: int = 0) -> None:
    """A small, learnable CoNLL file (token TAB IOB2 tag) from a few templates and names."""
    import random

    rng = random.Random(seed)
    blocks = []
    for i in range(n_sentences):
        template = NER_TEMPLATES[i % len(NER_TEMPLATES)][0]
        lines = []
        for word in template.split():
            slot = word.strip("{}").rstrip("2") if word.startswith("{") else None
            if slot:
                name = rng.choice(NER_NAMES[slot])
                lines += [f"{token}\t{'B' if k == 0 else 'I'}-{slot}" for k, token in enumerate(name)]
            else:
                lines.append(f"{word}\tO")
        blocks.append("\n".join(lines))
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def toy_ner(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ner")
    write_toy_conll(folder / "train.conll", 64, seed=1)
    write_toy_conll(folder / "dev.conll", 20, seed=2)
    write_toy_conll(folder / "test.conll", 20, seed=3)
    return folder


@pytest.fixture(scope="session")
def tiny_language_adapter(tmp_path_factory, tiny_base_dir, toy_corpus):
    """A briefly trained MAD-X language adapter named `en` on the tiny base."""
    from language_adapters.settings import LanguageAdapterTraining
    from language_adapters.train import train_language_adapter

    out = tmp_path_factory.mktemp("la") / "en"
    training = LanguageAdapterTraining(steps=5, batch_size=4, learning_rate=1e-2, warmup_steps=0, max_length=32,
                                       eval_every=5, log_every=5, checkpoint_every=0,
                                       min_corpus_tokens=0, max_epochs=1000.0)
    train_language_adapter(tiny_base_dir, "en", toy_corpus, out, training)
    return out


@pytest.fixture(scope="session")
def tiny_task_adapter(tmp_path_factory, tiny_base_dir, tiny_language_adapter, toy_ner):
    """A task adapter `ner` trained for a few epochs on the toy NER data, over the `en` adapter."""
    from tagging.sources import LabeledSource
    from task_adapters.settings import TaskAdapterTraining
    from task_adapters.train import train_task_adapter

    out = tmp_path_factory.mktemp("ta") / "ner"
    train_task_adapter(
        tiny_base_dir, "ner", tiny_language_adapter,
        LabeledSource("conll", path=toy_ner / "train.conll"), LabeledSource("conll", path=toy_ner / "dev.conll"),
        out, TaskAdapterTraining(epochs=6, batch_size=8, learning_rate=3e-2, warmup_ratio=0.0, max_length=48),
    )
    return out


@pytest.fixture(scope="session")
def mlflow_template():
    """The product's own empty, migrated MLflow store (`madx prepare`'s template, in this session's
    MADX_CACHE_DIR), made once (a fresh store costs ~10 s of schema migrations): tests copy it into
    their output folder, and a store the product creates during the session starts from it too."""
    from tasks.tracking_store import prepare_store_template

    return prepare_store_template()[0]


@pytest.fixture
def make_pipeline(tiny_base_dir, toy_ner, mlflow_template):
    """`make_pipeline(folder, codes, adapters=None, **overrides)`: flows_support.new_pipeline on the
    tiny base, the toy NER data and a ready MLflow store; returns the YAML path."""
    from flows_support import new_pipeline

    def make(folder, codes=("en", "sw"), adapters=None, **kwargs):
        return new_pipeline(folder, tiny_base_dir, toy_ner, mlflow_template, codes, adapters, **kwargs)

    return make


@pytest.fixture(scope="session")
def prefect_api():
    """One temporary Prefect API (SQLite) for every flow of the session, in process and in the
    subprocesses given its URL (starting one costs ~20 s of CPU); yields its URL. A tracking server
    configured in the environment would win over each test's own store: unset it."""
    import prefect.settings
    from prefect.testing.utilities import prefect_test_harness

    with pytest.MonkeyPatch.context() as patch, prefect_test_harness(server_startup_timeout=180):
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield prefect.settings.PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def trained_pipeline(prefect_api, tmp_path_factory, tiny_base_dir, toy_ner, mlflow_template):
    """The whole tiny pipeline run once per session (en + sw language adapters, a ner task adapter
    per seed, sw zero-shot), shared by every module that needs trained adapters or a filled store.
    Tests may add runs to its store; they leave its first run and `adapters` (a copy) alone."""
    from types import SimpleNamespace

    from flows.config import load_pipeline_config
    from flows.pipeline import madx_pipeline
    from flows_support import new_pipeline, torch_threads_kept

    folder = tmp_path_factory.mktemp("pipeline")
    config_path = new_pipeline(folder, tiny_base_dir, toy_ner, mlflow_template, ("en", "sw"))
    with torch_threads_kept():
        summary = madx_pipeline(str(config_path))
    snapshot = folder / "adapters-after-first-run"
    shutil.copytree(folder / "out" / "adapters", snapshot)
    return SimpleNamespace(config_path=config_path, config=load_pipeline_config(config_path), summary=summary,
                           folder=folder, out=folder / "out", adapters=snapshot, base=str(tiny_base_dir))


# -- test tiers -----------------------------------------------------------------------------------
# `make test` runs everything; `make test-fast` (-m "not slow") what a change needs checked in about a
# minute. A test is slow when it runs Prefect (the session's test API, a trained pipeline) or is
# marked so in its module (subprocesses, servers, the real encoder, the reference library's venv).
SLOW_FIXTURES = {"prefect_api", "trained_pipeline"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)

