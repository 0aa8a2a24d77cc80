"""The zero-shot matrix: every target language x every task adapter x every setup, one loaded base.

The setups (what runs under the task adapter, which task adapter) are the rows of
evaluation/setups.py's table: `madx` Stack(<target LA>, task), `en-la` Stack(<source LA>, task),
`no-la` the task adapter alone, `madx-2.0` madx without the last layer's adapters, and the MAD-X
paper's ablations with adapters of their own: `madx-noinv` (language adapters without invertible
adapters, and a task adapter trained on the source's) and `ta-only` (a task adapter trained with no
language adapter). The base model is loaded once; language adapters are loaded into it, swapped and
dropped, never the base; a task adapter of another family replaces the one loaded (a model holds
one token head).

When both `madx` and `en-la` are scored, their forward passes run batch by batch side by side, and
the `madx` row also carries the label-free harm measures of the target adapter (evaluation/harm.py:
`label_agreement`, `label_tv`, `hidden_drift`), computed from those same passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
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
from evaluation.harm import COMPARED, harm_measures
from madx.drift import HiddenDrift
from evaluation.setups import DEFAULT_SETUPS, MADX, SETUPS, check_setups, task_adapter_families
from tagging.sources import LabeledSource

@dataclass(frozen=True)
class Cell:
    task: str
    language: str
    setup: str


@dataclass(frozen=True)
class FamilyAdapters:
    """The adapters of one family (evaluation/setups.py) that its setups score: task -> task adapter
    folder (with head), language -> language adapter folder (none for `ta-only`)."""

    task_adapters: Mapping[str, str | Path]
    language_adapters: Mapping[str, str | Path] = field(default_factory=dict)


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
    families: Mapping[str, FamilyAdapters] | None = None,
) -> list[dict[str, Any]]:
    """Score every (task, language) in `test_sets` under every setup; one tidy row per cell.

    `task_adapters`: task -> task adapter folder (with head), and `language_adapters`: language -> LA
    folder, including the source language the task adapters were trained on: the `madx` family's,
    which the MAD-X setups (madx, madx-2.0, en-la, no-la) score. `families`: the other families' adapters
    the setups need (`noinv` for madx-noinv, `ta-only` for ta-only), by family name.
    """
    setups = check_setups(setups)
    adapters = {MADX: FamilyAdapters(task_adapters, language_adapters), **(families or {})}
    by_family = {family: [s for s in setups if SETUPS[s].task_family == family] for family in task_adapter_families(setups)}
    tasks = sorted({task for task, _ in test_sets})
    sources = _check_inputs(adapters, test_sets, setups)
    device_ = pick_device(device)
    tokenizer = load_tokenizer(base_model)
    with seeded_global_rng(0):  # the placeholder head's random init: never drawn while a training stage seeds
        am = AdapterModel(load_model(base_model, "token").to(device_))
    max_length = usable_length(am.model.config, tokenizer, max_length)
    loaded: set[str] = set()
    holding: tuple[str, str] | None = None  # the (task, family) whose task adapter (and head) the model holds

    def ensure_language(language: str, family: str) -> None:
        name = language_adapter_name(language, family)
        if name not in loaded:
            load_adapter(am, adapters[family].language_adapters[language], name=name, with_head=False)
            loaded.add(name)

    def hold_task_adapter(task: str, family: str) -> LabelSet:
        """Load `family`'s task adapter of `task` under the name `task` (the one before is replaced:
        a model holds one token head); its label set."""
        nonlocal holding
        if holding != (task, family):
            load_adapter(am, adapters[family].task_adapters[task], name=task, overwrite=True)
            holding = (task, family)
        return LabelSet(tuple(am.model.config.id2label[i] for i in range(am.model.num_labels)))

    rows = []
    for task in tasks:
        source = sources[task]
        first = next(iter(by_family))
        label_set = hold_task_adapter(task, first)
        majority_label = read_adapter_config(adapters[first].task_adapters[task])["metadata"].get("majority_label")
        for language in sorted(lang for (t, lang) in test_sets if t == task):
            corpus = test_sets[(task, language)]
            corpus = corpus if isinstance(corpus, TaggedCorpus) else load_labeled(corpus)
            check_known_tags(corpus, label_set, against=f"the training label set of task adapter {task!r}")
            encoded = encode_tagged(corpus, tokenizer, label_set, max_length)  # once for every setup
            # What always answering the training set's most frequent label scores here: a cell at this
            # level means the tagger transferred nothing.
            baseline = {} if majority_label is None else {"majority_baseline": majority_score(corpus.tag_sequences(), majority_label,
                                                                                            label_set.scheme)}
            for family, family_setups in by_family.items():
                if hold_task_adapter(task, family) != label_set:
                    raise ConfigError(f"the {family} task adapter of {task!r} ({adapters[family].task_adapters[task]}) "
                                      f"was trained on other labels than the {first} one: retrain it")
                for setup in family_setups:
                    wanted = {"target": language, "source": source}.get(SETUPS[setup].active)
                    if wanted is not None:
                        ensure_language(wanted, SETUPS[setup].family)
                predicted: dict[str, list[list[str]]] = {}
                harm: dict[str, float] = {}
                if set(COMPARED) <= set(family_setups):
                    check(f"evaluation of {task!r} on {language!r} before setups {' and '.join(COMPARED)}")
                    predicted, harm = _compare_adapters(am, task, source, language, encoded, label_set,
                                                        tokenizer.pad_token_id, batch_size, device_)
                for setup in family_setups:
                    check(f"evaluation of {task!r} on {language!r} before setup {setup!r}")
                    if setup not in predicted:
                        am.set_active(*activation(setup, task, source, language, am.num_layers))
                        label_ids = predict_label_ids(am.model, encoded, tokenizer.pad_token_id, batch_size, device_)
                        predicted[setup] = predictions_to_tags(encoded, label_ids, label_set)
                    scores = score_predicted(corpus, predicted[setup], label_set.scheme)
                    row = {"task": task, "language": language, "setup": setup, "source_language": source,
                           "scheme": label_set.scheme, **flatten_scores(scores), **baseline,
                           **(harm if setup == COMPARED[0] else {}), "sentence_counts": scores["sentence_counts"]}
                    rows.append(row)
                    if on_cell:
                        on_cell(Cell(task, language, setup), row)
            if language != source:
                for family in adapters:  # keep memory flat over many languages
                    name = language_adapter_name(language, family)
                    if name in loaded:
                        am.delete_adapter(name)
                        loaded.discard(name)
    return rows


def language_adapter_name(language: str, family: str) -> str:
    """The name a language adapter of `family` has in the evaluation model: its language code for
    the madx family (as it was saved), `<code>--<family>` for another family's adapter of the language."""
    return language if family == MADX else f"{language}--{family}"


def _compare_adapters(am: AdapterModel, task: str, source: str, language: str, encoded, label_set: LabelSet,
                      pad_token_id: int, batch_size: int, device) -> tuple[dict[str, list[list[str]]], dict[str, float]]:
    """The predicted tags of the COMPARED setups (madx, en-la) and the harm measures between them,
    from one forward pass per setup and batch: the hidden-state drift is taken batch by batch from
    the token head's inputs, so no third pass and no test set's worth of states in memory."""
    drift = HiddenDrift()
    target, reference = COMPARED
    activations = {setup: partial(am.set_active, *activation(setup, task, source, language, am.num_layers))
                   for setup in COMPARED}

    def compare(states, words) -> None:
        drift.add(states[target], states[reference], words)

    label_ids = predict_label_ids_under(am.model, encoded, pad_token_id, activations, batch_size, device,
                                        head=am.token_head, on_head_inputs=compare)
    predicted = {setup: predictions_to_tags(encoded, label_ids[setup], label_set) for setup in COMPARED}
    return predicted, harm_measures(predicted[target], predicted[reference], drift)


def activation(setup: str, task: str, source: str, language: str, num_layers: int) -> tuple[Stack, tuple[int, ...]]:
    """What `setup` (a row of SETUPS) activates when `language` is scored: the Stack of its language
    adapter (the target's, the source's, or none; of the setup's family) and task adapter `task`,
    and the layers whose adapters it leaves out."""
    row = SETUPS[setup]
    language_adapter = {"target": language, "source": source}.get(row.active)
    stack = Stack(task) if language_adapter is None else Stack(language_adapter_name(language_adapter, row.family), task)
    return stack, (num_layers - 1,) if row.skip_last_layer else ()


def _check_inputs(adapters: Mapping[str, FamilyAdapters], test_sets, setups) -> dict[str, str]:
    """Every missing piece is reported before any model is loaded; returns task -> the source
    language its task adapters were trained on (the same for every family)."""
    problems = []
    sources: dict[str, str] = {}
    tasks = sorted({task for task, _ in test_sets})
    for family in task_adapter_families(setups):
        given = adapters.get(family, FamilyAdapters({})).task_adapters
        for task in tasks:
            if task not in given:
                needing = [s for s in setups if SETUPS[s].task_family == family]
                problems.append(f"test set for task {task!r} but no {family} task adapter of it (setups {needing})")
                continue
            source = read_adapter_config(given[task])["metadata"].get("source_language")
            if not source:
                problems.append(f"task adapter {given[task]} does not record its source language")
            elif sources.setdefault(task, source) != source:
                problems.append(f"the task adapters of {task!r} were trained on different source languages "
                                f"({sources[task]!r}, {source!r})")
    for setup in setups:
        row = SETUPS[setup]
        languages = adapters.get(row.family, FamilyAdapters({})).language_adapters if row.family else {}
        needed = {language for _, language in test_sets} if row.active == "target" else \
            {sources[task] for task in tasks if task in sources} if row.active == "source" else set()
        for language in sorted(needed - set(languages)):
            what = "" if row.family == MADX else f"{row.family} "
            problems.append(f"setup {setup} needs a {what}language adapter for {language!r}; none is given")
    if not test_sets:
        problems.append("no test sets to evaluate")
    if problems:
        raise ConfigError("cannot evaluate: " + "; ".join(dict.fromkeys(problems)))
    return sources
