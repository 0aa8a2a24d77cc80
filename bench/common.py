"""What every benchmark script shares: the thread count, model shapes built offline, timing, JSON output.

Models are random-init (throughput and swap cost do not depend on the weights' values) and are
built once into `.cache/bench/<shape>/` (git-ignored): an ordinary transformers folder with an
XLM-R config, MLM weights and a SentencePiece tokenizer trained on the bundled UDHR text. The
tokenizer has about 1,000 pieces; the config's vocabulary is the shape's (250,002 for xlmr-base),
so the embedding and MLM-head cost is the real model's while every id the tokenizer makes is valid.
"""

from __future__ import annotations

import os

# Offline before transformers is imported: a benchmark must never wait on a network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoModelForMaskedLM, AutoTokenizer, XLMRobertaConfig

from bench.timing import (  # noqa: F401 (re-exported)
    CpuMeter, Timing, paired_ratio, summarize, time_interleaved, wait_for_quiet,
)  # fmt: skip
from madx.fileutil import atomic_directory, atomic_write_text
from madx.pretrained import xlmr_config
from madx.tokenizer import train_sentencepiece_tokenizer

ROOT = Path(__file__).resolve().parent.parent
UDHR_DIR = ROOT / "data" / "udhr"
CACHE_DIR = ROOT / ".cache" / "bench"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
SHAPE_FILE = "bench_shape.json"
TOKENIZER_PIECES = 990  # SentencePiece pieces; with XLM-R's added tokens the tokenizer stays <= 1000

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()


# -- model shapes --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelShape:
    """The sizes of an XLM-R encoder; the weights are random."""

    name: str
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int = 514  # XLM-R counts positions from pad_id + 1: 512 tokens need 514

    def config(self, tokenizer) -> XLMRobertaConfig:
        # dropout and layer norm as in the published xlm-roberta-base checkpoint
        return xlmr_config(tokenizer, vocab_size=self.vocab, hidden=self.hidden, layers=self.layers, heads=self.heads,
                           ffn=self.ffn, max_length=self.max_positions - 2, layer_norm_eps=1e-5)


SHAPES: dict[str, ModelShape] = {
    "tiny": ModelShape("tiny", hidden=64, layers=2, heads=2, ffn=256, vocab=1000),
    "xlmr-base": ModelShape("xlmr-base", hidden=768, layers=12, heads=12, ffn=3072, vocab=250_002),
}


def udhr_lines() -> list[str]:
    """Every non-empty line of the bundled UDHR text, all languages, in file-name order."""
    files = sorted(UDHR_DIR.glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no bundled UDHR text under {UDHR_DIR}")
    return [line.strip() for path in files for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_udhr_corpus(path: Path) -> Path:
    """All bundled languages in one text file: one language alone fills too few batches."""
    path.write_text("\n".join(udhr_lines()) + "\n", encoding="utf-8")
    return path


def _tokenizer_dir() -> Path:
    folder = CACHE_DIR / "tokenizer"
    if not (folder / "tokenizer.json").is_file():
        train_sentencepiece_tokenizer(udhr_lines(), folder, vocab_size=TOKENIZER_PIECES)
    return folder


def ensure_base_model(shape: ModelShape | str) -> Path:
    """The cached folder of `shape` (config, random MLM weights, tokenizer); built on first use."""
    shape = SHAPES[shape] if isinstance(shape, str) else shape
    folder = CACHE_DIR / shape.name
    tokenizer_dir = _tokenizer_dir()
    record = {"shape": dataclasses.asdict(shape), "tokenizer_sha256": _file_sha256(tokenizer_dir / "tokenizer.json")}
    try:
        if json.loads((folder / SHAPE_FILE).read_text(encoding="utf-8")) == record:
            return folder
    except (FileNotFoundError, json.JSONDecodeError):
        pass
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    if len(tokenizer) > shape.vocab:
        raise ValueError(f"tokenizer has {len(tokenizer)} entries, more than the {shape.name} vocabulary {shape.vocab}")
    print(f"[bench] building random-init {shape.name} model in {folder} (once; reused afterwards)", flush=True)
    started = time.perf_counter()
    with atomic_directory(folder) as staging:
        torch.manual_seed(0)
        AutoModelForMaskedLM.from_config(shape.config(tokenizer)).save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / SHAPE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"[bench] built {shape.name} in {time.perf_counter() - started:.1f} s", flush=True)
    return folder


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- threads and command line --------------------------------------------------------------------
def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument(
        "--quiet-wait", type=float, default=30, metavar="SECONDS",
        help="before each measurement wait up to this long for other processes to leave the CPUs (0: never wait)",
    )  # fmt: skip
    return p


def set_threads(threads: int) -> int:
    """Fix torch's intra-op thread count (results are only comparable at the same count); report it."""
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    actual = torch.get_num_threads()
    print(f"[bench] torch threads: {actual} intra-op, {torch.get_num_interop_threads()} inter-op; "
          f"load average {_loadavg()}", flush=True)  # fmt: skip
    return actual


# -- results -------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    return {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1_5_15": _loadavg(),
        "git_commit": _git_commit(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def write_results(name: str, results: dict[str, Any]) -> Path:
    """Write `bench/results/<name>.json`: the results plus the machine they were measured on."""
    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": name, "machine": machine_info(), "results": results}
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
    print(f"[bench] wrote {path.relative_to(ROOT)}", flush=True)
    return path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"
