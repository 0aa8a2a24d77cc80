"""Stage behaviour that needs no Prefect run: an existing (e.g. imported) adapter stands in for training;
a stage names its scores for what they are in its progress line, log and MLflow run."""

from __future__ import annotations

import re

from flows_support import write_pipeline

from madx.fileutil import sha256_of_directory


def test_a_configured_adapter_folder_is_used_instead_of_training(tmp_path, tiny_base_dir, toy_ner, tiny_language_adapter):
    from flows.config import load_pipeline_config
    from flows.pipeline import language_job
    from tasks.stages import StageContext, train_language_adapter_task
    from tasks.tracking_store import TrackingTarget

    def use_existing(data):
        data["languages"]["sw"]["adapter"] = str(tiny_language_adapter)

    config = load_pipeline_config(write_pipeline(tmp_path, tiny_base_dir, toy_ner, edit=use_existing))
    unused = TrackingTarget("sqlite:///" + str(tmp_path / "never-created.db"), "unused")
    context = StageContext(str(tmp_path / "out"), unused, "no-parent-run", config.fingerprint(), threads=1)
    record = train_language_adapter_task.fn(context, language_job(config, "sw"), str(tiny_base_dir))
    assert record.path == str(tiny_language_adapter) and record.reused and record.run_id is None
    assert record.sha256 == sha256_of_directory(tiny_language_adapter)
    assert not (tmp_path / "never-created.db").exists()  # nothing was trained or tracked


def test_a_base_model_is_identified_by_content_not_by_place_or_time(tmp_path, tiny_base_dir):
    """`cp -r` of an output folder (new place, new modification times) must not retrain its adapters;
    a changed weight must."""
    import shutil

    from tasks.stages import base_model_identity

    copy = tmp_path / "copied-base"
    shutil.copytree(tiny_base_dir, copy, copy_function=shutil.copyfile)  # new mtimes, like a plain cp -r
    assert base_model_identity(str(copy)) == base_model_identity(str(tiny_base_dir))
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert base_model_identity(str(copy)) != base_model_identity(str(tiny_base_dir))
    assert base_model_identity("xlm-roberta-base") == "xlm-roberta-base"  # a hub name is its own identity


def test_a_pos_task_adapters_progress_names_its_score_word_accuracy(tmp_path, tiny_base_dir, tiny_language_adapter,
                                                                    toy_ner, mlflow_template):
    """POS is scored by word accuracy: the task adapter's progress bar, its log lines and its MLflow
    run say `dev_word_accuracy`, never `dev_f1` in the line (the run keeps `dev_f1` too, which the
    report and earlier runs read, and the two agree on the epoch kept)."""
    import io
    import logging
    import shutil

    from mlflow import MlflowClient
    from rich.console import Console

    from tagging.sources import LabeledSource
    from task_adapters.settings import TaskAdapterTraining
    from tasks.progress import show_progress
    from tasks.stages import AdapterRecord, StageContext, TaskAdapterJob, train_task_adapter_task
    from tasks.tracking_store import TrackingTarget

    for split in ("train", "dev"):  # POS-like plain tags: the toy sentences' names PROPN, every other word X
        lines = [line and line.split("\t")[0] + ("\tX" if line.endswith("\tO") else "\tPROPN")
                 for line in (toy_ner / f"{split}.conll").read_text(encoding="utf-8").splitlines()]
        (tmp_path / f"{split}.conll").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copyfile(mlflow_template, tmp_path / "mlflow.db")
    target = TrackingTarget(f"sqlite:///{tmp_path / 'mlflow.db'}", "progress-names", (tmp_path / "mlartifacts").as_uri())
    context = StageContext(str(tmp_path / "out"), target, None, "config-hash", threads=1)
    job = TaskAdapterJob("pos", LabeledSource("conll", path=tmp_path / "train.conll"),
                         LabeledSource("conll", path=tmp_path / "dev.conll"),
                         TaskAdapterTraining(epochs=3, batch_size=8, learning_rate=3e-2, warmup_ratio=0.0, max_length=48,
                                             min_gain_over_majority=0.0, device="cpu"), "en")
    source = AdapterRecord("en", str(tiny_language_adapter), sha256_of_directory(tiny_language_adapter), None, True)
    shown, messages = io.StringIO(), []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    log = logging.getLogger("madx")  # what a stage logs to outside a Prefect run
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with show_progress(Console(file=shown, width=200)):
            record = train_task_adapter_task.fn(context, job, str(tiny_base_dir), source)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)

    logged = [message for message in messages if message.startswith("task adapter pos: eval")]
    assert len(logged) == 3 and all(re.search(r"dev_word_accuracy=0\.\d+", line) for line in logged), logged
    assert re.search(r"task adapter pos .* dev_word_accuracy=0\.\d+", shown.getvalue()), shown.getvalue()
    assert "dev_f1" not in shown.getvalue() + "".join(logged)
    run = MlflowClient(target.uri).get_run(record.run_id)
    assert run.data.metrics["dev_word_accuracy"] == run.data.metrics["dev_f1"] > 0
    curve = MlflowClient(target.uri).get_metric_history(record.run_id, "dev_word_accuracy")
    assert sorted({point.step for point in curve}) == [1, 2, 3]
