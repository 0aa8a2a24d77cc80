"""The zero-shot matrix: every target language x every task adapter x every setup, one loaded base.

Setups (what runs under the task adapter):
    madx      Stack(<target LA>, task)   MAD-X: the target language's adapter replaces the source's
    en-la     Stack(<source LA>, task)   the task adapter as trained, source-language adapter kept
    no-la     task                       the task adapter alone, no language adapter
    madx-2.0  madx with no adapters in the last layer (MAD-X 2.0's test-time variant)
The base model is loaded once; language adapters are loaded into it, swapped and dropped, never
the base. (The names say "en" because English is the usual source; the source language is whatever
the task adapter was trained on.)

When both `madx` and `en-la` are scored, their forward passes run batch by batch side by side, and
the `madx` row also carries the label-free harm measures of the target adapter (evaluation/harm.py:
`label_agreement`, `label_tv`, `hidden_drift`), computed from those same passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from madx.composition import Stack
from madx.errors import ConfigError
from madx.adapter_files import load_adapter, read_adapter_config
from madx.pretrained import load_model, load_tokenizer, usable_length
from madx.model import AdapterModel
from madx.seeding import seeded_global_rng
from madx.stopping import check
from madx.training_loop import pick_device
from tagging.alignment import encode_tagged, predictions_to_tags
from tagging.corpus import TaggedCorpus
from tagging.metrics import flatten_scores, majority_score
from tagging.predict import predict_label_ids, predict_label_ids_under, score_predicted
from tagging.readers import load_labeled
from tagging.scheme import LabelSet, check_known_tags
from evaluation.harm import COMPARED, HiddenDrift, harm_measures
from evaluation.setups import DEFAULT_SETUPS, NEEDS_TARGET_ADAPTER, check_setups
from tagging.sources import LabeledSource

@dataclass(frozen=True)
class Cell:
    task: str
    language: str
    setup: str


def evaluate_zero_shot(
    base_model: str | Path,
    task_adapters: Mapping[str, str | Path],
    language_adapters: Mapping[str, str | Path],
    test_sets: Mapping[tuple[str, str], LabeledSource | TaggedCorpus],
    setups: Iterable[str] = DEFAULT_SETUPS,
    batch_size: int = 64,
    max_length: int = 128,
    device: str = "auto",
    on_cell: Callable[[Cell, dict[str, float]], None] | None = None,
) -> list[dict[str, Any]]:
    """Score every (task, language) in `test_sets` under every setup; one tidy row per cell.

    `task_adapters`: task -> task adapter folder (with head); `language_adapters`: language -> LA
    folder, including the source language the task adapters were trained on.
    """
    setups = check_setups(setups)
    sources = {task: read_adapter_config(path)["metadata"].get("source_language") for task, path in task_adapters.items()}
    _check_inputs(task_adapters, language_adapters, test_sets, setups, sources)
    device_ = pick_device(device)
    tokenizer = load_tokenizer(base_model)
    with seeded_global_rng(0):  # the placeholder head's random init: never drawn while a training stage seeds
        am = AdapterModel(load_model(base_model, "token").to(device_))
    max_length = usable_length(am.model.config, tokenizer, max_length)
    loaded: set[str] = set()

    def ensure_language(language: str) -> None:
        if language not in loaded:
            load_adapter(am, language_adapters[language], name=language, with_head=False)
            loaded.add(language)

    rows = []
    for task in sorted(task_adapters):
        load_adapter(am, task_adapters[task], name=task, overwrite=True)
        label_set = LabelSet(tuple(am.model.config.id2label[i] for i in range(am.model.num_labels)))
        source = sources[task]
        majority_label = read_adapter_config(task_adapters[task])["metadata"].get("majority_label")
        ensure_language(source)
        for language in sorted(lang for (t, lang) in test_sets if t == task):
            corpus = test_sets[(task, language)]
            corpus = corpus if isinstance(corpus, TaggedCorpus) else load_labeled(corpus)
            check_known_tags(corpus, label_set, against=f"the training label set of task adapter {task!r}")
            encoded = encode_tagged(corpus, tokenizer, label_set, max_length)  # once for every setup
            # What always answering the training set's most frequent label scores here: a cell at this
            # level means the tagger transferred nothing.
            baseline = {} if majority_label is None else {"majority_baseline": majority_score(corpus.tag_sequences(), majority_label,
                                                                                            label_set.scheme)}
            if NEEDS_TARGET_ADAPTER & set(setups):
                ensure_language(language)
            predicted: dict[str, list[list[str]]] = {}
            harm: dict[str, float] = {}
            if set(COMPARED) <= set(setups):
                check(f"evaluation of {task!r} on {language!r} before setups {' and '.join(COMPARED)}")
                predicted, harm = _compare_adapters(am, task, source, language, encoded, label_set,
                                                    tokenizer.pad_token_id, batch_size, device_)
            for setup in setups:
                check(f"evaluation of {task!r} on {language!r} before setup {setup!r}")
                if setup not in predicted:
                    am.set_active(*_activation(setup, task, source, language, am.num_layers))
                    label_ids = predict_label_ids(am.model, encoded, tokenizer.pad_token_id, batch_size, device_)
                    predicted[setup] = predictions_to_tags(encoded, label_ids, label_set)
                scores = score_predicted(corpus, predicted[setup], label_set.scheme)
                row = {"task": task, "language": language, "setup": setup, "source_language": source,
                       "scheme": label_set.scheme, **flatten_scores(scores), **baseline,
                       **(harm if setup == COMPARED[0] else {}), "sentence_counts": scores["sentence_counts"]}
                rows.append(row)
                if on_cell:
                    on_cell(Cell(task, language, setup), row)
            if language != source and language in loaded:
                am.delete_adapter(language)  # keep memory flat over many languages
                loaded.discard(language)
    return rows


def _compare_adapters(am: AdapterModel, task: str, source: str, language: str, encoded, label_set: LabelSet,
                      pad_token_id: int, batch_size: int, device) -> tuple[dict[str, list[list[str]]], dict[str, float]]:
    """The predicted tags of the COMPARED setups (madx, en-la) and the harm measures between them,
    from one forward pass per setup and batch: the hidden-state drift is taken batch by batch from
    the token head's inputs, so no third pass and no test set's worth of states in memory."""
    drift = HiddenDrift()
    target, reference = COMPARED
    activations = {setup: partial(am.set_active, *_activation(setup, task, source, language, am.num_layers))
                   for setup in COMPARED}

    def compare(states, words) -> None:
        drift.add(states[target], states[reference], words)

    label_ids = predict_label_ids_under(am.model, encoded, pad_token_id, activations, batch_size, device,
                                        head=am.token_head, on_head_inputs=compare)
    predicted = {setup: predictions_to_tags(encoded, label_ids[setup], label_set) for setup in COMPARED}
    return predicted, harm_measures(predicted[target], predicted[reference], drift)


def _activation(setup: str, task: str, source: str, language: str, num_layers: int) -> tuple[Stack, tuple[int, ...]]:
    if setup == "madx":
        return Stack(language, task), ()
    if setup == "madx-2.0":
        return Stack(language, task), (num_layers - 1,)
    if setup == "en-la":
        return Stack(source, task), ()
    return Stack(task), ()  # no-la


def _check_inputs(task_adapters, language_adapters, test_sets, setups, sources) -> None:
    """Every missing piece is reported before any model is loaded."""
    problems = []
    for task, source in sources.items():
        if not source:
            problems.append(f"task adapter {task_adapters[task]} does not record its source language")
        elif source not in language_adapters:
            problems.append(f"task {task!r} was trained on {source!r} but no {source!r} language adapter is given")
    for task, language in test_sets:
        if task not in task_adapters:
            problems.append(f"test set for task {task!r} ({language}) but no such task adapter")
        if NEEDS_TARGET_ADAPTER & set(setups) and language not in language_adapters:
            problems.append(f"setup madx needs a language adapter for {language!r}; none is given")
    if not test_sets:
        problems.append("no test sets to evaluate")
    if problems:
        raise ConfigError("cannot evaluate: " + "; ".join(problems))
