"""Hostile or broken pipeline configs are refused at load, naming the file, line or key, before any
work: YAML aliases (an alias bomb), keys given twice, non-finite and out-of-range numbers; and a
loss that turns non-finite during training fails the stage without saving anything."""

from __future__ import annotations

import resource
import time

import pytest
import yaml

from flows_support import write_pipeline
from madx.errors import ConfigError, TrainingFailedError


def written(tmp_path, text: str):
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    from flows.config import load_pipeline_config

    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]" for i in range(8)]
    path = written(tmp_path, "\n".join(levels) + "\n")  # 10^9 strings once expanded
    memory_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"pipeline.yaml:2: YAML alias \*a is not accepted"):
        load_pipeline_config(path)
    assert time.monotonic() - started < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - memory_before < 50_000  # KiB: nothing expanded


def test_a_key_given_twice_names_both_lines(tmp_path, tiny_base_dir, toy_ner):
    from flows.config import load_pipeline_config

    path = write_pipeline(tmp_path, tiny_base_dir, toy_ner)
    lines = path.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("languages:"))
    lines.insert(at + 1, "  sw: {corpus: corpora/en.txt}")  # a second sw, before the one written by write_pipeline
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pipeline.yaml:\d+: key 'sw' is given twice in one mapping \(also on line "
                                          rf"{at + 2}\)"):
        load_pipeline_config(path)


@pytest.mark.parametrize("section, key, value, message", [
    ("task_adapter", "learning_rate", float("inf"), "task_adapter.learning_rate: expected a finite number, got inf"),
    ("language_adapter", "learning_rate", float("nan"), "language_adapter.learning_rate: expected a finite number"),
    ("language_adapter", "mlm_probability", float("inf"), "language_adapter.mlm_probability: expected a finite"),
])
def test_non_finite_numbers_are_refused_with_their_key(tmp_path, tiny_base_dir, toy_ner, section, key, value, message):
    from flows.config import load_pipeline_config

    path = write_pipeline(tmp_path, tiny_base_dir, toy_ner, edit=lambda data: data[section].update({key: value}))
    assert (".inf" in path.read_text() or ".nan" in path.read_text())  # what a user writes in YAML
    with pytest.raises(ConfigError, match=message):
        load_pipeline_config(path)


def test_out_of_range_dropout_of_a_built_base_is_refused():
    from language_adapters.settings import BaseModelSpec

    with pytest.raises(ConfigError, match=r"dropout must be in \[0, 1\), got 1.5"):
        BaseModelSpec(dropout=1.5)


def test_a_loss_that_turns_non_finite_fails_the_stage_and_saves_nothing(tiny_base_dir, tiny_language_adapter, toy_ner,
                                                                         tmp_path):
    from tagging.sources import LabeledSource
    from task_adapters.settings import TaskAdapterTraining
    from task_adapters.train import train_task_adapter

    huge = TaskAdapterTraining(epochs=2, batch_size=8, learning_rate=1e30, warmup_ratio=0.0, max_length=48,
                               max_grad_norm=0.0)  # finite, but it blows every weight up at the first step
    with pytest.raises(TrainingFailedError, match=r"task adapter 'ner': the training loss is nan at step \d+; nothing "
                                                  "was saved"):
        train_task_adapter(tiny_base_dir, "ner", tiny_language_adapter,
                           LabeledSource("conll", path=toy_ner / "train.conll"),
                           LabeledSource("conll", path=toy_ner / "dev.conll"), tmp_path / "ner", huge)
    assert not (tmp_path / "ner").exists()


def test_ordinary_yaml_still_loads(tmp_path):
    from flows.config import read_yaml

    path = written(tmp_path, "a: 1\nb: {c: [1, 2], d: x}\n")
    assert read_yaml(path) == yaml.safe_load(path.read_text())


def test_a_folder_or_a_pipe_given_as_the_config_is_named_as_such(tmp_path):
    import os

    from flows.config import load_pipeline_config

    with pytest.raises(ConfigError, match="is a folder; give the pipeline's YAML file"):
        load_pipeline_config(tmp_path)
    os.mkfifo(tmp_path / "pipe.yaml")
    with pytest.raises(ConfigError, match="is not a regular file"):
        load_pipeline_config(tmp_path / "pipe.yaml")


def test_paths_that_cannot_work_are_refused_at_load(tmp_path, tiny_base_dir, toy_ner, monkeypatch):
    import os

    from flows.config import load_pipeline_config

    (tmp_path / "out").write_text("not a folder", encoding="utf-8")
    path = write_pipeline(tmp_path, tiny_base_dir, toy_ner)
    with pytest.raises(ConfigError, match=r"output_dir .*/out is an existing file"):
        load_pipeline_config(path)
    (tmp_path / "out").unlink()

    os.mkfifo(tmp_path / "corpora" / "piped.txt")  # what `--corpus <(cat f)` hands over
    piped = write_pipeline(tmp_path, tiny_base_dir, toy_ner,
                           edit=lambda data: data["languages"]["sw"].update(corpus="corpora/piped.txt"))
    with pytest.raises(ConfigError, match=r"languages.sw.corpus: .*piped.txt is not a regular file or folder"):
        load_pipeline_config(piped)


def test_a_relative_sqlite_store_is_relative_to_the_yaml_like_every_other_path(tmp_path, tiny_base_dir, toy_ner,
                                                                              monkeypatch):
    from flows.config import load_pipeline_config

    path = write_pipeline(tmp_path / "project", tiny_base_dir, toy_ner, tracking_uri="sqlite:///store/mlflow.db")
    monkeypatch.chdir(tmp_path)  # elsewhere
    assert load_pipeline_config(path).tracking_uri == f"sqlite:///{tmp_path / 'project' / 'store' / 'mlflow.db'}"
    absolute = write_pipeline(tmp_path / "abs", tiny_base_dir, toy_ner, tracking_uri=f"sqlite:///{tmp_path}/x.db")
    assert load_pipeline_config(absolute).tracking_uri == f"sqlite:///{tmp_path}/x.db"


def test_evaluating_an_unconfigured_language_is_refused_before_any_work(tmp_path, tiny_base_dir, toy_ner):
    from flows.pipeline import evaluate_zero_shot

    path = write_pipeline(tmp_path, tiny_base_dir, toy_ner)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"languages \['zz'\] are not in .*pipeline.yaml \(languages: \['en', 'sw'\]\)"):
        evaluate_zero_shot.fn(str(path), ["zz"])  # the flow's own code, without Prefect
    assert time.monotonic() - started < 5 and not (tmp_path / "out").exists()  # no store, no base model
