"""Shared fixtures: tiny real models and tokenizers, built offline by the tests themselves."""

from __future__ import annotations

import os

# Never let a test wait on a network: hub lookups fail at once instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

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
    transformers.AutoModelForMaskedLM.from_config(config).save_pretrained(out)
    tiny_tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def toy_corpus(tmp_path_factory):
    """A repeated toy corpus: small enough to train on in a second, regular enough to learn."""
    path = tmp_path_factory.mktemp("corpus") / "toy.txt"
    path.write_text("\n".join(TINY_TEXT * 12) + "\n", encoding="utf-8")
    return path
