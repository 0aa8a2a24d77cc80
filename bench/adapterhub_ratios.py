#!/usr/bin/env python
"""The (a) training-step and (b) forward ratios of `bench.ratios`, on the reference library's own stack.

Runs ONLY with the python of the separate venv holding adapters==1.3.0 (transformers 4.57), which
`bench.ratios` finds with scripts/adapterhub_env.sh and calls as

    $PY bench/adapterhub_ratios.py SPEC.json

SPEC names the model folder (a random-init XLM-R MLM from `.cache/bench/`), the batch file
`bench.ratios` wrote, the thread count and the rounds. Prints one line `BENCH_RESULT {json}`.
Imports from this repository only `bench.timing` (standard library), so both sides time their
calls with the same code.

The library's MAD-X equivalents, on the same transformers model classes as ours (`adapters.init`):
  LA: SeqBnInvConfig(reduction_factor=2): Pfeiffer bottleneck rf 2 + NICE invertible adapter rf 2
  TA: SeqBnConfig(reduction_factor=16)
(a) LA step: `train_adapter("la")` (freezes the base), AdamW over the trainable parameters; the
    loss exactly as `language_adapters.mlm.masked_lm_logits` computes it (encoder, then the MLM head
    on the masked positions only; the library's hook applies the inverse NICE before the
    vocabulary projection); gradient clipping. FT step: the plain MLM model, every parameter.
(b) forward: Stack("la", "ta") active vs the plain token-classification model, inference_mode.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402

try:
    import adapters  # noqa: E402
    from adapters import SeqBnConfig, SeqBnInvConfig  # noqa: E402
    from adapters.composition import Stack  # noqa: E402
except ImportError as exc:  # pragma: no cover - wrong interpreter
    sys.exit(f"bench/adapterhub_ratios.py needs the adapters==1.3.0 venv (scripts/adapterhub_env.sh): {exc}")
from transformers import AutoModelForMaskedLM, AutoModelForTokenClassification  # noqa: E402

from bench.timing import CpuMeter, paired_ratio, time_interleaved, wait_for_quiet  # noqa: E402

RESULT_PREFIX = "BENCH_RESULT "
transformers.logging.set_verbosity_error()


class TrainStep:
    """One optimizer step on a fixed batch: the same sequence of calls as `bench.ratios.TrainStep`."""

    def __init__(self, model, optimizer, batch, max_grad_norm: float):
        self.model, self.optimizer, self.max_grad_norm = model.train(), optimizer, max_grad_norm
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.masked, self.attention, self.labels = batch["masked_input_ids"], batch["attention_mask"], batch["labels"]
        self.targets = self.labels != -100

    def __call__(self) -> float:
        hidden = self.model.base_model(input_ids=self.masked, attention_mask=self.attention).last_hidden_state
        logits = self.model.lm_head(hidden[self.targets])
        loss = F.cross_entropy(logits, self.labels[self.targets])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item()


def training(spec: dict, batch: dict) -> dict:
    torch.manual_seed(0)
    la_model = AutoModelForMaskedLM.from_pretrained(spec["base"])
    adapters.init(la_model)
    la_model.add_adapter("la", config=SeqBnInvConfig(reduction_factor=2))
    la_model.train_adapter("la")
    la_params = [p for p in la_model.parameters() if p.requires_grad]
    la = TrainStep(la_model, torch.optim.AdamW(la_params, lr=spec["learning_rate"], weight_decay=0.0), batch,
                   spec["max_grad_norm"])  # fmt: skip
    ft_model = AutoModelForMaskedLM.from_pretrained(spec["base"])
    ft = TrainStep(ft_model, torch.optim.AdamW(ft_model.parameters(), lr=spec["learning_rate"], weight_decay=0.0),
                   batch, spec["max_grad_norm"])  # fmt: skip
    wait_for_quiet(spec["quiet_wait"])
    la(), ft()  # untimed: thread pool, allocator, AdamW state
    with CpuMeter() as meter:
        timings, last = time_interleaved({"la": (la, spec["step_rounds"]), "ft": (ft, spec["step_rounds"])})
    return {
        "la_step_seconds": timings["la"].to_dict(),
        "ft_step_seconds": timings["ft"].to_dict(),
        "ratio": paired_ratio(timings["la"].runs, timings["ft"].runs),
        "ratio_of_medians": timings["la"].median / timings["ft"].median,
        "la_active_setup": str(la_model.active_adapters),  # train_adapter activates "la"
        "la_trainable_parameters": sum(p.numel() for p in la.params),
        "la_trainable_outside_adapters": sorted(n for n, p in la_model.named_parameters()
                                                if p.requires_grad and "adapters" not in n),  # fmt: skip
        "ft_trainable_parameters": sum(p.numel() for p in ft.params),
        "last_loss": last,
        "cpu": meter.to_dict(),
    }


def forward(spec: dict, batch: dict) -> dict:
    ids, attention = batch["input_ids"], batch["attention_mask"]
    bare = AutoModelForTokenClassification.from_pretrained(spec["base"], num_labels=spec["num_labels"]).eval()
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(spec["base"], num_labels=spec["num_labels"])
    adapters.init(model)
    model.add_adapter("la", config=SeqBnInvConfig(reduction_factor=2))
    model.add_adapter("ta", config=SeqBnConfig(reduction_factor=16))
    model.eval()

    @torch.inference_mode()
    def run(m) -> None:
        m(input_ids=ids, attention_mask=attention).logits

    def stack() -> None:
        model.set_active_adapters(Stack("la", "ta"))
        run(model)

    stack()
    active = str(model.active_adapters)

    def no_adapter_active() -> None:
        model.set_active_adapters(None)
        run(model)

    rounds = spec["forward_rounds"]
    calls = {"bare": (lambda: run(bare), rounds), "stack": (stack, rounds), "no_adapter_active": (no_adapter_active, rounds)}
    wait_for_quiet(spec["quiet_wait"])
    for fn, _ in calls.values():
        fn()  # untimed
    with CpuMeter() as meter:
        timings, _ = time_interleaved(calls)
    return {
        "bare_seconds": timings["bare"].to_dict(),
        "stack_seconds": timings["stack"].to_dict(),
        "no_adapter_active_seconds": timings["no_adapter_active"].to_dict(),
        "ratio": paired_ratio(timings["stack"].runs, timings["bare"].runs),
        "ratio_of_medians": timings["stack"].median / timings["bare"].median,
        "no_adapter_active_ratio": paired_ratio(timings["no_adapter_active"].runs, timings["bare"].runs),
        "stack_active_setup": active,
        "cpu": meter.to_dict(),
    }


def main(spec_file: str) -> int:
    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    torch.set_num_threads(int(spec["threads"]))
    batch = {k: torch.tensor(v, dtype=torch.long) for k, v in json.loads(Path(spec["batch_file"]).read_text()).items()}
    result = {
        "library": f"adapters {adapters.__version__}",
        "versions": {"adapters": adapters.__version__, "transformers": transformers.__version__, "torch": torch.__version__},
        "torch_threads": torch.get_num_threads(),
        "la_config": "SeqBnInvConfig(reduction_factor=2) (NICE, inv_adapter_reduction_factor=2)",
        "ta_config": "SeqBnConfig(reduction_factor=16)",
        "training_step": training(spec, batch),
        "forward": forward(spec, batch),
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
