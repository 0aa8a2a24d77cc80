"""What adapters cost relative to the base model, each ratio measured inside one process run.

    .venv/bin/python -m bench.ratios [--threads 2] [--shapes tiny xlmr-base] [--no-adapterhub] [--profile | --profile-only]

Same batch everywhere: 8 UDHR sequences of 128 tokens (no padding), masked once (15 %, seeded).
(a) Training step: one language-adapter step (MAD-X language preset; MLM loss on the masked
    positions, as `language_adapters.train` computes it; gradient clipping; AdamW over the
    trainable parameters, i.e. `madx.training_loop.make_optimizer`) against one full fine-tuning step
    (the plain MLM model, every parameter trainable, AdamW, same loss and clipping). Both models
    live in this process; the steps run in interleaved rounds (LA, FT, LA, FT, ...) after one
    untimed step each (AdamW allocates its state there). Every timing ratio here is the median of
    the round-by-round ratios (`bench.timing.paired_ratio`: load that changes between rounds
    cancels); the ratio of the two medians is recorded too.
(b) Inference: forward of a token-classification model running Stack(LA madx_language, TA
    madx_task) against the bare base (a plain transformers model, no surgery), both under
    torch.inference_mode in eval mode, interleaved; also the wrapped model with no adapter active.
(c) Peak memory of LA training and of full fine-tuning, each in a fresh subprocess: load, page
    every weight in (transformers memory-maps the safetensors file), build the optimizer, reset the
    kernel's peak-RSS mark (/proc/self/clear_refs), run two steps, read the peak (VmHWM). Reported:
    that peak (the whole process, model weights included; the ratio the target is about) and its
    rise over the RSS just before the first step (gradients, optimizer state, activations).
(d) The reference library adapters==1.3.0 (its own venv, scripts/adapterhub_env.sh; transformers
    4.57): (a) and (b) on its own stack by `bench/adapterhub_ratios.py`, same model folder, batch,
    thread count and timing code (`bench.timing`).
`--profile` adds a torch.profiler table of one LA step and one FT step per shape; `--profile-only`
does only that. Results: bench/results/ratios.json (both shapes), ratios-<shape>.json (one).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import AutoTokenizer

from bench.common import (
    ROOT,
    SHAPES,
    CpuMeter,
    ensure_base_model,
    paired_ratio,
    parser,
    set_threads,
    time_interleaved,
    udhr_lines,
    wait_for_quiet,
    write_results,
)
from language_adapters.mlm import chunk_corpus, mask_tokens, masked_lm_logits, pad_batch
from madx.composition import Stack
from madx.pretrained import load_model
from madx.model import AdapterModel
from madx.training_loop import make_optimizer

LEARNING_RATE = 1e-4  # LanguageAdapterTraining's default; the value does not change the cost
MAX_GRAD_NORM = 1.0  # LanguageAdapterTraining's default clipping, applied to both steps
NUM_LABELS = 7  # a WikiANN-sized tag set for the token-classification head
RESULT_PREFIX = "BENCH_RESULT "  # subprocesses print one JSON line starting with this
TARGETS = {"training_step": 0.72, "forward": 1.12, "peak_memory": 0.6}


@dataclass(frozen=True)
class Plan:
    """Work per shape: interleaved rounds after one untimed call of each variant."""

    step_rounds: int
    forward_rounds: int
    batch: int = 8
    seq_len: int = 128
    memory_steps: int = 2


# xlmr-base on 2 idle cores: an LA step ~6 s, a full FT step 10-14 s, a forward 1.5-1.9 s (varying 10-30 %
# from round to round even with nothing else running: hence 15 forward rounds).
PLANS = {"tiny": Plan(step_rounds=30, forward_rounds=30), "xlmr-base": Plan(step_rounds=3, forward_rounds=15)}


# -- the batch -----------------------------------------------------------------------------------
def make_batch(base: Path, plan: Plan) -> dict[str, list[list[int]]]:
    """`plan.batch` full-length sequences of the bundled UDHR text, and one seeded MLM masking of them."""
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    texts = Dataset.from_dict({"text": udhr_lines()})
    chunks = chunk_corpus(texts, tokenizer, plan.seq_len, held_out_fraction=0.01, seed=0).train
    full = [chunk for chunk in chunks if len(chunk) == plan.seq_len][: plan.batch]
    ids, attention = pad_batch(full, tokenizer.pad_token_id)
    masked, labels = mask_tokens(ids, attention, tokenizer, torch.Generator().manual_seed(0), probability=0.15)
    return {"input_ids": ids.tolist(), "attention_mask": attention.tolist(), "masked_input_ids": masked.tolist(),
            "labels": labels.tolist()}  # fmt: skip


def tensors(batch: dict[str, list[list[int]]]) -> dict[str, torch.Tensor]:
    return {key: torch.tensor(value, dtype=torch.long) for key, value in batch.items()}


# -- (a) training steps --------------------------------------------------------------------------
class TrainStep:
    """One optimizer step on a fixed batch, as `language_adapters.train` runs one."""

    def __init__(self, model, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor]):
        self.model, self.optimizer = model.train(), optimizer
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.masked, self.attention, self.labels = batch["masked_input_ids"], batch["attention_mask"], batch["labels"]
        self.targets = self.labels != -100

    def __call__(self) -> float:
        logits = masked_lm_logits(self.model, self.masked, self.attention, self.targets)
        loss = F.cross_entropy(logits, self.labels[self.targets])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, MAX_GRAD_NORM)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item()

    @property
    def trainable(self) -> int:
        return sum(p.numel() for p in self.params)

    @property
    def total(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def la_training_step(base: Path, batch: dict[str, torch.Tensor]) -> TrainStep:
    torch.manual_seed(0)
    am = AdapterModel(load_model(base, "mlm"))
    am.add_adapter("la", "madx_language")
    am.train_adapter("la")  # freezes the base: requires_grad False on every base weight
    optimizer, _ = make_optimizer(am, LEARNING_RATE, weight_decay=0.0, warmup_steps=0, total_steps=1_000)
    return TrainStep(am.model, optimizer, batch)


def full_fine_tuning_step(base: Path, batch: dict[str, torch.Tensor]) -> TrainStep:
    model = load_model(base, "mlm")  # no adapters, no surgery: what full fine-tuning runs
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    return TrainStep(model, optimizer, batch)


STEP_BUILDERS = {"la": la_training_step, "ft": full_fine_tuning_step}


def bench_training(base: Path, plan: Plan, batch: dict[str, torch.Tensor], quiet_wait: float) -> dict[str, Any]:
    la, ft = la_training_step(base, batch), full_fine_tuning_step(base, batch)
    wait_for_quiet(quiet_wait)
    la(), ft()  # untimed: thread pool, allocator, AdamW state
    with CpuMeter() as meter:
        timings, last = time_interleaved({"la": (la, plan.step_rounds), "ft": (ft, plan.step_rounds)})
    return {
        "la_step_seconds": timings["la"].to_dict(),
        "ft_step_seconds": timings["ft"].to_dict(),
        "ratio": paired_ratio(timings["la"].runs, timings["ft"].runs),
        "ratio_of_medians": timings["la"].median / timings["ft"].median,
        "la_trainable_parameters": la.trainable,
        "ft_trainable_parameters": ft.trainable,
        "total_parameters": ft.total,
        "last_loss": {"la": last["la"], "ft": last["ft"]},
        "cpu": meter.to_dict(),
    }


# -- (b) forward ---------------------------------------------------------------------------------
def bare_and_stacked_token_models(base: Path) -> tuple[torch.nn.Module, AdapterModel]:
    """The bare token-classification model and a second copy carrying LA `la` (MAD-X language
    preset) + TA `ta` (MAD-X task preset) and a head, both in eval mode."""
    bare = load_model(base, "token", num_labels=NUM_LABELS).eval()
    torch.manual_seed(0)
    am = AdapterModel(load_model(base, "token", num_labels=NUM_LABELS))
    am.add_adapter("la", "madx_language")
    am.add_adapter("ta", "madx_task")
    am.new_token_head({i: f"L{i}" for i in range(NUM_LABELS)})
    am.model.eval()
    return bare, am


def bench_forward(base: Path, plan: Plan, batch: dict[str, torch.Tensor], quiet_wait: float) -> dict[str, Any]:
    ids, attention = batch["input_ids"], batch["attention_mask"]
    bare, am = bare_and_stacked_token_models(base)

    @torch.inference_mode()
    def forward(model) -> None:
        model(input_ids=ids, attention_mask=attention).logits

    def stack() -> None:
        am.set_active(Stack("la", "ta"))  # ~0.3 ms: which adapters each block runs
        forward(am.model)

    def no_adapter_active() -> None:
        am.set_active(None)
        forward(am.model)

    calls = {"bare": (lambda: forward(bare), plan.forward_rounds), "stack": (stack, plan.forward_rounds),
             "no_adapter_active": (no_adapter_active, plan.forward_rounds)}  # fmt: skip
    wait_for_quiet(quiet_wait)
    for fn, _ in calls.values():
        fn()  # untimed
    with CpuMeter() as meter:
        timings, _ = time_interleaved(calls)
    bare_t = timings["bare"]
    return {
        "bare_seconds": bare_t.to_dict(),
        "stack_seconds": timings["stack"].to_dict(),
        "no_adapter_active_seconds": timings["no_adapter_active"].to_dict(),
        "ratio": paired_ratio(timings["stack"].runs, bare_t.runs),
        "ratio_of_medians": timings["stack"].median / bare_t.median,
        # interference only ever slows a run down: the fastest runs are the least disturbed ones
        "ratio_of_minimums": timings["stack"].min / bare_t.min,
        "no_adapter_active_ratio": paired_ratio(timings["no_adapter_active"].runs, bare_t.runs),
        "adapter_parameters": {"la": am.adapter_parameter_count("la"), "ta": am.adapter_parameter_count("ta")},
        "cpu": meter.to_dict(),
    }


# -- (c) peak memory, one fresh process per variant ----------------------------------------------
def _status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_peak_rss() -> bool:
    """Set the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def memory_probe(variant: str, shape: str, batch_file: Path, steps: int) -> dict[str, Any]:
    """Run in a fresh process: build the variant, then measure the peak RSS over `steps` steps."""
    base = ensure_base_model(shape)
    batch = tensors(json.loads(batch_file.read_text(encoding="utf-8")))
    step = STEP_BUILDERS[variant](base, batch)
    with torch.no_grad():  # the weights are a memory map of the safetensors file: page them in now,
        for param in step.model.parameters():  # or the first step's rise would include the model
            param.sum()
    gc.collect()
    before = _status_kib("VmRSS")
    reset = _reset_peak_rss()
    for _ in range(steps):
        step()
    gc.collect()
    if reset:
        peak_kib, source = _status_kib("VmHWM"), "VmHWM after a reset just before the first step"
    else:  # no clear_refs: the process-lifetime peak (loading included) is all there is
        import resource

        peak_kib, source = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss (loading included)"
    return {"variant": variant, "steps": steps, "rss_before_steps_bytes": 1024 * before,
            "peak_rss_bytes": 1024 * peak_kib, "rise_bytes": 1024 * (peak_kib - before), "peak_source": source}  # fmt: skip


def bench_memory(shape: str, plan: Plan, batch_file: Path, threads: int, quiet_wait: float) -> dict[str, Any]:
    probes = {}
    for variant in ("la", "ft"):
        wait_for_quiet(quiet_wait)
        command = [sys.executable, "-m", "bench.ratios", "--memory-probe", variant, "--shapes", shape,
                   "--batch-file", str(batch_file), "--threads", str(threads), "--quiet-wait", "0"]  # fmt: skip
        probes[variant] = _run_json(command, cwd=ROOT, what=f"memory probe {variant}")
    la, ft = probes["la"], probes["ft"]
    return {
        "la": la,
        "ft": ft,
        "ratio": la["peak_rss_bytes"] / ft["peak_rss_bytes"],
        "rise_ratio": la["rise_bytes"] / ft["rise_bytes"],
        "how": "fresh process each; peak RSS (VmHWM, reset after loading, paging in every weight and building "
        f"the optimizer) over {plan.memory_steps} steps; rise = peak - RSS just before the first step",
    }


def _run_json(command: list[str], cwd: Path, what: str, timeout: float = 1800) -> dict[str, Any]:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in result.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{what} failed (exit {result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


# -- (d) the reference library in its own venv ---------------------------------------------------
def adapterhub_python() -> tuple[str | None, str]:
    """The reference venv's python (built once by scripts/adapterhub_env.sh), or None and why not."""
    try:
        result = subprocess.run(["bash", str(ROOT / "scripts" / "adapterhub_env.sh")], cwd=ROOT, capture_output=True,
                                text=True, timeout=1800)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"scripts/adapterhub_env.sh did not run: {error}"
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        return None, f"scripts/adapterhub_env.sh failed (exit {result.returncode}): {result.stderr.strip()[-500:]}"
    return lines[-1], "ok"


def bench_adapterhub(base: Path, plan: Plan, batch_file: Path, threads: int, quiet_wait: float) -> dict[str, Any]:
    python, why = adapterhub_python()
    if python is None:
        print(f"   skipped: {why}", flush=True)
        return {"skipped": why}
    spec = {"base": str(base), "batch_file": str(batch_file), "threads": threads, "learning_rate": LEARNING_RATE,
            "max_grad_norm": MAX_GRAD_NORM, "num_labels": NUM_LABELS, "step_rounds": plan.step_rounds,
            "forward_rounds": plan.forward_rounds, "quiet_wait": quiet_wait}  # fmt: skip
    spec_file = batch_file.with_name("adapterhub_spec.json")
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    return _run_json([python, str(ROOT / "bench" / "adapterhub_ratios.py"), str(spec_file)], cwd=ROOT,
                     what="the adapters==1.3.0 run (bench/adapterhub_ratios.py)")  # fmt: skip


# -- profile -------------------------------------------------------------------------------------
def profile_steps(base: Path, batch: dict[str, torch.Tensor], rows: int = 15) -> dict[str, Any]:
    """torch.profiler over one LA step and one FT step (after a warm-up step each): top ops by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    out = {}
    for variant, build in STEP_BUILDERS.items():
        step = build(base, batch)
        step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total_us = sum(e.self_cpu_time_total for e in events)
        print(f"\n   torch.profiler, one {variant.upper()} step: {total_us / 1e6:.2f} s self CPU time; top ops")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))
        out[variant] = {
            "self_cpu_seconds": total_us / 1e6,
            "top_ops": [{"op": e.key, "self_cpu_seconds": e.self_cpu_time_total / 1e6, "calls": e.count,
                         "share": e.self_cpu_time_total / total_us} for e in events[:rows]],  # fmt: skip
        }
        del step
        gc.collect()
    return out


# -- driver --------------------------------------------------------------------------------------
def run_shape(shape: str, threads: int, args) -> dict[str, Any]:
    plan = dataclasses.replace(PLANS[shape], **{name: value for name in ("step_rounds", "forward_rounds")
                                                if (value := getattr(args, name)) is not None})  # fmt: skip
    base = ensure_base_model(shape)
    batch_lists = make_batch(base, plan)
    batch = tensors(batch_lists)
    n_targets = int((batch["labels"] != -100).sum())
    out: dict[str, Any] = {"plan": dataclasses.asdict(plan), "masked_targets": n_targets}
    with tempfile.TemporaryDirectory(prefix=f"bench-ratios-{shape}-") as tmp:
        batch_file = Path(tmp) / "batch.json"
        batch_file.write_text(json.dumps(batch_lists), encoding="utf-8")

        print(f"\n== {shape}: (a) LA training step vs full fine-tuning step, batch {plan.batch} x {plan.seq_len} "
              f"({n_targets} masked targets), {plan.step_rounds} interleaved rounds", flush=True)  # fmt: skip
        t = out["training_step"] = bench_training(base, plan, batch, args.quiet_wait)
        print(f"   LA step  median {t['la_step_seconds']['median']:8.3f} s   trainable {t['la_trainable_parameters']:,}")
        print(f"   FT step  median {t['ft_step_seconds']['median']:8.3f} s   trainable {t['ft_trainable_parameters']:,}")
        print(f"   LA / FT  {t['ratio']:.3f}  (median of round ratios; of the medians {t['ratio_of_medians']:.3f}; target <= "
              f"{TARGETS['training_step']}); other processes used {t['cpu']['other_busy_cores']} cores", flush=True)  # fmt: skip

        print(f"== {shape}: (b) forward, Stack(LA rf2 + NICE, TA rf16) vs bare base, inference_mode, "
              f"{plan.forward_rounds} interleaved rounds", flush=True)  # fmt: skip
        f = out["forward"] = bench_forward(base, plan, batch, args.quiet_wait)
        print(f"   bare     median {f['bare_seconds']['median']:8.4f} s")
        print(f"   stack    median {f['stack_seconds']['median']:8.4f} s   ratio {f['ratio']:.3f} (median of round "
              f"ratios; of the medians {f['ratio_of_medians']:.3f}; of the minimums {f['ratio_of_minimums']:.3f}; "
              f"target <= {TARGETS['forward']})")  # fmt: skip
        print(f"   wrapped, no adapter active: ratio {f['no_adapter_active_ratio']:.3f}; other processes used "
              f"{f['cpu']['other_busy_cores']} cores", flush=True)  # fmt: skip

        if not args.no_memory:
            print(f"== {shape}: (c) peak memory, fresh process each, {plan.memory_steps} steps", flush=True)
            m = out["peak_memory"] = bench_memory(shape, plan, batch_file, threads, args.quiet_wait)
            for v in ("la", "ft"):
                print(f"   {v.upper()}  peak RSS {m[v]['peak_rss_bytes'] / 2**30:6.2f} GiB   rise over loaded "
                      f"{m[v]['rise_bytes'] / 2**30:6.2f} GiB")  # fmt: skip
            print(f"   LA / FT  peak {m['ratio']:.3f} (target < {TARGETS['peak_memory']}), rise {m['rise_ratio']:.3f}",
                  flush=True)  # fmt: skip

        if not args.no_adapterhub:
            print(f"== {shape}: (d) the same (a) and (b) with adapters==1.3.0 in its own venv", flush=True)
            r = out["adapterhub"] = bench_adapterhub(base, plan, batch_file, threads, args.quiet_wait)
            if "skipped" not in r:
                rt, rf = r["training_step"], r["forward"]
                print(f"   LA step  median {rt['la_step_seconds']['median']:8.3f} s   FT step median "
                      f"{rt['ft_step_seconds']['median']:8.3f} s   LA / FT {rt['ratio']:.3f}")  # fmt: skip
                print(f"   forward  bare {rf['bare_seconds']['median']:.4f} s   stack {rf['stack_seconds']['median']:.4f} "
                      f"s   ratio {rf['ratio']:.3f}; other processes used {rt['cpu']['other_busy_cores']} / "
                      f"{rf['cpu']['other_busy_cores']} cores", flush=True)  # fmt: skip

    if args.profile:
        out["profile"] = profile_steps(base, batch)
    return out


TARGET_SHAPE = "xlmr-base"  # the targets are about an xlm-roberta-base-sized model; tiny is for reference


def summary_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    rows = []

    def _status(value: float, target: float, strict: bool = False) -> str:
        if shape != TARGET_SHAPE:
            return "reference only"
        return "met" if (value < target if strict else value <= target) else "NOT met"

    for shape, r in results["shapes"].items():
        hub = r.get("adapterhub", {})
        hub_ok = bool(hub) and "skipped" not in hub
        t, f = r["training_step"]["ratio"], r["forward"]["ratio"]
        rows.append((shape, "LA step / full FT step", f"{t:.3f}",
                     f"{hub['training_step']['ratio']:.3f}" if hub_ok else "-", f"<= {TARGETS['training_step']}: "
                     f"{_status(t, TARGETS['training_step'])}"))  # fmt: skip
        rows.append((shape, "forward Stack(LA, TA) / bare", f"{f:.3f}", f"{hub['forward']['ratio']:.3f}" if hub_ok else "-",
                     f"<= {TARGETS['forward']}: {_status(f, TARGETS['forward'])}"))  # fmt: skip
        if "peak_memory" in r:
            m = r["peak_memory"]["ratio"]
            rows.append((shape, "peak RSS LA training / full FT", f"{m:.3f}", "-",
                         f"< {TARGETS['peak_memory']}: {_status(m, TARGETS['peak_memory'], strict=True)}"))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=["tiny", "xlmr-base"])
    p.add_argument("--no-adapterhub", action="store_true", help="skip the adapters==1.3.0 comparison")
    p.add_argument("--step-rounds", type=int, help="interleaved LA/FT step rounds (default: the shape's, 3 for xlmr-base)")
    p.add_argument("--forward-rounds", type=int, help="interleaved forward rounds (default: the shape's, 15 for xlmr-base)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--profile", action="store_true", help="torch.profiler tables of one LA and one FT step")
    p.add_argument("--profile-only", action="store_true", help="only the profile (written to ratios-profile*.json)")
    p.add_argument("--memory-probe", choices=sorted(STEP_BUILDERS), help=argparse.SUPPRESS)
    p.add_argument("--batch-file", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    if args.memory_probe:  # a child of bench_memory: one variant, one shape, one JSON line
        result = memory_probe(args.memory_probe, args.shapes[0], args.batch_file, PLANS[args.shapes[0]].memory_steps)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return result

    suffix = "" if threads == 2 else f"-threads{threads}"
    if args.profile_only:
        profiles = {}
        for shape in args.shapes:
            base = ensure_base_model(shape)
            print(f"\n== {shape}: where the time of a training step goes", flush=True)
            profiles[shape] = profile_steps(base, tensors(make_batch(base, PLANS[shape])))
        write_results(f"ratios-profile{suffix}", {"threads": threads, "profile": profiles})
        return profiles

    results: dict[str, Any] = {"threads": threads, "quiet_wait_seconds": args.quiet_wait, "targets": TARGETS,
                               "shapes": {}}  # fmt: skip
    for shape in args.shapes:
        results["shapes"][shape] = run_shape(shape, threads, args)

    print(f"\n== summary ({threads} torch threads; ours vs adapters==1.3.0 on its own stack)")
    print(f"   {'shape':10s} {'measure':32s} {'ours':>7s} {'adapters':>9s}  target")
    for shape, measure, ours, hub, target in summary_rows(results):
        print(f"   {shape:10s} {measure:32s} {ours:>7s} {hub:>9s}  {target}")
    # one file per set of shapes, so a tiny-only run does not replace the xlmr-base numbers
    shapes = "" if sorted(args.shapes) == sorted(SHAPES) else "-" + "-".join(args.shapes)
    write_results(f"ratios{shapes}{suffix}", results)
    return results


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
