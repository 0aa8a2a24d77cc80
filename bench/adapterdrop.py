"""AdapterDrop at inference: skip the adapters of the first k layers; what it saves and what it costs.

    .venv/bin/python -m bench.adapterdrop [--threads 2] [--config configs/demo.yaml] [--seed 1] [--no-speed]

1. Speed, xlmr-base shape (random init): forward of Stack(LA madx_language, TA madx_task) + token
   head with `set_active(..., skip_layers=range(k))` for k in 0, 3, 6, 9, 12, and the bare base
   (a plain transformers model), same batch as `bench.ratios` (8 x 128), inference_mode,
   interleaved rounds, medians of round-by-round ratios. The invertible adapter on the embeddings still runs at every k
   (it belongs to the Stack, not to a layer).
2. Quality, on the trained pipeline of `--config` (default the demo, configs/demo.yaml, after
   `make demo`; read only; skipped when its adapters are not there): the score of the config's
   first task (word accuracy for POS, entity F1 for NER: the task's own metric) under Stack(<lang>,
   task) with the first k of its layers skipped, for the source language on its dev set (its own
   language adapter) and every target language with a language adapter and a test set, task
   adapter of seed `--seed` (one pass each: the score is deterministic), and those passes' times.
   The adapters' sha256 are recorded: the numbers belong to that trained run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench.common import (
    ROOT, CpuMeter, ensure_base_model, paired_ratio, parser, set_threads, time_interleaved, wait_for_quiet, write_results,
)  # fmt: skip
from bench.ratios import PLANS, bare_and_stacked_token_models, make_batch, tensors
from madx.composition import Stack
from madx.pretrained import load_model
from madx.model import AdapterModel

SPEED_KS = (0, 3, 6, 9, 12)
SPEED_ROUNDS = 5  # each round: bare + 5 values of k, ~1.3 s each on 2 idle cores


def bench_speed(quiet_wait: float, rounds: int = SPEED_ROUNDS) -> dict[str, Any]:
    plan = PLANS["xlmr-base"]
    base = ensure_base_model("xlmr-base")
    batch = tensors(make_batch(base, plan))
    ids, attention = batch["input_ids"], batch["attention_mask"]
    bare, am = bare_and_stacked_token_models(base)

    @torch.inference_mode()
    def forward(model) -> None:
        model(input_ids=ids, attention_mask=attention).logits

    def dropped(k: int):
        def call() -> None:
            am.set_active(Stack("la", "ta"), skip_layers=range(k))
            forward(am.model)

        return call

    calls = {"bare": (lambda: forward(bare), rounds)}
    calls.update({f"k={k}": (dropped(k), rounds) for k in SPEED_KS})
    wait_for_quiet(quiet_wait)
    for fn, _ in calls.values():
        fn()  # untimed
    with CpuMeter() as meter:
        timings, _ = time_interleaved(calls)
    full, bare_t = timings["k=0"], timings["bare"]
    rows = [{"k": k, "seconds": timings[f"k={k}"].to_dict(), "over_bare": paired_ratio(timings[f"k={k}"].runs, bare_t.runs),
             "speedup_over_k0": paired_ratio(full.runs, timings[f"k={k}"].runs)} for k in SPEED_KS]  # fmt: skip
    return {"shape": "xlmr-base", "batch": [plan.batch, plan.seq_len], "bare_seconds": bare_t.median, "rows": rows,
            "cpu": meter.to_dict()}  # fmt: skip


def bench_quality(config, task: str, seed: int, quiet_wait: float) -> dict[str, Any]:
    """Part 2 (module docstring) on `config`'s trained pipeline (see trained_task)."""
    from flows.pipeline import base_model_name
    from madx.fileutil import sha256_of_directory
    from madx.adapter_files import load_adapter, read_adapter_config
    from madx.pretrained import load_tokenizer, usable_length
    from tagging.alignment import encode_tagged
    from tagging.metrics import metric_name
    from tagging.predict import evaluate_tagging
    from tagging.readers import load_labeled
    from tagging.scheme import LabelSet
    from tasks.stages import language_adapter_folder, task_adapter_folder

    task_dir = task_adapter_folder(config.output_dir, task, seed)
    source = read_adapter_config(task_dir)["metadata"].get("source_language", config.source_language)
    sets = {source: config.labeled(task, "dev"), **{lang: config.labeled(task, "test", lang)
                                                    for lang in config.target_languages(task) if lang != source}}
    tested = {lang: data for lang, data in sets.items()
              if (language_adapter_folder(config.output_dir, lang) / "adapter_config.json").is_file()}
    base = base_model_name(config)
    tokenizer = load_tokenizer(base)
    am = AdapterModel(load_model(base, "token"))
    load_adapter(am, task_dir, name=task)
    label_set = LabelSet(tuple(am.model.config.id2label[i] for i in range(am.model.num_labels)))
    ks = list(range(am.num_layers + 1))
    max_length = usable_length(am.model.config, tokenizer, 128)
    out: dict[str, Any] = {"config": str(config.source_file), "task": task, "seed": seed, "metric": metric_name(label_set.scheme),
                           "source_language": source, "layers": am.num_layers, "ks": ks,
                           "sha256": {task: sha256_of_directory(task_dir)}, "score": {}, "seconds": {}}  # fmt: skip
    wait_for_quiet(quiet_wait)
    with CpuMeter() as meter:
        for lang, data in tested.items():
            folder = language_adapter_folder(config.output_dir, lang)
            load_adapter(am, folder, name=lang, with_head=False)
            out["sha256"][lang] = sha256_of_directory(folder)
            corpus = load_labeled(data)
            encoded = encode_tagged(corpus, tokenizer, label_set, max_length)

            def score(language: str, k: int, corpus=corpus, encoded=encoded):
                def call() -> float:
                    am.set_active(Stack(language, task), skip_layers=range(k))
                    # `f1` is the headline score of either scheme: word accuracy for plain tags
                    return evaluate_tagging(am.model, corpus, tokenizer, label_set, max_length, 64, encoded=encoded)["f1"]

                return call

            timings, last = time_interleaved({k: (score(lang, k), 1) for k in ks})  # the score is deterministic
            out["score"][lang] = {k: last[k] for k in ks}
            out["seconds"][lang] = {k: timings[k].median for k in ks}
            am.delete_adapter(lang)
    out["cpu"] = meter.to_dict()
    return out


def trained_task(config_file: Path, seed: int):
    """The pipeline config and its first task; LookupError (saying why) when that task's adapter of
    `seed` is not trained in the config's output folder."""
    from flows.config import load_pipeline_config
    from tasks.stages import task_adapter_folder

    config = load_pipeline_config(config_file)
    task = next(iter(config.tasks))
    folder = task_adapter_folder(config.output_dir, task, seed)
    if not (folder / "adapter_config.json").is_file():
        raise LookupError(f"no trained task adapter {task!r} of seed {seed} in {folder} (run the pipeline of "
                          f"{config_file} first)")
    return config, task


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.yaml",
                   help="the pipeline whose trained adapters the quality part scores (read only; default the demo)")
    p.add_argument("--seed", type=int, default=1, help="the task adapter's seed (default 1)")
    p.add_argument("--no-speed", action="store_true", help="skip the xlmr-base speed part")
    p.add_argument("--rounds", type=int, default=SPEED_ROUNDS, help=f"interleaved speed rounds (default {SPEED_ROUNDS})")
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    results: dict[str, Any] = {"threads": threads}
    if not args.no_speed:
        print(f"== AdapterDrop speed, xlmr-base shape: Stack(LA, TA) with the first k layers' adapters skipped, "
              f"{args.rounds} interleaved rounds", flush=True)  # fmt: skip
        s = results["speed"] = bench_speed(args.quiet_wait, args.rounds)
        print(f"   bare base          {s['bare_seconds']:.4f} s")
        for row in s["rows"]:
            print(f"   k={row['k']:<2d} skipped layers {row['seconds']['median']:.4f} s   / bare {row['over_bare']:.3f}   "
                  f"speed-up over k=0 {row['speedup_over_k0']:.3f}x")  # fmt: skip
        print(f"   other processes used {s['cpu']['other_busy_cores']} cores", flush=True)
    try:
        config, task = trained_task(args.config, args.seed)
    except LookupError as why:
        print(f"== AdapterDrop quality: skipped, {why}", flush=True)
        results["quality"] = {"skipped": str(why)}
    else:
        print(f"== AdapterDrop quality on the trained pipeline of {args.config}: {task} (seed {args.seed}) under "
              f"Stack(<lang>, {task}), first k layers skipped", flush=True)  # fmt: skip
        q = results["quality"] = bench_quality(config, task, args.seed, args.quiet_wait)
        print(f"   {'language':12s} " + " ".join(f"{'k=' + str(k):>7s}" for k in q["ks"]) + f"   ({q['metric']} x 100)")
        for lang, row in q["score"].items():
            tag = " (source, dev)" if lang == q["source_language"] else ""
            print(f"   {lang + tag:12s} " + " ".join(f"{100 * row[k]:7.1f}" for k in q["ks"]))
        total = {k: sum(seconds[k] for seconds in q["seconds"].values()) for k in q["ks"]}
        print("   time of one pass over every test set, relative to k=0 (single passes): "
              + ", ".join(f"k={k} {total[k] / total[0]:.2f}" for k in q["ks"]), flush=True)  # fmt: skip
    write_results("adapterdrop" if threads == 2 else f"adapterdrop-threads{threads}", results)
    return results


if __name__ == "__main__":
    main()
