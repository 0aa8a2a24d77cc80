#!/usr/bin/env python
"""Language-adapter training steps on the real encoder (multilingual-e5-small, 250,002-token
vocabulary): tokens per second, ours beside the reference library `adapters` 1.3.0.

    .venv/bin/python -m bench.la_step [--threads 2] [--batch 8] [--length 64] [--rounds 6] [--no-adapterhub]

The batch is real text (the English Bible the demo reads, masked as in training), the shape the
demo uses (8 x 64, 2 threads). Variants, timed in interleaved rounds (bench.timing):
  ours-full     our MAD-X LA step, MLM softmax over the whole vocabulary (what the code did before)
  ours-corpus   the same with `softmax_vocabulary: corpus`: the softmax over the tokens of the
                language's training text only (the demo's setting)
  adapters-full `adapters` 1.3.0 (SeqBnInvConfig rf 2, its own venv: scripts/adapterhub_env.sh),
                same model folder, same batch, the loss on the masked positions only
Also: where an ours-full step's time goes (torch profiler, top operators), and what the corpus
softmax does to held-out perplexity is measured by the demo itself (report: language adapters).
Writes bench/results/la_step.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT_PREFIX = "BENCH_RESULT "


def make_batch(folder: Path, batch: int, length: int, seed: int = 0) -> dict:
    """`batch` sequences of `length` tokens of the English Bible, masked once (15 %, 80/10/10)."""
    import torch

    from language_adapters.corpus import load_corpus
    from language_adapters.mlm import chunk_corpus, corpus_vocabulary, mask_tokens, pad_batch
    from madx.pretrained import load_tokenizer

    tokenizer = load_tokenizer(folder)
    chunks = chunk_corpus(load_corpus({"bible": "en", "max_documents": 3000}), tokenizer, length, 0.05, seed)
    ids, attention = pad_batch(chunks.train[:batch], tokenizer.pad_token_id)
    masked, labels = mask_tokens(ids, attention, tokenizer, torch.Generator().manual_seed(seed))
    return {"masked_input_ids": masked.tolist(), "attention_mask": attention.tolist(), "labels": labels.tolist(),
            "vocabulary": corpus_vocabulary(chunks.train).tolist()}


def ours(folder: Path, batch: dict, rounds: int) -> dict:
    import torch
    import torch.nn.functional as F

    from bench.timing import time_interleaved
    from language_adapters.mlm import masked_lm_logits
    from madx.pretrained import load_mlm_model
    from madx.model import AdapterModel

    masked, attention, labels = (torch.tensor(batch[k]) for k in ("masked_input_ids", "attention_mask", "labels"))
    vocabulary = torch.tensor(batch["vocabulary"])
    targets = labels != -100
    model = load_mlm_model(folder, allow_missing_head=True)  # timing only: the head's values do not matter
    am = AdapterModel(model)
    am.add_adapter("la", "madx_language")
    am.train_adapter("la")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    model.train()

    def step(restricted: bool) -> float:
        logits = masked_lm_logits(model, masked, attention, targets, vocabulary if restricted else None)
        gold = torch.searchsorted(vocabulary, labels[targets]) if restricted else labels[targets]
        loss = F.cross_entropy(logits, gold)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    step(False), step(True)  # untimed: allocator, thread pool, AdamW state
    timings, _ = time_interleaved({"ours-full": (lambda: step(False), rounds), "ours-corpus": (lambda: step(True), rounds)})
    from torch.profiler import profile

    with profile() as prof:
        step(False)
    top = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
    return {
        **{name: timing.to_dict() for name, timing in timings.items()},
        "softmax_candidates": len(vocabulary),
        "trainable_parameters": sum(p.numel() for p in params),
        "profile_ours_full_top_ops_ms": {e.key: round(e.self_cpu_time_total / 1000, 1) for e in top},
    }


def reference(folder: Path, batch: dict, rounds: int) -> dict:
    """Runs inside the adapters venv (this file imports nothing of ours but bench.timing there)."""
    import adapters
    import torch
    import torch.nn.functional as F
    from adapters import SeqBnInvConfig
    from transformers import AutoModelForMaskedLM

    from bench.timing import time_interleaved

    masked, attention, labels = (torch.tensor(batch[k]) for k in ("masked_input_ids", "attention_mask", "labels"))
    targets = labels != -100
    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_pretrained(folder)
    adapters.init(model)
    model.add_adapter("la", config=SeqBnInvConfig(reduction_factor=2))
    model.train_adapter("la")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    model.train()

    def step() -> float:
        hidden = model.base_model(input_ids=masked, attention_mask=attention).last_hidden_state
        loss = F.cross_entropy(model.cls(hidden[targets]), labels[targets])  # BERT's MLM head
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    step()
    timings, _ = time_interleaved({"adapters-full": (step, rounds)})
    return {"adapters-full": timings["adapters-full"].to_dict(), "library": f"adapters {adapters.__version__}",
            "adapters_trainable_parameters": sum(p.numel() for p in params)}


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--reference":  # the child, in the adapters venv
        import torch

        sys.path.insert(0, str(ROOT))
        spec = json.loads(Path(sys.argv[2]).read_text(encoding="utf-8"))
        torch.set_num_threads(spec["threads"])
        print(RESULT_PREFIX + json.dumps(reference(Path(spec["folder"]), spec["batch"], spec["rounds"])), flush=True)
        return 0

    from bench.common import parser, set_threads, write_results
    from language_adapters.packaged_model import packaged_model

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--no-adapterhub", action="store_true", help="skip the reference library")
    args = p.parse_args()
    threads = set_threads(args.threads)
    folder = packaged_model("multilingual-e5-small")
    batch = make_batch(folder, args.batch, args.length)
    tokens = args.batch * args.length
    results = {"model": "multilingual-e5-small", "folder": str(folder), "batch": args.batch, "length": args.length,
               "threads": threads, **ours(folder, batch, args.rounds)}
    if not args.no_adapterhub:
        python = subprocess.run(["bash", str(ROOT / "scripts" / "adapterhub_env.sh")], check=True,
                                capture_output=True, text=True).stdout.strip().splitlines()[-1]
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump({"folder": str(folder), "batch": batch, "rounds": args.rounds, "threads": threads}, handle)
        out = subprocess.run([python, str(Path(__file__).resolve()), "--reference", handle.name], check=True,
                             capture_output=True, text=True, cwd=ROOT).stdout
        results.update(json.loads(next(line for line in out.splitlines() if line.startswith(RESULT_PREFIX))[len(RESULT_PREFIX):]))
    for name in ("ours-full", "ours-corpus", "adapters-full"):
        if name in results:
            median = results[name]["median"]
            results[name]["tokens_per_second"] = tokens / median
            print(f"{name:14s} {median:6.3f} s/step  {tokens / median:7.0f} tokens/s", flush=True)
    print(f"write: {write_results('la_step', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
