"""A stage's randomness is its own: dropout from its generator, initial weights under a seeded,
locked process-wide generator, and the numbers of a model in evaluation unchanged by either."""

from __future__ import annotations

import copy
import threading

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, XLMRobertaConfig, XLMRobertaForMaskedLM

from madx.seeding import GeneratorDropout, derive_seed, own_dropout, seeded_global_rng

ARCHITECTURES = [(BertForMaskedLM, BertConfig), (XLMRobertaForMaskedLM, XLMRobertaConfig)]


def tiny(model_class, config_class):
    config = config_class(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=64, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    with seeded_global_rng(0):
        return model_class(config)


def batch():
    ids = torch.randint(3, 100, (3, 10), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0  # padding: the mask must still reach the attention
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("model_class, config_class", ARCHITECTURES)
def test_evaluation_numbers_are_unchanged_bit_for_bit(model_class, config_class):
    plain = tiny(model_class, config_class).eval()
    owned = copy.deepcopy(plain)
    assert own_dropout(owned, torch.Generator().manual_seed(5)) == 7  # embeddings + 3 per layer
    owned.eval()
    assert torch.equal(plain(**batch()).logits, owned(**batch()).logits)


@pytest.mark.parametrize("model_class, config_class", ARCHITECTURES)
def test_training_dropout_follows_the_stage_generator_not_other_threads(model_class, config_class):
    model = tiny(model_class, config_class).train()
    own_dropout(model, torch.Generator().manual_seed(5))
    alone = model(**batch()).logits
    assert not torch.equal(alone, model.eval()(**batch()).logits)  # dropout is really on in training

    stop = threading.Event()

    def draw_from_the_global_generator():  # what another stage's dropout used to do meanwhile
        while not stop.is_set():
            torch.rand(1000)

    other = threading.Thread(target=draw_from_the_global_generator)
    other.start()
    try:
        torch.manual_seed(123)  # and whatever state the process-wide generator is in
        own_dropout(model, torch.Generator().manual_seed(5))
        again = model.train()(**batch()).logits
    finally:
        stop.set()
        other.join()
    assert torch.equal(alone, again)


def test_generator_dropout_scales_what_it_keeps():
    dropout = GeneratorDropout(0.25, torch.Generator().manual_seed(0)).train()
    out = dropout(torch.ones(10_000))
    kept = out[out != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.75))
    assert 0.23 < 1 - len(kept) / 10_000 < 0.27
    assert torch.equal(dropout.eval()(torch.ones(5)), torch.ones(5))


def test_seeded_global_rng_gives_the_same_draws_and_restores_the_state():
    torch.manual_seed(7)
    expected_next = torch.rand(3)
    torch.manual_seed(7)
    with seeded_global_rng(11):
        first = torch.rand(3)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's stream continues untouched
    with seeded_global_rng(11):
        assert torch.equal(torch.rand(3), first)


def test_derived_seeds_differ_per_stage_and_are_stable():
    seeds = {derive_seed(42, "language_adapter", code) for code in ("en", "sw", "de")}
    seeds.add(derive_seed(42, "task_adapter", "en"))
    seeds.add(derive_seed(43, "language_adapter", "en"))
    assert len(seeds) == 5
    assert derive_seed(42, "language_adapter", "en") == derive_seed(42, "language_adapter", "en")
    assert all(0 <= seed < 2**63 for seed in seeds)
