"""Stage behaviour that needs no Prefect run: an existing (e.g. imported) adapter stands in for training."""

from __future__ import annotations

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
