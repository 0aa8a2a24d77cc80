"""MLM heads are never silently random, the head warm-up works, and broken runs fail loudly."""

from __future__ import annotations

import pytest
import torch
import transformers
from conftest import TINY_TEXT, tiny_config

from flows.config import validate_config
from language_adapters.mlm import corpus_vocabulary, masked_lm_logits, pad_batch
from language_adapters.mlm_head import warm_up_mlm_head
from language_adapters.settings import HeadWarmup, LanguageAdapterTraining
from language_adapters.train import train_language_adapter
from madx import AdapterModel
from madx.errors import TrainingFailedError
from madx.pretrained import MissingMlmHeadError, load_mlm_model, stored_mlm_head

LA = dict(steps=40, batch_size=4, learning_rate=1e-2, warmup_steps=0, max_length=32, eval_every=40, log_every=5,
          checkpoint_every=0, min_corpus_tokens=0, max_epochs=1000.0)


def save_headless(out, model_type: str, tokenizer):
    """An encoder saved without its MLM head (like multilingual-e5-small's checkpoint)."""
    torch.manual_seed(0)
    config = tiny_config(model_type, vocab_size=len(tokenizer), hidden=32, layers=2, pad_token_id=tokenizer.pad_token_id)
    transformers.AutoModel.from_config(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def headless_base(tmp_path_factory, tiny_tokenizer):
    return save_headless(tmp_path_factory.mktemp("headless-bert"), "bert", tiny_tokenizer)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpora")
    (folder / "a.txt").write_text("\n".join(TINY_TEXT[:4] * 12) + "\n", encoding="utf-8")
    (folder / "b.txt").write_text("\n".join(TINY_TEXT[4:] * 12) + "\n", encoding="utf-8")
    return {"aa": str(folder / "a.txt"), "bb": str(folder / "b.txt")}


@pytest.fixture(scope="module")
def warmed(headless_base, corpora, tmp_path_factory):
    out = tmp_path_factory.mktemp("warm") / "mlm_head"
    # init "random": transformers' own random head, so the test sees the warm-up train it from chance
    training = HeadWarmup(steps=150, batch_size=8, learning_rate=3e-2, warmup_steps=0, max_length=32,
                          held_out_fraction=0.2, init="random", softmax_vocabulary="full")
    return warm_up_mlm_head(headless_base, corpora, out, training), training, out


def test_a_missing_head_is_refused_with_the_fix(headless_base, tmp_path, corpora):
    assert stored_mlm_head(headless_base) is False
    with pytest.raises(MissingMlmHeadError, match=r"no pretrained MLM head \(6 tensor\(s\) missing: cls\.predictions.*mlm_head: warmup"):
        load_mlm_model(headless_base)
    with pytest.raises(MissingMlmHeadError, match="mlm_head: warmup"):
        train_language_adapter(headless_base, "aa", corpora["aa"], tmp_path / "aa", LanguageAdapterTraining(**LA))
    assert not (tmp_path / "aa").exists()
    # the pipeline config says so before anything runs, and accepts the warm-up
    raw = {"name": "p", "output_dir": str(tmp_path / "out"), "base_model": {"name_or_path": str(headless_base)},
           "languages": {"en": {"corpus": corpora["aa"]}}}
    with pytest.raises(MissingMlmHeadError, match=f"base model {headless_base} has no MLM head weights"):
        validate_config(raw)
    validate_config({**raw, "base_model": {"name_or_path": str(headless_base), "mlm_head": "warmup"}})


def test_warmup_brings_perplexity_far_below_the_vocabulary_before_any_adapter(warmed, headless_base, corpora, tmp_path, tiny_tokenizer):
    result, training, out = warmed
    vocabulary = len(tiny_tokenizer)
    for language in ("aa", "bb"):
        before, after = result.metrics[f"initial_perplexity.{language}"], result.metrics[f"perplexity.{language}"]
        assert before > vocabulary  # the random head: worse than a uniform guess
        # A 2-layer random encoder offers the head little to read (tests/test_packaged_model.py checks
        # the real encoder: ~1.2 M -> far below its 250,002 tokens)
        assert after < before / 1.5
    assert result.metrics["softmax_candidates"] == vocabulary
    # the same call again reuses the saved head
    again = warm_up_mlm_head(headless_base, corpora, out, training)
    assert again.cached and again.metrics == result.metrics
    # every language adapter trains against that head, and starts below chance
    la = train_language_adapter(headless_base, "aa", corpora["aa"], tmp_path / "aa", LanguageAdapterTraining(**LA),
                                mlm_head=result.head_file)
    assert la.metrics["initial_perplexity"] < vocabulary
    assert la.metrics["perplexity"] < la.metrics["initial_perplexity"]


@pytest.mark.parametrize("model_type, head", [("xlm-roberta", "lm_head"), ("roberta", "lm_head"), ("camembert", "lm_head")])
def test_every_architecture_refuses_a_missing_head_and_warms_its_own(model_type, head, tmp_path, tiny_tokenizer, corpora):
    base = save_headless(tmp_path / "base", model_type, tiny_tokenizer)
    with pytest.raises(MissingMlmHeadError, match=rf"missing: {head}\."):
        load_mlm_model(base)
    training = HeadWarmup(steps=5, batch_size=8, max_length=32, held_out_fraction=0.2)
    result = warm_up_mlm_head(base, corpora, tmp_path / "head", training)
    from safetensors.torch import load_file

    assert sorted(load_file(str(result.head_file))) == [f"{head}.bias", f"{head}.dense.bias", f"{head}.dense.weight",
                                                        f"{head}.layer_norm.bias", f"{head}.layer_norm.weight"]
    load_mlm_model(base, head_weights=result.head_file)  # no longer refused


def test_the_head_file_restores_tied_parameters(warmed, headless_base):
    result, _, _ = warmed
    model = load_mlm_model(headless_base, head_weights=result.head_file)
    head = model.cls.predictions
    assert head.decoder.bias is head.bias and head.decoder.weight is model.get_input_embeddings().weight
    assert head.bias.abs().sum() > 0  # the trained bias, not transformers' zeros


def test_a_random_head_fails_the_language_adapter_at_step_0(tmp_path, tiny_tokenizer, corpora):
    folder = tmp_path / "random-mlm"
    torch.manual_seed(0)
    config = tiny_config("xlm-roberta", vocab_size=len(tiny_tokenizer), pad_token_id=tiny_tokenizer.pad_token_id)
    model = transformers.AutoModelForMaskedLM.from_config(config)
    with torch.no_grad():  # a head that is there but garbage: confident and wrong
        model.lm_head.bias.normal_(0, 5.0)
    model.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    with pytest.raises(TrainingFailedError, match="at step 0 is .* above the vocabulary size .* MLM head of base model"):
        train_language_adapter(folder, "aa", corpora["aa"], tmp_path / "aa", LanguageAdapterTraining(**LA))
    assert not (tmp_path / "aa").exists()


def test_restricted_softmax_equals_the_full_logits_on_its_tokens(make_tiny_model, tiny_tokenizer):
    model = make_tiny_model("xlm-roberta", "mlm", vocab_size=len(tiny_tokenizer))
    am = AdapterModel(model)
    am.add_adapter("sw", "madx_language")  # the invertible adapter's inverse runs before the projection
    am.set_active("sw")
    chunks = [ids for ids in tiny_tokenizer(TINY_TEXT[:3])["input_ids"]]
    ids, attention = pad_batch(chunks, tiny_tokenizer.pad_token_id)
    targets = attention.bool()
    vocabulary = corpus_vocabulary(chunks)
    with torch.no_grad():
        full = masked_lm_logits(model, ids, attention, targets)
        narrow = masked_lm_logits(model, ids, attention, targets, vocabulary)
    assert narrow.shape == (int(targets.sum()), len(vocabulary))
    torch.testing.assert_close(narrow, full[:, vocabulary])
    assert "forward" not in vars(model.lm_head.decoder)  # the projection is itself again afterwards


def test_identity_init_starts_the_head_far_better_than_random(warmed, headless_base, corpora, tmp_path, tiny_tokenizer):
    random_start = warmed[0].metrics  # the fixture starts from transformers' random head
    training = HeadWarmup(steps=1, batch_size=8, learning_rate=1e-9, warmup_steps=0, max_length=32, held_out_fraction=0.2)
    identity_start = warm_up_mlm_head(headless_base, corpora, tmp_path / "i", training).metrics
    for language in corpora:
        before = identity_start[f"initial_perplexity.{language}"]
        assert before < len(tiny_tokenizer) and before < random_start[f"initial_perplexity.{language}"] / 1.5
