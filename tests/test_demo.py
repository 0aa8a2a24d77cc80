"""The fast demo end to end, as a user runs it: `madx run`, then `madx add-language`, then `madx results`.

The demo's own config (configs/demo-fast.yaml) is copied with its output folder moved into a
temporary directory, so the test never writes into the checkout. `madx run` is the installed
command in a subprocess, with no Prefect server configured (it starts and stops its own, as in a
terminal); the commands after it run through the same entry point in this process, against the
session's Prefect test API (a subprocess would add ~10 s of imports and prove nothing more).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flows_support import run_madx

pytestmark = pytest.mark.slow  # the fast demo itself, as a subprocess

REPO = Path(__file__).resolve().parents[1]
MADX = Path(sys.executable).with_name("madx")


def _absolute(value, base: Path):
    if isinstance(value, str) and value.startswith("../"):
        return str((base / value).resolve())
    if isinstance(value, list):
        return [_absolute(v, base) for v in value]
    if isinstance(value, dict):
        return {k: _absolute(v, base) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def fast_config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    raw = yaml.safe_load((REPO / "configs" / "demo-fast.yaml").read_text())
    raw = _absolute(raw, REPO / "configs")
    raw["output_dir"] = str(folder / "out")
    path = folder / "demo-fast.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def madx(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "120"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([str(MADX), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


@pytest.fixture(scope="module")
def demo_run(fast_config):
    result = madx("run", str(fast_config))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_fast_demo_runs_end_to_end(demo_run, fast_config):
    out = Path(yaml.safe_load(fast_config.read_text())["output_dir"])
    text = demo_run.stdout
    assert "zero-shot entity F1 (%)" in text and "madx − no-la" in text and "done in" in text
    assert "en dev entity F1:" in text and "majority-label baseline 0.0" in text  # beside the zero-shot table
    assert "madx ui" in text and str(out / "report" / "report.md") in text.replace("\n", "")
    assert "mean ± sd over seeds 1, 2, 3" in " ".join(text.split())  # the table's caption
    rows = json.loads((out / "report" / "results.json").read_text())
    assert {(r["language"], r["setup"], r["seed"]) for r in rows} == {
        (lang, setup, seed) for lang in ("sw", "yo") for setup in ("madx", "en-la", "no-la") for seed in (1, 2, 3)
    }
    differences = json.loads((out / "report" / "summary.json").read_text())["differences"]
    assert {(d["comparison"], d["language"]) for d in differences} == {
        (comparison, lang) for comparison in ("madx − no-la", "madx − en-la") for lang in ("sw", "yo", "average")}
    assert all(d["low"] <= d["estimate"] <= d["high"] and d["seeds"] == 3 for d in differences)
    for folder in [*(f"language/{code}" for code in ("en", "sw", "yo")), *(f"task/ner/seed-{seed}" for seed in (1, 2, 3))]:
        assert (out / "adapters" / folder / "adapter.safetensors").is_file()
    assert (out / "base_model" / "model.safetensors").is_file() and (out / "mlflow.db").is_file()


def test_the_runs_prefect_server_is_gone_when_it_returns(demo_run):
    """No PREFECT_API_URL here: `madx run` started Prefect's temporary API server itself (its flow
    run links name the port) and stopped it before exiting."""
    ports = {int(port) for port in re.findall(r"http://127\.0\.0\.1:(\d+)/runs/", demo_run.stdout + demo_run.stderr)}
    assert len(ports) == 1, ports
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", ports.pop())) != 0


def test_add_language_in_one_command_appears_in_the_comparison(demo_run, fast_config, prefect_api, capfd, monkeypatch):
    out = Path(yaml.safe_load(fast_config.read_text())["output_dir"])
    result = run_madx(capfd, monkeypatch, "add-language", "es", "--corpus", REPO / "data" / "udhr" / "es.txt",
                      "--config", fast_config)
    assert result.code == 0, result.out[-3000:] + result.err[-3000:]
    assert (out / "adapters" / "language" / "es" / "adapter.safetensors").is_file()
    rows = json.loads((out / "report" / "results.json").read_text())
    assert {r["language"] for r in rows} == {"es", "sw", "yo"}  # the earlier results are kept
    table = run_madx(capfd, monkeypatch, "results", fast_config)
    assert table.code == 0 and "es" in table.out and "sw" in table.out


def test_rerun_reuses_unchanged_adapters(demo_run, fast_config, prefect_api, capfd, monkeypatch):
    result = run_madx(capfd, monkeypatch, "train-language", "sw", "--config", fast_config)
    assert result.code == 0, result.err[-2000:]
    assert "reused (unchanged)" in result.out


def test_a_user_error_inside_a_flow_is_one_line(demo_run, fast_config, tmp_path, prefect_api, capfd, monkeypatch):
    """A corpus in the wrong encoding fails inside the flow: exit 1, the file and line, no traceback."""
    raw = yaml.safe_load(fast_config.read_text())
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Habari\ncaf\xe9 na chai\n".encode("latin-1"))
    raw["languages"]["sw"]["corpus"] = str(bad)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = run_madx(capfd, monkeypatch, "train-language", "sw", "--config", path)
    assert result.code == 1
    assert "Traceback" not in result.out + result.err
    assert result.errors == [f"error: {bad}:2: not UTF-8 (byte 3 of the line is 0xe9); re-encode the corpus as UTF-8"]
