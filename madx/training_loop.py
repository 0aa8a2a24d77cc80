"""Pieces every adapter training loop shares: device choice, optimizer and schedule, optimizer state I/O.

Optimizer state is saved as safetensors + JSON, not pickle, so a checkpoint folder is as safe to
read as an adapter folder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import get_linear_schedule_with_warmup

from madx.errors import ConfigError, TrainingFailedError
from madx.model import AdapterModel


# Wall-clock measurements: logged to MLflow, never saved beside the weights, so that an adapter
# folder is the same bytes for the same config and seeds.
TIMINGS = frozenset({"tokens_per_second"})


def without_timings(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key not in TIMINGS}


def metrics_file(metrics: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, str]:
    """The `metrics.json` an adapter folder carries: final metrics and curves, less timings."""
    record = {"metrics": without_timings(metrics), "history": [without_timings(row) for row in history]}
    return {"metrics.json": json.dumps(record, indent=2) + "\n"}


def refuse_non_finite(loss: float, what: str, step: int) -> None:
    """A NaN or infinite loss poisons every weight it touches: fail the stage (nothing is saved)."""
    if not math.isfinite(loss):
        raise TrainingFailedError(
            f"{what}: the training loss is {loss} at step {step}; nothing was saved. Lower the learning rate, "
            "or check the data and the base model for NaN or infinite values"
        )


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda[:N]") from None


def make_optimizer(
    am: AdapterModel, learning_rate: float, weight_decay: float, warmup_steps: int, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the trainable parameters only (frozen weights carry no optimizer state)."""
    params = [p for p in am.model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("nothing to train: call AdapterModel.train_adapter first")
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, min(warmup_steps, total_steps), total_steps)
    return optimizer, scheduler


def save_optimizer(optimizer: torch.optim.Optimizer, scheduler: Any, folder: Path) -> None:
    state = optimizer.state_dict()
    tensors = {
        f"{index}.{key}": value.contiguous()
        for index, slots in state["state"].items()
        for key, value in slots.items()
        if torch.is_tensor(value)
    }
    save_file(tensors, str(folder / "optimizer.safetensors"))
    meta = {"param_groups": state["param_groups"], "scheduler": scheduler.state_dict()}
    (folder / "optimizer.json").write_text(json.dumps(meta), encoding="utf-8")


def load_optimizer(optimizer: torch.optim.Optimizer, scheduler: Any, folder: Path) -> None:
    tensors = load_file(str(folder / "optimizer.safetensors"))
    meta = json.loads((folder / "optimizer.json").read_text(encoding="utf-8"))
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, _, name = key.partition(".")
        slots.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": slots, "param_groups": meta["param_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
