"""The low-resource benchmark (`madx benchmark`, configs/africa.yaml) end to end on the real shared
data, in its tests variant (configs/africa-fast.yaml: the same data, setups and recipe on a toy base)."""

from __future__ import annotations

from pathlib import Path

import yaml
from conftest import SHARED, needs_shared_data

from flows.config import load_pipeline_config
from flows_support import run_madx

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@needs_shared_data
def test_both_benchmark_configs_read_the_real_data_through_the_data_root(monkeypatch):
    monkeypatch.setenv("MADX_DATA_ROOT", str(SHARED))
    for name in ("africa.yaml", "africa-fast.yaml"):
        config = load_pipeline_config(CONFIGS / name)
        assert config.tasks["pos"].train.path == str(SHARED / "ud" / "en_ewt" / "train.txt")
        for code, source in config.tasks["pos"].test.items():
            assert source.path == str(SHARED / "masakhapos" / code / "test.txt")
        assert {"madx", "en-la", "ta-only"} <= set(config.evaluation.setups)
    assert "madx-noinv" in load_pipeline_config(CONFIGS / "africa-fast.yaml").evaluation.setups  # the ablation, tested
    real = load_pipeline_config(CONFIGS / "africa.yaml")
    assert sorted(real.target_languages("pos")) == ["hau", "ibo", "kin", "sna", "swa", "zul"]


@needs_shared_data
def test_the_fast_benchmark_runs_every_setup_on_the_real_data_and_removes_test_sentences(
        prefect_api, tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("MADX_DATA_ROOT", str(SHARED))
    raw = yaml.safe_load((CONFIGS / "africa-fast.yaml").read_text(encoding="utf-8"))
    raw["output_dir"] = str(tmp_path / "out")
    config = tmp_path / "africa-fast.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")

    ran = run_madx(capfd, monkeypatch, "run", config)
    assert ran.code == 0, ran.err
    report = (tmp_path / "out" / "report" / "report.md").read_text(encoding="utf-8")
    for setup in ("madx", "en-la", "no-la", "ta-only", "madx-noinv"):
        assert f"`{setup}`" in report
    for difference in ("madx − en-la", "madx − ta-only", "madx − madx-noinv"):
        assert difference in report
    # Every adapter's held-out perplexity at step 0, trained, and as saved (centred on its language).
    assert "| language | before training (step 0) | trained | centred | reduction |" in report
    # The Hausa news text holds sentences of the Hausa POS test set: removed before training, and said.
    assert "hau" in report and "pos/hau" in report
    adapters = tmp_path / "out" / "adapters"
    assert sorted(p.name for p in (adapters / "language").iterdir()) == ["en", "hau", "swa", "zul"]
    assert sorted(p.name for p in (adapters / "language-noinv").iterdir()) == ["en", "hau", "swa", "zul"]
    assert (adapters / "task-ta-only" / "pos" / "seed-1").is_dir()
