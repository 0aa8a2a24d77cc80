"""Stage behaviour that needs no Prefect run: an existing (e.g. imported) adapter stands in for training."""

from __future__ import annotations

from flows_support import write_pipeline

from madx.fileutil import sha256_of_directory


def test_a_configured_adapter_folder_is_used_instead_of_training(tmp_path, tiny_base_dir, toy_ner, tiny_language_adapter):
    from flows.config import load_pipeline_config
    from tasks.stages import train_language_adapter_task
    from tasks.tracking import TrackingTarget

    def use_existing(data):
        data["languages"]["sw"]["adapter"] = str(tiny_language_adapter)

    config = load_pipeline_config(write_pipeline(tmp_path, tiny_base_dir, toy_ner, edit=use_existing))
    unused = TrackingTarget("sqlite:///" + str(tmp_path / "never-created.db"), "unused")
    record = train_language_adapter_task.fn(config, "sw", str(tiny_base_dir), unused, "no-parent-run")
    assert record.path == str(tiny_language_adapter) and record.reused and record.run_id is None
    assert record.sha256 == sha256_of_directory(tiny_language_adapter)
    assert not (tmp_path / "never-created.db").exists()  # nothing was trained or tracked
