"""AdapterDrop at inference: skip the adapters of the first k layers; what it saves and what it costs.

    .venv/bin/python -m bench.adapterdrop [--threads 2] [--demo-run runs/demo] [--no-speed]

1. Speed, xlmr-base shape (random init): forward of Stack(LA madx_language, TA madx_task) + token
   head with `set_active(..., skip_layers=range(k))` for k in 0, 3, 6, 9, 12, and the bare base
   (a plain transformers model), same batch as `bench.ratios` (8 x 128), inference_mode,
   interleaved rounds, medians of round-by-round ratios. The invertible adapter on the embeddings still runs at every k
   (it belongs to the Stack, not to a layer).
2. Quality, on a trained demo pipeline (`--demo-run`, default runs/demo, read only; skipped when
   absent): F1 (seqeval) of Stack(<language LA>, ner) with the first k of its layers skipped, for
   the source language (its own LA) and every target language that has an LA there, on
   data/ner/<lang>/test.conll (one pass each: F1 is deterministic), and those passes' times.
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


def bench_quality(run: Path, quiet_wait: float) -> dict[str, Any]:
    from madx.fileutil import sha256_of_directory
    from madx.adapter_files import load_adapter, read_adapter_config
    from madx.pretrained import load_tokenizer, usable_length
    from tagging.alignment import encode_tagged
    from tagging.predict import evaluate_tagging
    from tagging.readers import load_labeled
    from tagging.scheme import LabelSet
    from tagging.sources import LabeledSource

    base, task = run / "base_model", run / "adapters" / "task" / "ner"
    language_dir = run / "adapters" / "language"
    source = read_adapter_config(task)["metadata"].get("source_language", "en")
    languages = sorted(p.name for p in language_dir.iterdir() if (p / "adapter_config.json").is_file())
    tested = [lang for lang in languages if (ROOT / "data" / "ner" / lang / "test.conll").is_file()]
    tokenizer = load_tokenizer(base)
    am = AdapterModel(load_model(base, "token"))
    load_adapter(am, task, name="ner")
    label_set = LabelSet(tuple(am.model.config.id2label[i] for i in range(am.model.num_labels)))
    ks = list(range(am.num_layers + 1))
    max_length = usable_length(am.model.config, tokenizer, 128)
    out: dict[str, Any] = {"run": str(run), "source_language": source, "layers": am.num_layers, "ks": ks,
                           "sha256": {"ner": sha256_of_directory(task)}, "f1": {}, "seconds": {}}  # fmt: skip
    wait_for_quiet(quiet_wait)
    with CpuMeter() as meter:
        for lang in tested:
            load_adapter(am, language_dir / lang, name=lang, with_head=False)
            out["sha256"][lang] = sha256_of_directory(language_dir / lang)
            corpus = load_labeled(LabeledSource(format="conll", path=str(ROOT / "data" / "ner" / lang / "test.conll")))
            encoded = encode_tagged(corpus, tokenizer, label_set, max_length)

            def score(language: str, k: int, corpus=corpus, encoded=encoded):
                def call() -> float:
                    am.set_active(Stack(language, "ner"), skip_layers=range(k))
                    return evaluate_tagging(am.model, corpus, tokenizer, label_set, max_length, 64, encoded=encoded)["f1"]

                return call

            timings, last = time_interleaved({k: (score(lang, k), 1) for k in ks})  # F1 is deterministic
            out["f1"][lang] = {k: last[k] for k in ks}
            out["seconds"][lang] = {k: timings[k].median for k in ks}
            am.delete_adapter(lang)
    out["cpu"] = meter.to_dict()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--demo-run", type=Path, default=ROOT / "runs" / "demo", help="a trained demo pipeline (read only)")
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
    run = args.demo_run.resolve()
    if (run / "adapters" / "task" / "ner").is_dir() and (run / "base_model").is_dir():
        print(f"== AdapterDrop quality on the trained demo in {run}: F1 of Stack(<lang>, ner), first k layers skipped",
              flush=True)  # fmt: skip
        q = results["quality"] = bench_quality(run, args.quiet_wait)
        print(f"   {'language':12s} " + " ".join(f"{'k=' + str(k):>7s}" for k in q["ks"]) + "   (F1 x 100)")
        for lang, row in q["f1"].items():
            tag = " (source)" if lang == q["source_language"] else ""
            print(f"   {lang + tag:12s} " + " ".join(f"{100 * row[k]:7.1f}" for k in q["ks"]))
        total = {k: sum(seconds[k] for seconds in q["seconds"].values()) for k in q["ks"]}
        print("   time of one pass over every test set, relative to k=0 (single passes, small model): "
              + ", ".join(f"k={k} {total[k] / total[0]:.2f}" for k in q["ks"]), flush=True)  # fmt: skip
    else:
        print(f"== AdapterDrop quality: skipped, no trained demo pipeline in {run} (make demo makes one)", flush=True)
        results["quality"] = {"skipped": f"no trained demo in {run}"}
    write_results("adapterdrop" if threads == 2 else f"adapterdrop-threads{threads}", results)
    return results


if __name__ == "__main__":
    main()
