"""The cost of swapping the language adapter under a task adapter, and parameter counts, on xlmr-base.

    .venv/bin/python -m bench.swap [--threads 2]

On a random-init xlmr-base-shaped token-classification model carrying LAs `en` and `sw` (MAD-X
language preset) and TA `ner` (MAD-X task preset) with a token head:
  (a) `set_active(Stack(<other LA>, "ner"))` alone, alternating en/sw so every call changes the setup;
  (b) `load_adapter` of a saved MAD-X language-adapter folder + `set_active`, and `delete_adapter`
      (the folder is read from the OS page cache after the first load: warm-cache numbers);
  (c) parameter counts: `madx.parameter_counts.preset_parameter_counts` on the xlmr-base shape, trainable /
      total when training an LA (`train_adapter("sw")` on the MLM model) and when training the TA
      under Stack(en, ner) (TA + head train, en stays frozen).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForMaskedLM, AutoModelForTokenClassification

from bench.common import (
    SHAPES,
    CpuMeter,
    ensure_base_model,
    parser,
    set_threads,
    summarize,
    wait_for_quiet,
    write_results,
)
from madx.composition import Stack
from madx.adapter_files import load_adapter, save_adapter
from madx.model import AdapterModel, ParameterCount
from madx.parameter_counts import preset_parameter_counts

NER_LABELS = ("O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER")
SET_ACTIVE_REPEATS, LOAD_REPEATS, WARMUP = 100, 10, 2


def ms(timing) -> dict[str, Any]:
    return {
        "median_ms": 1e3 * timing.median,
        "min_ms": 1e3 * timing.min,
        "max_ms": 1e3 * timing.max,
        "runs": len(timing.runs),
    }


def count(c: ParameterCount) -> dict[str, Any]:
    return {"trainable": c.trainable, "total": c.total, "percent": 100 * c.fraction}


def bench_swapping(base: Path, workdir: Path, quiet_wait: float) -> dict[str, Any]:
    torch.manual_seed(0)
    am = AdapterModel(AutoModelForTokenClassification.from_pretrained(str(base), num_labels=len(NER_LABELS)))
    for name, preset in (("en", "madx_language"), ("sw", "madx_language"), ("ner", "madx_task")):
        am.add_adapter(name, preset)
    am.new_token_head(dict(enumerate(NER_LABELS)))
    am.model.eval()
    folder = save_adapter(am, "sw", workdir / "sw")
    folder_bytes = sum(p.stat().st_size for p in folder.iterdir())

    # (a) the swap itself: which adapters each block runs, nothing else
    wait_for_quiet(quiet_wait)
    setups = [Stack("sw", "ner"), Stack("en", "ner")]
    runs = []
    with CpuMeter() as meter_a:
        for i in range(WARMUP + SET_ACTIVE_REPEATS):
            started = time.perf_counter()
            am.set_active(setups[i % 2])
            if i >= WARMUP:
                runs.append(time.perf_counter() - started)
    set_active = summarize(runs, WARMUP)

    # (b) bring a new language in from disk, activate it, drop it again
    am.delete_adapter("sw")
    am.set_active(Stack("en", "ner"))
    wait_for_quiet(quiet_wait)
    load_runs, delete_runs = [], []
    with CpuMeter() as meter_b:
        for i in range(WARMUP + LOAD_REPEATS):
            started = time.perf_counter()
            load_adapter(am, folder, name="sw", with_head=False)
            am.set_active(Stack("sw", "ner"))
            loaded = time.perf_counter()
            am.delete_adapter("sw")  # also deactivates: the model runs no adapter until set_active
            deleted = time.perf_counter()
            am.set_active(Stack("en", "ner"))
            if i >= WARMUP:
                load_runs.append(loaded - started)
                delete_runs.append(deleted - loaded)
    load_and_activate, delete = summarize(load_runs, WARMUP), summarize(delete_runs, WARMUP)

    # (c) what trains when the task adapter trains under Stack(en, ner)
    am.set_active(Stack("en", "ner"))
    ta_training = am.train_adapter("ner", train_head=True)
    return {
        "model": "AutoModelForTokenClassification, xlmr-base shape, random init",
        "adapters_loaded": sorted(am.configs),
        "la_parameters": am.adapter_parameter_count("en"),
        "ta_parameters": am.adapter_parameter_count("ner"),
        "la_folder_bytes": folder_bytes,
        "set_active": {**ms(set_active), "cpu": meter_a.to_dict()},
        "load_adapter_plus_set_active": {**ms(load_and_activate), "cpu": meter_b.to_dict()},
        "delete_adapter": ms(delete),
        "ta_training_under_stack_en_ner": count(ta_training),
    }


def la_training_count(base: Path) -> dict[str, Any]:
    """Trainable / total for LA training on the MLM model (shapes only: built on the meta device)."""
    config = AutoConfig.from_pretrained(str(base))
    with torch.device("meta"):
        am = AdapterModel(AutoModelForMaskedLM.from_config(config))
    am.add_adapter("sw", "madx_language")
    return count(am.train_adapter("sw"))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    threads = set_threads(args.threads)
    shape = SHAPES["xlmr-base"]
    base = ensure_base_model(shape)
    with tempfile.TemporaryDirectory(prefix="bench-swap-") as tmp:
        swap = bench_swapping(base, Path(tmp), args.quiet_wait)
    presets = preset_parameter_counts("xlm-roberta", shape.hidden, shape.layers, shape.vocab)
    la_training = la_training_count(base)

    print("\n== swapping the language adapter under the task adapter (xlmr-base shape)")
    a, b, d = swap["set_active"], swap["load_adapter_plus_set_active"], swap["delete_adapter"]
    print(f"   set_active(Stack(other, ner))        median {1e3 * a['median_ms']:9.1f} us  (min {1e3 * a['min_ms']:.1f}, "
          f"max {1e3 * a['max_ms']:.1f}, n={a['runs']})")  # fmt: skip
    print(f"   load_adapter(LA folder) + set_active median {b['median_ms']:9.1f} ms  (min {b['min_ms']:.1f}, "
          f"max {b['max_ms']:.1f}, n={b['runs']}; folder {swap['la_folder_bytes'] / 2**20:.1f} MiB)")  # fmt: skip
    print(f"   delete_adapter                       median {d['median_ms']:9.1f} ms  (min {d['min_ms']:.1f}, "
          f"max {d['max_ms']:.1f}, n={d['runs']})")  # fmt: skip
    print(f"   other processes used {b['cpu']['other_busy_cores']} cores during the loads")
    print("\n== parameter counts, xlmr-base shape (madx.parameter_counts.preset_parameter_counts)")
    print(f"   {'preset':14s} {'parameters':>12s} {'% of base':>10s} {'bottleneck':>10s}  invertible")
    for row in presets:
        print(f"   {row['preset']:14s} {row['parameters']:12,d} {row['percent_of_base']:9.2f}% {row['bottleneck']:10d}  "
              f"{row['invertible']}")  # fmt: skip
    print(f"   (base model: {presets[0]['base_parameters']:,} parameters)")
    for label, c in (("LA training, train_adapter('sw'), MLM model", la_training),
                     ("TA training under Stack(en, ner), token model", swap["ta_training_under_stack_en_ner"])):  # fmt: skip
        print(f"   {label:46s} {c['trainable']:12,d} trainable of {c['total']:,} ({c['percent']:.2f} %)")
    results = {
        "threads": threads,
        "shape": dataclasses.asdict(shape),
        "swap": swap,
        "preset_parameter_counts": presets,
        "la_training_parameters": la_training,
    }
    write_results("swap" if threads == 2 else f"swap-threads{threads}", results)
    return results


if __name__ == "__main__":
    main()
