"""Language-adapter training: corpora, MLM batching, loss goes down, exact resume."""

from __future__ import annotations

import json

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file

from language_adapters.corpus import load_corpus, read_text_lines
from language_adapters.settings import CorpusSource
from language_adapters.mlm import chunk_corpus, mask_tokens, pad_batch
from language_adapters.settings import LanguageAdapterTraining
from language_adapters.train import train_language_adapter
from madx import AdapterModel, DataError, load_adapter, read_adapter_config

FAST = dict(steps=60, batch_size=4, learning_rate=1e-2, warmup_steps=0, max_length=32, eval_every=10, log_every=5, checkpoint_every=0,
            min_corpus_tokens=0, max_epochs=1000.0)  # toy corpus: no size check, no epoch cap


def test_corpus_specs_parse():
    assert CorpusSource.parse("udhr:sw") == CorpusSource("udhr", "sw")
    assert CorpusSource.parse("hf:wikimedia/wikipedia:20231101.sw") == CorpusSource("hf", "wikimedia/wikipedia", "20231101.sw")
    assert CorpusSource.parse("disk:/data/sw") == CorpusSource("disk", "/data/sw")
    assert CorpusSource.parse("data/udhr/sw.txt") == CorpusSource("text", "data/udhr/sw.txt")
    assert CorpusSource.parse({"hf": "x/y", "split": "validation"}) == CorpusSource("hf", "x/y", split="validation")
    with pytest.raises(DataError, match="unknown corpus keys"):
        CorpusSource.parse({"hf": "x/y", "splits": "train"})


def test_text_files_folders_and_bad_input(tmp_path):
    (tmp_path / "a.txt").write_text("first line\n\n second \n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("third\n", encoding="utf-8")
    assert read_text_lines(tmp_path / "a.txt") == ["first line", "second"]
    assert load_corpus(str(tmp_path))["text"] == ["first line", "second", "third"]
    (tmp_path / "latin1.txt").write_bytes("ok\nna\xefve caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt:2: not UTF-8"):
        read_text_lines(tmp_path / "latin1.txt")
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
    with pytest.raises(DataError, match="empty.txt is empty"):
        read_text_lines(tmp_path / "empty.txt")
    with pytest.raises(DataError, match="does not exist"):
        load_corpus(str(tmp_path / "missing.txt"))


def test_hub_code_path_on_local_datasets(tmp_path):
    """`load_dataset(name, config, split)` and `load_from_disk` run the same code as a hub name."""
    from datasets import Dataset

    rows = {"id": ["1", "2", "3"], "title": ["a", "b", "c"], "text": ["Habari ya dunia.", "", "Kila mtu ana haki."]}
    Dataset.from_dict(rows).save_to_disk(str(tmp_path / "saved"))
    assert load_corpus(f"disk:{tmp_path / 'saved'}")["text"] == ["Habari ya dunia.", "Kila mtu ana haki."]
    folder = tmp_path / "wikipedia_sw" / "data"
    folder.mkdir(parents=True)
    Dataset.from_dict(rows).to_parquet(str(folder / "train-00000-of-00001.parquet"))
    loaded = load_corpus({"hf": str(tmp_path / "wikipedia_sw"), "split": "train"})
    assert loaded["text"] == ["Habari ya dunia.", "Kila mtu ana haki."]
    with pytest.raises(DataError, match="no column 'body'"):
        load_corpus({"hf": str(tmp_path / "wikipedia_sw"), "text_column": "body"})


def test_chunking_and_masking_are_deterministic(tiny_tokenizer, toy_corpus):
    texts = load_corpus(str(toy_corpus))
    chunks = chunk_corpus(texts, tiny_tokenizer, max_length=32, held_out_fraction=0.1, seed=0)
    again = chunk_corpus(texts, tiny_tokenizer, max_length=32, held_out_fraction=0.1, seed=0)
    assert chunks == again and len(chunks.held_out) >= 1
    assert all(c[0] == tiny_tokenizer.cls_token_id and c[-1] == tiny_tokenizer.sep_token_id for c in chunks.train)
    assert all(len(c) <= 32 for c in chunks.train) and sum(len(c) == 32 for c in chunks.train) >= len(chunks.train) - 1
    ids, attention = pad_batch(chunks.train[:64], tiny_tokenizer.pad_token_id)
    masked, labels = mask_tokens(ids, attention, tiny_tokenizer, torch.Generator().manual_seed(1))
    targets = labels != -100
    share = targets.sum() / attention.sum()
    assert 0.10 < share < 0.20
    assert not targets[:, 0].any() and not targets[attention == 0].any()  # never <s> or padding
    became_mask = (masked == tiny_tokenizer.mask_token_id) & targets
    assert 0.7 < became_mask.sum() / targets.sum() < 0.9
    assert torch.equal(labels[targets], ids[targets])
    masked2, _ = mask_tokens(ids, attention, tiny_tokenizer, torch.Generator().manual_seed(1))
    assert torch.equal(masked, masked2)


def test_too_small_corpus_is_a_clear_error(tiny_base_dir, tmp_path):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("Habari.\n", encoding="utf-8")
    with pytest.raises(DataError, match="too small"):
        train_language_adapter(tiny_base_dir, "sw", corpus, tmp_path / "out", LanguageAdapterTraining(**FAST))
    with pytest.raises(ValidationError, match="batch_size"):
        LanguageAdapterTraining(batch_size=0)


def test_a_corpus_too_small_for_an_adapter_is_refused_before_training_saying_what_it_has_and_needs(
        tiny_base_dir, toy_corpus, tmp_path):
    from madx.errors import CorpusTooSmallError

    events = []
    small = LanguageAdapterTraining(**{**FAST, "min_corpus_tokens": 100_000})
    with pytest.raises(CorpusTooSmallError, match=r"too small for a language adapter for 'sw': [\d,]+ tokens of training "
                                                  r"text, and it needs at least 100,000 \(language_adapter.min_corpus_tokens\)"):
        train_language_adapter(tiny_base_dir, "sw", toy_corpus, tmp_path / "sw", small,
                               on_event=lambda kind, step, metrics: events.append(kind))
    assert events == [] and not (tmp_path / "sw").exists()  # refused before step 0, nothing written


def test_the_budget_follows_the_corpus_and_the_best_held_out_checkpoint_is_kept(tiny_base_dir, toy_corpus, tmp_path):
    capped = LanguageAdapterTraining(**{**FAST, "max_epochs": 1.0, "steps": 1000})
    result = train_language_adapter(tiny_base_dir, "sw", toy_corpus, tmp_path / "capped", capped)
    sequences = result.metrics["train_sequences"]
    assert 10 < sequences < 1000 and result.metrics["steps"] == -(-sequences // FAST["batch_size"])  # one pass
    assert any(flag.startswith("budget_capped: ") for flag in result.flags)

    # A learning rate too high makes the held-out loss fall, then rise again (on this toy setup:
    # lowest at step 25 of 60): the saved adapter is the one of the lowest held-out loss, and says so.
    wild = {**FAST, "learning_rate": 0.2, "held_out_fraction": 0.2, "max_grad_norm": 0.0, "steps": 60, "eval_every": 5,
            "center": False}  # the weights as trained (centring is tested on its own)
    best = train_language_adapter(tiny_base_dir, "sw", toy_corpus, tmp_path / "best", LanguageAdapterTraining(**wild))
    last = train_language_adapter(tiny_base_dir, "sw", toy_corpus, tmp_path / "last",
                                  LanguageAdapterTraining(**{**wild, "keep": "last"}))
    evals = {row["step"]: row["perplexity"] for row in best.history if "perplexity" in row}
    lowest = min(evals, key=evals.get)
    assert lowest not in (0, 60), "the test needs a run whose held-out loss falls, then rises again"
    assert best.metrics["kept_step"] == lowest and best.metrics["perplexity"] == evals[lowest]
    assert last.metrics["kept_step"] == 60 and last.metrics["perplexity"] == evals[60]
    assert any(f"kept_best: the weights of step {lowest}" in flag for flag in best.flags)
    # and a learning rate that never gets below step 0 is said, not hidden
    none = train_language_adapter(tiny_base_dir, "sw", toy_corpus, tmp_path / "none", LanguageAdapterTraining(
        **{**FAST, "learning_rate": 0.05, "max_grad_norm": 0.0, "steps": 40, "eval_every": 5}))
    assert any(flag.startswith("no_gain: held-out perplexity never went below step 0's") for flag in none.flags)
    assert load_file(str(tmp_path / "best" / "adapter.safetensors")).keys() == \
        load_file(str(tmp_path / "last" / "adapter.safetensors")).keys()
    assert not all(torch.equal(a, b) for a, b in zip(load_file(str(tmp_path / "best" / "adapter.safetensors")).values(),
                                                     load_file(str(tmp_path / "last" / "adapter.safetensors")).values()))


def test_mlm_loss_goes_down_and_only_the_adapter_is_saved(tiny_base_dir, toy_corpus, tmp_path):
    events = []
    result = train_language_adapter(
        tiny_base_dir, "sw", toy_corpus, tmp_path / "sw",
        # a faster rate and a larger held-out set than FAST: on the tiny base the gain is a tenth of a nat
        LanguageAdapterTraining(**{**FAST, "learning_rate": 3e-2, "held_out_fraction": 0.2}),
        on_event=lambda kind, step, metrics: events.append((kind, step)),
    )
    evals = [row["mlm_loss"] for row in result.history if "mlm_loss" in row and not row.get("centered")]
    # step 0 (fresh adapter) and every 10 steps; the masks are fixed, so this is noise-free
    assert len(evals) == 7 and evals[-1] < evals[0] - 0.05 and evals[-1] == min(evals)
    centered = result.history[-1]  # then the adapter is centred on its text, and measured again
    assert centered["centered"] == 1.0 and result.metrics["perplexity_before_centering"] == pytest.approx(
        torch.tensor(evals[-1]).exp().item(), rel=1e-4)
    assert result.metrics["perplexity"] == pytest.approx(torch.tensor(centered["mlm_loss"]).exp().item(), rel=1e-4)
    assert result.metrics["initial_perplexity"] == pytest.approx(torch.tensor(evals[0]).exp().item(), rel=1e-4)
    assert result.metrics["tokens_per_second"] > 0 and result.metrics["steps"] == 60
    assert ("eval", 0) in events and ("eval", 60) in events and ("train", 5) in events
    saved = read_adapter_config(tmp_path / "sw")
    assert saved["metadata"]["language"] == "sw" and saved["config"]["invertible"] == "nice"
    assert json.loads((tmp_path / "sw" / "metrics.json").read_text())["metrics"]["steps"] == 60
    keys = load_file(str(tmp_path / "sw" / "adapter.safetensors"))
    assert any(k.startswith("invertible.") for k in keys)
    # the saved adapter, loaded into a fresh base, lowers the MLM loss there too (the same masks of the
    # same text, with and without it): what is saved is what was trained
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from language_adapters.mlm import evaluate_mlm
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_base_dir))
    text = chunk_corpus(load_corpus(toy_corpus), tokenizer, 32, 0.2, seed=0)
    am = AdapterModel(AutoModelForMaskedLM.from_pretrained(str(tiny_base_dir)))
    load_adapter(am, tmp_path / "sw")

    def loss() -> float:
        return evaluate_mlm(am.model, text.train + text.held_out, tokenizer, 8, 0.15, seed=1, device="cpu")["mlm_loss"]

    am.set_active(None)
    without = loss()
    am.set_active("sw")
    assert loss() < without - 0.05
    assert not (tmp_path / ".sw.checkpoint").exists()


def test_resume_from_a_checkpoint_ends_with_the_same_weights(tiny_base_dir, toy_corpus, tmp_path):
    training = LanguageAdapterTraining(**{**FAST, "steps": 12, "checkpoint_every": 4, "eval_every": 6})
    train_language_adapter(tiny_base_dir, "sw", toy_corpus, tmp_path / "straight", training)

    class Crash(Exception):
        pass

    def crash_after_step_7(kind, step, metrics):  # training events come every 5 steps: dies at 10
        if kind == "train" and step >= 7:
            raise Crash

    interrupted = tmp_path / "interrupted"
    with pytest.raises(Crash):
        train_language_adapter(tiny_base_dir, "sw", toy_corpus, interrupted, training, on_event=crash_after_step_7)
    assert not interrupted.exists() and (tmp_path / ".interrupted.checkpoint" / "state.json").exists()
    result = train_language_adapter(tiny_base_dir, "sw", toy_corpus, interrupted, training)
    assert result.resumed_from_step == 8  # the last checkpoint before the crash
    straight = load_file(str(tmp_path / "straight" / "adapter.safetensors"))
    resumed = load_file(str(interrupted / "adapter.safetensors"))
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


def test_target_only_mlm_loss_equals_the_models_own_loss(make_tiny_model, tiny_tokenizer):
    """The loss computed on target positions only is the loss of `model(labels=...)`, adapters included."""
    from language_adapters.mlm import mlm_batch_loss

    for model_type in ("xlm-roberta", "bert"):
        model = make_tiny_model(model_type, "mlm", vocab_size=len(tiny_tokenizer))
        am = AdapterModel(model)
        am.add_adapter("sw", "madx_language")
        am.set_active("sw")
        chunks = [tiny_tokenizer(text)["input_ids"] for text in ("Habari ya dunia yote", "Kila mtu ana haki ya kuishi")]
        ours, tokens, targets = mlm_batch_loss(model, chunks, tiny_tokenizer, torch.Generator().manual_seed(0), 0.5, "cpu")
        ids, attention = pad_batch(chunks, tiny_tokenizer.pad_token_id)
        masked, labels = mask_tokens(ids, attention, tiny_tokenizer, torch.Generator().manual_seed(0), 0.5)
        reference = model(input_ids=masked, attention_mask=attention, labels=labels).loss
        torch.testing.assert_close(ours, reference)
        assert tokens == int(attention.sum()) and targets == int((labels != -100).sum())


def test_a_centred_adapter_adds_no_constant_to_its_languages_states(tiny_base_dir, toy_corpus, tmp_path):
    """What centring is for: the adapter's mean output at every layer, over its own language's text, is
    0, so swapping adapters under a task adapter does not swap a language-wide shift of every state."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from madx.surgery import AdapterBlock

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_base_dir))
    text = chunk_corpus(load_corpus(toy_corpus), tokenizer, 32, 0.2, seed=0)
    training = {**FAST, "learning_rate": 3e-2}

    def layer_means(folder):
        am = AdapterModel(AutoModelForMaskedLM.from_pretrained(str(tiny_base_dir)))
        name = load_adapter(am, folder)
        am.set_active(name)
        means = []

        def record(module, inputs, output):
            means.append(output[attention.bool()].mean(0).norm() / output[attention.bool()].norm(dim=-1).mean())

        hooks = [b.adapters[name].register_forward_hook(record) for b in am.model.modules() if isinstance(b, AdapterBlock) and name in b.adapters]
        from language_adapters.mlm import pad_batch

        ids, attention = pad_batch(text.train + text.held_out, tokenizer.pad_token_id)
        with torch.no_grad():
            am.model(input_ids=ids, attention_mask=attention)
        for hook in hooks:
            hook.remove()
        return means

    plain = train_language_adapter(tiny_base_dir, "sw", toy_corpus, tmp_path / "plain",
                                   LanguageAdapterTraining(**training, center=False))
    centred = train_language_adapter(tiny_base_dir, "sw", toy_corpus, tmp_path / "centred",
                                     LanguageAdapterTraining(**training))
    assert max(layer_means(tmp_path / "plain")) > 0.3  # trained as is: mostly one vector for every token
    assert max(layer_means(tmp_path / "centred")) < 0.05  # centred: that vector is gone (over all its text)
    assert centred.metrics["centering_removed_norm"] > 0
    # the same training until centring: only the adapters' output biases differ
    saved = {name: load_file(str(tmp_path / f / "adapter.safetensors")) for name, f in (("p", "plain"), ("c", "centred"))}
    differ = sorted(key for key in saved["p"] if not torch.equal(saved["p"][key], saved["c"][key]))
    assert differ and all(key.endswith("adapter_up.bias") for key in differ)
    assert plain.metrics["perplexity"] == pytest.approx(centred.metrics["perplexity_before_centering"], rel=1e-6)


def test_the_report_shows_each_adapters_perplexity_trained_and_centred_its_drift_and_marks_what_is_missing():
    from evaluation.report import language_adapter_markdown

    rows = [{"language": "en", "initial_perplexity": 500.0, "perplexity": 200.0, "perplexity_before_centering": 150.0},
            {"language": "sw", "initial_perplexity": 900.0, "perplexity": 300.0}]  # a run from before centring
    table = "\n".join(language_adapter_markdown(rows))
    assert "| language | before training (step 0) | trained | centred | reduction |" in table
    assert "| en | 500.0 | 150.0 | 200.0 | 2.50x |" in table  # the reduction is to the saved (centred) adapter's
    assert "| sw | 900.0 | 300.0 | - | 3.00x |" in table
    plain = "\n".join(language_adapter_markdown(rows[1:]))  # nothing centred: the old three columns
    assert "| sw | 900.0 | 300.0 | 3.00x |" in plain and "centred" not in plain
    # an adapter that measured its drift shows it, with the step kept of those run ("-" for one that did not)
    measured = [{**rows[0], "drift": 0.1994, "kept_step": 25.0, "steps": 50.0}, rows[1]]
    table = "\n".join(language_adapter_markdown(measured))
    assert "| language | before training (step 0) | trained | centred | reduction | drift | kept step / run |" in table
    assert "| en | 500.0 | 150.0 | 200.0 | 2.50x | 0.199 | 25 / 50 |" in table
    assert "| sw | 900.0 | 300.0 | - | 3.00x | - | - |" in table


def test_training_stops_at_its_drift_budget_and_keeps_the_best_checkpoint_within_it(tiny_base_dir, toy_corpus, tmp_path):
    """An adapter that has learnt its language and moves its final states past max_drift stops there;
    what is saved is the best held-out checkpoint within the budget, and measuring the drift (on a
    centred copy) changes nothing of the training."""
    # the toy base learns a little (held-out perplexity ~124 -> ~116): "learnt" is any gain here
    training = {**FAST, "learning_rate": 0.1, "held_out_fraction": 0.2, "max_grad_norm": 0.0, "steps": 40,
                "learnt_perplexity_ratio": 1.0}
    free = train_language_adapter(tiny_base_dir, "sw", toy_corpus, tmp_path / "free",
                                  LanguageAdapterTraining(**training, max_drift=1e9))  # measured, never reached
    evals = {row["step"]: row for row in free.history if "drift" in row}
    step_0 = free.history[0]["perplexity"]
    assert sorted(evals) == [10, 20, 30, 40] and all(row["drift"] > 0 for row in evals.values())
    assert free.metrics["drift"] == pytest.approx(evals[free.metrics["kept_step"]]["drift"], rel=1e-5)  # as saved
    learnt = [step for step, row in evals.items() if row["perplexity"] <= step_0]
    first = learnt[0]
    passed = next(step for step in learnt if evals[step]["drift"] > evals[first]["drift"])
    budget = (evals[first]["drift"] + evals[passed]["drift"]) / 2  # the first that learnt within it, a later one past it

    capped = train_language_adapter(tiny_base_dir, "sw", toy_corpus, tmp_path / "capped",
                                    LanguageAdapterTraining(**training, max_drift=budget))
    kept = min((step for step in learnt if step < passed and evals[step]["drift"] <= budget),
               key=lambda step: evals[step]["mlm_loss"])
    assert capped.metrics["steps"] == passed and capped.metrics["kept_step"] == kept
    assert capped.metrics["drift"] <= budget
    # every evaluation measured the adapter as saved (centred): the kept one's numbers are the saved adapter's
    assert capped.metrics["perplexity"] == pytest.approx(evals[kept]["perplexity"], rel=1e-6)
    assert "perplexity_before_centering" not in capped.metrics and not any("centered" in row for row in capped.history)
    assert any(flag.startswith(f"drift_capped: stopped at step {passed} of 40") and f"kept the weights of step {kept}" in flag
               for flag in capped.flags)
    # the same run as the free one up to where it stopped: measuring (centring a copy) left the weights alone
    untimed = lambda rows: [{k: v for k, v in row.items() if k != "tokens_per_second"} for row in rows if "centered" not in row]
    assert untimed(capped.history) == untimed(row for row in free.history if row["step"] <= passed)
    assert read_adapter_config(tmp_path / "capped")["metadata"]["flags"] == capped.flags

    # An adapter that moves the states before it has learnt (every evaluation here is past the
    # budget) trains on until it has, and that first checkpoint that has learnt is kept.
    assert first > 10, "the test needs an adapter whose first evaluation has not learnt yet"
    late = train_language_adapter(tiny_base_dir, "sw", toy_corpus, tmp_path / "late",
                                  LanguageAdapterTraining(**training, max_drift=min(r["drift"] for r in evals.values()) / 2))
    assert late.metrics["steps"] == first and late.metrics["kept_step"] == first
    assert any(flag.startswith(f"drift_capped: stopped at step {first}") and "the first that had, is kept" in flag
               for flag in late.flags)
    # past the budget only at the last step: nothing was cut short, and the flag says so
    assert evals[40]["drift"] > evals[30]["drift"] and 30 in learnt, "the test needs a drift that still grows at the end"
    end = train_language_adapter(tiny_base_dir, "sw", toy_corpus, tmp_path / "end", LanguageAdapterTraining(
        **training, max_drift=(evals[30]["drift"] + evals[40]["drift"]) / 2))
    assert end.metrics["steps"] == 40 and any(flag.startswith("drift_capped: at its last step 40: ") for flag in end.flags)
    # and one that never learns is said to, not hidden
    never = train_language_adapter(tiny_base_dir, "sw", toy_corpus, tmp_path / "never",
                                   LanguageAdapterTraining(**{**training, "max_drift": 1e9, "learnt_perplexity_ratio": 1e-3}))
    assert never.metrics["steps"] == 40 and any(flag.startswith("not_learnt: ") for flag in never.flags)
