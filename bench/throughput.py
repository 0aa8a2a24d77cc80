"""Throughput of language-adapter training and of tagging inference, on random-init model shapes.

    .venv/bin/python -m bench.throughput [--threads 2] [--shapes tiny xlmr-base]

1. LA training: the real `train_language_adapter` (MLM, MAD-X language preset) on the bundled UDHR
   text of all languages, a few steps. Reports the function's own `tokens_per_second` (real tokens,
   training steps only), a steady-state rate that leaves out step 1, and the call's wall time
   (model load, tokenisation, the step-0 and final held-out evaluations and the save included).
2. Evaluation: `predict_label_ids` (length-sorted batches, each padded to its own longest row) on
   the synthetic German NER test set through Stack(LA, TA) + token head, against a baseline that
   pads every row to `max_length` in file order. Both are timed on the same encoded rows; the
   end-to-end `evaluate_tagging` (encoding and seqeval included) is timed too.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from bench.common import (
    ROOT,
    CpuMeter,
    SHAPES,
    ensure_base_model,
    fmt_rate,
    parser,
    set_threads,
    summarize,
    time_interleaved,
    wait_for_quiet,
    write_results,
    write_udhr_corpus,
)
from language_adapters.settings import LanguageAdapterTraining
from language_adapters.train import train_language_adapter
from madx.composition import Stack
from madx.model import AdapterModel
from tagging.alignment import encode_tagged
from tagging.predict import evaluate_tagging, predict_label_ids
from tagging.readers import load_labeled
from tagging.scheme import LabelSet
from tagging.sources import LabeledSource

NER_TRAIN = ROOT / "data" / "ner" / "en" / "train.conll"  # the label set a task adapter would have
NER_TEST = ROOT / "data" / "ner" / "de" / "test.conll"


@dataclass(frozen=True)
class Plan:
    """How much work per shape: enough for stable numbers, small enough for ~5 minutes on 2 cores."""

    train_steps: int
    train_batch: int
    seq_len: int = 128
    eval_batch: int = 64
    eval_max_length: int = 128
    eval_repeats: int = 3  # full passes of each of dynamic and padded, interleaved
    eval_rows: int | None = None  # the test set's first N sentences (None: all 300)
    e2e_repeats: int = 1  # 0: skip (encoding and seqeval cost the same on every shape)


# xlmr-base on 2 CPU cores: one training step of 8 x 128 tokens takes ~20-40 s (the 250,002-way MLM
# head costs about twice the encoder), one pass over the test set ~35-70 s; hence single runs.
PLANS = {
    "tiny": Plan(train_steps=50, train_batch=16, eval_repeats=7, e2e_repeats=3),
    "xlmr-base": Plan(train_steps=5, train_batch=8, eval_repeats=1, e2e_repeats=0),
}


# -- 1. language-adapter training ----------------------------------------------------------------
def bench_la_training(base: Path, plan: Plan, workdir: Path, quiet_wait: float) -> dict[str, Any]:
    corpus = write_udhr_corpus(workdir / "udhr_all.txt")
    training = LanguageAdapterTraining(
        steps=plan.train_steps,
        batch_size=plan.train_batch,
        max_length=plan.seq_len,
        warmup_steps=0,
        held_out_fraction=1e-3,  # one held-out sequence: its evaluation (step 0, end) is not what we time
        eval_every=plan.train_steps,
        log_every=1,  # one event per step, so step times can be read off the event clock
        checkpoint_every=0,
        device="cpu",
    )
    event_times: dict[int, float] = {}

    def on_event(kind: str, step: int, metrics: dict[str, float]) -> None:
        if kind == "train":
            event_times[step] = time.perf_counter()

    wait_for_quiet(quiet_wait)
    with CpuMeter() as meter:
        result = train_language_adapter(
            base, "mul", str(corpus), workdir / "la", training=training, checkpoint_dir=workdir / "la.checkpoint",
            on_event=on_event,
        )  # fmt: skip
    m = result.metrics
    tokens_per_step = m["train_tokens_seen"] / m["steps"]
    # Between the step-1 and the last step's events only training steps run (the held-out
    # evaluations come before step 1 and after the last event), so this leaves out step 1's warm-up.
    steps = sorted(event_times)
    step_times = [event_times[b] - event_times[a] for a, b in zip(steps, steps[1:])]
    steady = summarize(step_times) if step_times else None
    return {
        "steps": int(m["steps"]),
        "batch_size": plan.train_batch,
        "seq_len": plan.seq_len,
        "tokens_per_step": tokens_per_step,
        "tokens_per_second": m["tokens_per_second"],
        "steady_tokens_per_second": tokens_per_step / steady.median if steady else None,
        "step_seconds_median_after_first": steady.median if steady else None,
        "wall_seconds": meter.wall,
        "cpu": meter.to_dict(),
        "trainable_parameters": int(m["trainable_parameters"]),
        "total_parameters": int(m["total_parameters"]),
        "train_sequences": int(m["train_sequences"]),
        "final_train_loss": m["train_loss"],
    }


# -- 2. evaluation -------------------------------------------------------------------------------
@torch.inference_mode()
def predict_padded_to_max(model, encoded, pad_token_id: int, batch_size: int, max_length: int) -> list[list[int]]:
    """Baseline: rows in file order, every batch padded to `max_length` (static shapes)."""
    model.eval()
    input_ids = encoded["input_ids"]
    predictions = []
    for start in range(0, len(input_ids), batch_size):
        rows = input_ids[start : start + batch_size]
        ids = torch.full((len(rows), max_length), pad_token_id, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
        attention = (ids != pad_token_id).long()
        best = model(input_ids=ids, attention_mask=attention).logits.argmax(dim=-1)
        predictions.extend(best[i, : len(row)].tolist() for i, row in enumerate(rows))
    return predictions


def bench_evaluation(base: Path, plan: Plan, quiet_wait: float) -> dict[str, Any]:
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    label_set = LabelSet.from_sentences(load_labeled(LabeledSource(format="conll", path=str(NER_TRAIN))))
    corpus = load_labeled(LabeledSource(format="conll", path=str(NER_TEST)))
    if plan.eval_rows is not None:  # the first N sentences, still a TaggedCorpus (scoring needs its tags)
        corpus = dataclasses.replace(corpus, sentences=corpus.sentences[: plan.eval_rows])
    torch.manual_seed(0)
    am = AdapterModel(AutoModelForTokenClassification.from_pretrained(str(base), num_labels=len(label_set)))
    am.add_adapter("de", "madx_language")
    am.add_adapter("ner", "madx_task")
    am.new_token_head(label_set.id2label)
    am.set_active(Stack("de", "ner"))
    model = am.model.eval()

    encoded = encode_tagged(corpus, tokenizer, label_set, plan.eval_max_length)
    lengths = [len(row) for row in encoded["input_ids"]]
    real_tokens, rows, sentences = sum(lengths), len(lengths), len(corpus)
    pad = tokenizer.pad_token_id
    warm = encoded.select(range(min(8, rows)))  # a small batch primes threads and allocator

    calls = {
        "dynamic": (lambda: predict_label_ids(model, encoded, pad, plan.eval_batch), plan.eval_repeats),
        "padded": (
            lambda: predict_padded_to_max(model, encoded, pad, plan.eval_batch, plan.eval_max_length),
            plan.eval_repeats,
        ),
    }
    if plan.e2e_repeats:
        calls["end_to_end"] = (
            lambda: evaluate_tagging(model, corpus, tokenizer, label_set, plan.eval_max_length, plan.eval_batch),
            plan.e2e_repeats,
        )
    wait_for_quiet(quiet_wait)
    predict_label_ids(model, warm, pad, plan.eval_batch)  # warm-up: a small batch, not a whole pass
    with CpuMeter() as meter:
        timings, last = time_interleaved(calls)
    dynamic, padded, end_to_end = timings["dynamic"], timings["padded"], timings.get("end_to_end")
    # Same answers either way (up to float noise): the speed-up is not bought with different results.
    a, b = last["dynamic"], last["padded"]
    agree = sum(x == y for ra, rb in zip(a, b) for x, y in zip(ra, rb)) / real_tokens

    def rates(timing) -> dict[str, Any]:
        return {
            "seconds": timing.to_dict(),
            "tokens_per_second": real_tokens / timing.median,
            "sentences_per_second": sentences / timing.median,
        }

    dynamic_batches = [sorted(lengths)[i : i + plan.eval_batch] for i in range(0, rows, plan.eval_batch)]
    return {
        "test_set": str(NER_TEST.relative_to(ROOT)),
        "sentences": sentences,
        "rows": rows,
        "real_tokens": real_tokens,
        "mean_row_length": real_tokens / rows,
        "batch_size": plan.eval_batch,
        "max_length": plan.eval_max_length,
        "positions_computed_dynamic": sum(len(b) * max(b) for b in dynamic_batches),
        "positions_computed_padded": rows * plan.eval_max_length,
        "setup": "Stack(de LA madx_language, ner TA madx_task) + token head, random weights",
        "cpu": meter.to_dict(),
        "dynamic": rates(dynamic),
        "padded_to_max_length": rates(padded),
        "speedup_dynamic_over_padded": padded.median / dynamic.median,
        "evaluate_tagging_end_to_end": rates(end_to_end) if end_to_end else None,
        "prediction_agreement": agree,
    }


# -- driver --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=["tiny", "xlmr-base"])
    p.add_argument("--parts", nargs="+", choices=["training", "evaluation"], default=["training", "evaluation"],
                   help="what to measure (default both)")  # fmt: skip
    p.add_argument("--eval-rows", type=int, help="evaluate on the test set's first N sentences only (default: all)")
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    plans = {shape: dataclasses.replace(PLANS[shape], eval_rows=args.eval_rows) for shape in args.shapes}
    results: dict[str, Any] = {
        "threads": threads,
        "quiet_wait_seconds": args.quiet_wait,
        "plans": {s: dataclasses.asdict(plan) for s, plan in plans.items()},
        "shapes": {},
    }
    for shape in args.shapes:
        plan = plans[shape]
        base = ensure_base_model(shape)
        results["shapes"][shape] = {}
        if "training" in args.parts:
            with tempfile.TemporaryDirectory(prefix=f"bench-{shape}-") as tmp:
                print(f"\n== {shape}: LA training, {plan.train_steps} steps x batch {plan.train_batch} "
                      f"x {plan.seq_len} tokens", flush=True)  # fmt: skip
                la = bench_la_training(base, plan, Path(tmp), args.quiet_wait)
            print(f"   tokens/s (train_language_adapter's metric): {fmt_rate(la['tokens_per_second'])}")
            print(f"   tokens/s steady state (steps 2..{la['steps']}):   {fmt_rate(la['steady_tokens_per_second'] or 0)}")
            print(f"   wall time of the call: {la['wall_seconds']:.1f} s; trainable {la['trainable_parameters']:,} "
                  f"of {la['total_parameters']:,}; other processes used {la['cpu']['other_busy_cores']} cores")  # fmt: skip
            results["shapes"][shape]["language_adapter_training"] = la
        if "evaluation" not in args.parts:
            continue
        print(f"\n== {shape}: evaluation on {NER_TEST.relative_to(ROOT)}", flush=True)
        ev = bench_evaluation(base, plan, args.quiet_wait)
        for label, key in (("dynamic (predict_label_ids)", "dynamic"), ("padded to max_length", "padded_to_max_length"),
                           ("evaluate_tagging end to end", "evaluate_tagging_end_to_end")):  # fmt: skip
            r = ev[key]
            if r is None:
                continue
            print(f"   {label:30s} {fmt_rate(r['tokens_per_second']):>9s} tokens/s  "
                  f"{fmt_rate(r['sentences_per_second']):>8s} sentences/s  (median {r['seconds']['median']:.3f} s "
                  f"of {len(r['seconds']['runs'])})")  # fmt: skip
        print(f"   speed-up dynamic / padded: {ev['speedup_dynamic_over_padded']:.2f}x "
              f"({ev['rows']} rows, mean {ev['mean_row_length']:.1f} tokens; positions "
              f"{ev['positions_computed_dynamic']:,} vs {ev['positions_computed_padded']:,}); "
              f"prediction agreement {100 * ev['prediction_agreement']:.2f} %; other processes used "
              f"{ev['cpu']['other_busy_cores']} cores", flush=True)  # fmt: skip
        results["shapes"][shape]["evaluation"] = ev
    write_results("throughput" if threads == 2 else f"throughput-threads{threads}", results)
    return results


if __name__ == "__main__":
    main()
