"""Train a language adapter with masked language modelling on a frozen base model.

Only the language adapter and its invertible adapter train. In the MLM model the invertible
adapter runs forward on the embeddings and inverse before the vocabulary projection, so both
directions are in the loss path (see `madx.surgery`).

Checkpoints (adapter weights, optimizer and schedule, RNG states, data position) are written every
`checkpoint_every` steps to a work folder; a rerun of the same training resumes from the last one
and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from language_adapters.contamination import Contamination
from language_adapters.centering import CENTERING_SEQUENCES, center_language_adapter
from language_adapters.drift import DriftMeter
from language_adapters.corpus import CorpusSource, load_corpus
from language_adapters.settings import LanguageAdapterTraining
from language_adapters.mlm import (
    MIN_HELD_OUT_SEQUENCES,
    MlmChunks,
    chunk_corpus,
    corpus_vocabulary,
    evaluate_mlm,
    mlm_batch_loss,
)
from madx.config import resolve_config
from madx.errors import CorpusTooSmallError, DataError, TrainingFailedError
from madx.fileutil import atomic_directory, recover_interrupted, sha256_of_file, without_folders
from madx.pretrained import load_config, load_mlm_model, load_tokenizer, usable_length
from madx.adapter_files import adapter_state_dict, load_adapter_weights, save_adapter
from madx.model import AdapterModel
from madx.seeding import SEEDING_VERSION, derive_seed, own_dropout, seeded_global_rng
from madx.stopping import check, stop_requested
from madx.training_loop import (
    load_optimizer,
    make_optimizer,
    metrics_file,
    pick_device,
    refuse_non_finite,
    save_optimizer,
    without_timings,
)

# on_event(kind, step, metrics): kind is "train" (every log_every steps), "eval", or "checkpoint".
EventCallback = Callable[[str, int, dict[str, float]], None]


@dataclass
class LanguageAdapterResult:
    adapter_dir: Path
    metrics: dict[str, float]  # final numbers: mlm_loss, perplexity, train_loss, tokens_per_second, ...
    history: list[dict[str, float]]  # one row per logged step / evaluation
    resumed_from_step: int | None = None
    flags: list[str] = field(default_factory=list)  # warnings that do not fail the run (see MIN_HELD_OUT_SEQUENCES)


@dataclass
class Position:
    """Where the run is: enough, with the RNG states, to continue exactly."""

    step: int = 0
    epoch: int = 0
    cursor: int = 0
    tokens: int = 0
    train_seconds: float = 0.0


def train_language_adapter(
    base_model: str | Path,
    language: str,
    corpus: str | dict | CorpusSource,
    out_dir: str | Path,
    training: LanguageAdapterTraining = LanguageAdapterTraining(),
    tokenizer: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    on_event: EventCallback | None = None,
    cache_dir: str | Path | None = None,
    metadata: dict[str, Any] | None = None,
    mlm_head: str | Path | None = None,
    contamination: Contamination | None = None,
) -> LanguageAdapterResult:
    """Train adapter `language` on `corpus` over the frozen MLM model `base_model`; save it to `out_dir`.

    `mlm_head`: the warmed-up head (`language_adapters.mlm_head`) for a base that has none of its own.
    `contamination`: what `language_adapters.contamination.check_corpus` found in this corpus; its
    lines are left out of training and what was removed is recorded in the adapter's metadata.
    `metadata` (e.g. a cache key) is stored in the adapter's config beside the training record."""
    out_dir = Path(out_dir)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else out_dir.with_name(f".{out_dir.name}.checkpoint")
    source = CorpusSource.parse(corpus)
    notify = on_event or (lambda kind, step, metrics: None)
    device = pick_device(training.device)
    check(f"language adapter {language!r} before training")
    # Every random stream of this training (held-out split, data order, masks, init, dropout) comes
    # from this seed: the configured one and the language, so languages never share a stream.
    seed = derive_seed(training.seed, "language_adapter", language)

    base_config = load_config(base_model)  # an unsupported architecture fails here, before any work
    tok = load_tokenizer(tokenizer or base_model)
    max_length = usable_length(base_config, tok, training.max_length)
    texts = load_corpus(source, cache_dir=cache_dir)
    if contamination is not None:
        texts = contamination.apply(texts, f"corpus {source.describe()}")
    chunks = chunk_corpus(
        texts,
        tok,
        max_length,
        training.held_out_fraction,
        seed,
        description=f"corpus {source.describe()}",
    )
    micro_batch = training.batch_size // training.grad_accumulation
    _refuse_too_small(source, chunks, training, language)
    if len(chunks.train) < training.batch_size:
        raise DataError(
            f"corpus {source.describe()} yields {len(chunks.train)} training sequences of {max_length} tokens; "
            f"one batch needs {training.batch_size}: add text, or lower batch_size or max_length"
        )
    # The budget follows the corpus: a small one gets at most max_epochs passes, not memorised.
    total_steps = training.planned_steps(len(chunks.train))

    flags = []
    if total_steps < training.steps:
        flags.append(f"budget_capped: {total_steps} steps instead of {training.steps}: {training.max_epochs:g} epochs of "
                     f"{len(chunks.train)} training sequences (language_adapter.max_epochs)")
    if len(chunks.held_out) < MIN_HELD_OUT_SEQUENCES:
        flags.append(f"small_held_out: {len(chunks.held_out)} held-out sequences (< {MIN_HELD_OUT_SEQUENCES}), "
                     "the perplexities are rough")
    with seeded_global_rng(seed):  # adapter init
        model = load_mlm_model(base_model, head_weights=mlm_head).to(device)  # refuses a random head
        am = AdapterModel(model)
        am.add_adapter(language, resolve_config(training.adapter))
    count = am.train_adapter(language)
    dropout_rng = torch.Generator(device=device).manual_seed(seed + 2)
    own_dropout(model, dropout_rng)
    optimizer, scheduler = make_optimizer(
        am, training.learning_rate, training.weight_decay, training.warmup_steps, total_steps
    )

    fingerprint = _fingerprint(base_model, language, source, training, chunks,
                               sha256_of_file(mlm_head) if mlm_head else None)
    position, history = Position(), []
    mask_rng = torch.Generator().manual_seed(seed + 1)
    best = BestWeights()
    resumed_from = _restore(checkpoint_dir, fingerprint, am, language, optimizer, scheduler, mask_rng, dropout_rng, best)
    resumed_step = None
    if resumed_from is not None:
        position, history = resumed_from
        resumed_step = position.step
        notify("resume", position.step, {"step": position.step})

    if resumed_from is None:
        # Step 0: the base model with a fresh (near-identity) adapter, the baseline the curve starts from.
        row = {"step": 0, **_held_out_loss(model, chunks, tok, training, seed, device)}
        history.append(row)
        notify("eval", 0, row)
        _refuse_untrained_head(row["perplexity"], len(tok), base_model, language, mlm_head)
    vocabulary = corpus_vocabulary(chunks.train) if training.softmax_vocabulary == "corpus" else None
    # the text the adapter is centred on (language_adapters/centering.py), at the end and for each drift measurement
    sample = torch.randperm(len(chunks.train), generator=torch.Generator().manual_seed(seed + 4))[:CENTERING_SEQUENCES]
    centering_text = [chunks.train[i] for i in sample.tolist()]

    drift = DriftMeter(chunks.held_out, tok.pad_token_id, set(tok.all_special_ids), training.batch_size, device)

    def evaluate() -> dict[str, float]:
        """Held-out loss of the training weights; with a drift budget, of the adapter as it would be
        saved now (centred, when it is), with its drift: the budget and the checkpoint kept judge what
        is saved, and the training weights' own loss is not measured (a held-out pass fewer)."""
        def held_out() -> dict[str, float]:
            return _held_out_loss(model, chunks, tok, training, seed, device)
        if training.max_drift is None:
            return held_out()
        return _as_saved(am, language, training, centering_text, drift, held_out, tok.pad_token_id, device)

    step_0_perplexity = next(row for row in history if "mlm_loss" in row)["perplexity"]
    drift_stop: dict[str, float] | None = None  # the evaluation that passed max_drift, if one did
    model.train()
    running_loss, running_steps = 0.0, 0
    while position.step < total_steps:
        if stop_requested():  # Ctrl-C or SIGTERM: keep what was learnt, so that a rerun resumes here
            _save_checkpoint(checkpoint_dir, fingerprint, am, language, optimizer, scheduler, mask_rng, dropout_rng,
                             position, history, best)
            check(f"language adapter {language!r} at step {position.step}/{total_steps} (checkpoint saved in "
                  f"{checkpoint_dir})")
        started = time.perf_counter()
        step_loss = 0.0
        for _ in range(training.grad_accumulation):
            batch = next_batch(chunks.train, position, micro_batch, seed)
            loss, tokens, _ = mlm_batch_loss(model, batch, tok, mask_rng, training.mlm_probability, device,
                                             vocabulary=vocabulary)
            (loss / training.grad_accumulation).backward()
            step_loss += loss.item() / training.grad_accumulation
            position.tokens += tokens
        refuse_non_finite(step_loss, f"language adapter {language!r}", position.step + 1)
        if training.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], training.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        position.step += 1
        position.train_seconds += time.perf_counter() - started
        running_loss, running_steps = running_loss + step_loss, running_steps + 1

        last = position.step == total_steps
        if position.step % training.log_every == 0 or last:
            row = {
                "step": position.step,
                "train_loss": running_loss / running_steps,
                "learning_rate": scheduler.get_last_lr()[0],
                "tokens_per_second": position.tokens / max(position.train_seconds, 1e-9),
            }
            history.append(row)
            notify("train", position.step, row)
            running_loss, running_steps = 0.0, 0
        if position.step % training.eval_every == 0 or last:
            row = {"step": position.step, **evaluate()}
            history.append(row)
            notify("eval", position.step, row)
            model.train()
            if training.max_drift is None:
                best.offer(row["mlm_loss"], position.step, am, language)
            elif row["perplexity"] <= training.learnt_perplexity_ratio * step_0_perplexity:  # it has learnt
                if row["drift"] <= training.max_drift or best.step is None:
                    # within the budget; or past it, the first checkpoint that learnt, kept if none within it did
                    best.offer(row["mlm_loss"], position.step, am, language)
                if row["drift"] > training.max_drift:
                    drift_stop = row  # moving the states further only harms the task adapter: stop here
                    break
        if training.checkpoint_every and position.step % training.checkpoint_every == 0 and not last:
            _save_checkpoint(checkpoint_dir, fingerprint, am, language, optimizer, scheduler, mask_rng, dropout_rng,
                             position, history, best)
            notify("checkpoint", position.step, {"step": position.step})

    last_eval = next(row for row in reversed(history) if "mlm_loss" in row)
    initial_eval = next(row for row in history if "mlm_loss" in row)  # step 0: the base with a fresh adapter
    final_eval = last_eval
    if drift_stop is not None:
        kept = (f"kept the weights of step {best.step}, the best within it" if best.step != drift_stop["step"] else
                "no checkpoint within it had learnt its language, so this one, the first that had, is kept")
        when = (f"at its last step {total_steps}" if drift_stop["step"] == total_steps else
                f"stopped at step {drift_stop['step']} of {total_steps}")
        flags.append(f"drift_capped: {when}: the adapter moved its language's final hidden states by "
                     f"{drift_stop['drift']:.3f} on average, past max_drift {training.max_drift:g}; {kept}")
    if training.max_drift is not None and best.step is None:
        flags.append(f"not_learnt: held-out perplexity as saved never reached {training.learnt_perplexity_ratio:g} of "
                     f"step 0's ({step_0_perplexity:,.0f}; language_adapter.learnt_perplexity_ratio): more steps or text? "
                     "The last step's weights are saved")
    no_gain = best.loss is not None and best.loss >= initial_eval["mlm_loss"]
    if no_gain:
        saved = "the last step's weights are saved" if drift_stop is None else "the best within the drift budget are saved"
        flags.append(f"no_gain: held-out perplexity never went below step 0's ({initial_eval['perplexity']:,.0f}): the "
                     f"adapter learnt nothing of its language (learning rate, steps?); {saved}")
    # held-out loss rose after its best evaluation (the adapter began to memorise), or the drift passed its budget
    if ((drift_stop is not None or (training.keep == "best" and not no_gain)) and best.step is not None
            and best.step != last_eval["step"]):
        best.restore(am, language)
        final_eval = next(row for row in history if row.get("step") == best.step and "mlm_loss" in row)
        flags.append(f"kept_best: the weights of step {best.step} (held-out perplexity {final_eval['perplexity']:,.0f}), "
                     f"not of the last step {last_eval['step']} ({last_eval['perplexity']:,.0f})")
    centered = {}
    if training.center:  # the language's constant shift out (language_adapters/centering.py)
        removed = center_language_adapter(am, language, centering_text, tok.pad_token_id, device)
        centered = {"centering_removed_norm": max(removed)}
        if training.max_drift is None:  # the kept evaluation measured the training weights: measure the saved ones
            centered["perplexity_before_centering"] = final_eval["perplexity"]
            final_eval = {"step": final_eval["step"], "centered": 1.0,
                          **_held_out_loss(model, chunks, tok, training, seed, device)}
            history.append(final_eval)
            notify("centred", final_eval["step"], {"centred_mlm_loss": final_eval["mlm_loss"],
                                                   "centred_perplexity": final_eval["perplexity"]})
    train_rows = [row for row in history if "train_loss" in row]
    metrics = {
        "mlm_loss": final_eval["mlm_loss"],
        "perplexity": final_eval["perplexity"],
        # What the adapter bought: held-out perplexity of the base before training it, same masks.
        "initial_perplexity": initial_eval["perplexity"],
        "train_loss": train_rows[-1]["train_loss"],
        "tokens_per_second": position.tokens / max(position.train_seconds, 1e-9),
        "steps": position.step,
        "kept_step": final_eval["step"],
        "max_length": max_length,
        "train_sequences": len(chunks.train),
        "held_out_sequences": len(chunks.held_out),
        "train_tokens_seen": position.tokens,
        "train_tokens": _tokens(chunks.train),
        "trainable_parameters": count.trainable,
        "total_parameters": count.total,
        "vocabulary_size": len(tok),
        "softmax_candidates": len(vocabulary) if vocabulary is not None else len(tok),
        # how far the saved adapter moves its language's final states (language_adapters/drift.py)
        "drift": drift(am, language),
        **centered,
    }
    metadata = {
        "kind": "language_adapter",
        "flags": flags,
        "language": language,
        "corpus": without_folders(source.describe()),
        "training": training.to_dict(),
        "metrics": without_timings(metrics),
        **({"contamination": contamination.summary()} if contamination else {}),
        **(metadata or {}),
    }
    save_adapter(
        am,
        language,
        out_dir,
        metadata=metadata,
        extra_files=metrics_file(metrics, history),
    )
    shutil.rmtree(checkpoint_dir, ignore_errors=True)  # the adapter is saved; the checkpoint has served
    return LanguageAdapterResult(out_dir, metrics, history, resumed_step, flags)


def _refuse_untrained_head(perplexity: float, vocabulary_size: int, base_model, language: str, mlm_head) -> None:
    """A held-out perplexity above the vocabulary size is worse than a uniform guess: the MLM head
    is random, not this model's, or does not know this text at all. An adapter trained against it
    would only learn to serve the head."""
    if perplexity <= vocabulary_size:
        return
    start = (f"language adapter {language!r}: held-out MLM perplexity at step 0 is {perplexity:,.0f}, above the "
             f"vocabulary size {vocabulary_size:,}")
    if mlm_head is None:
        raise TrainingFailedError(
            f"{start}: the MLM head of base model {base_model} predicts worse than chance (random, or not trained for "
            "this model). Use `base_model: {mlm_head: warmup}` or a checkpoint with a pretrained MLM head")
    raise TrainingFailedError(
        f"{start}: the warmed-up MLM head {mlm_head} predicts this corpus worse than chance. Check that the corpus is "
        "text in this language (not markup or another encoding); with `head_warmup.mix: config` the head knows only "
        "the pipeline's own languages: `mix: general` warms it on ~440 languages")


def _as_saved(am: AdapterModel, language: str, training: LanguageAdapterTraining, centering_text: list[list[int]],
              drift: DriftMeter, held_out_loss: Callable[[], dict[str, float]], pad_token_id: int,
              device) -> dict[str, float]:
    """The adapter as it would be saved now (centred on `centering_text` when `training.center`; the
    training weights are left as they were): its held-out loss and perplexity, and its drift
    (language_adapters/drift.py)."""
    def measure() -> dict[str, float]:
        return {**held_out_loss(), "drift": drift(am, language)}

    if not training.center:
        return measure()
    weights = {name: tensor.detach().clone() for name, tensor in adapter_state_dict(am, language).items()}
    center_language_adapter(am, language, centering_text, pad_token_id, device)
    try:
        return measure()
    finally:
        load_adapter_weights(am, language, Path("<weights before centring>"), weights=weights)


def _tokens(sequences: list[list[int]]) -> int:
    """Text tokens of MLM sequences (each has <s> and </s> around its text)."""
    return sum(len(sequence) - 2 for sequence in sequences)


def _refuse_too_small(source: CorpusSource, chunks: MlmChunks, training: LanguageAdapterTraining, language: str) -> None:
    """Said before training: a corpus this small makes an adapter that memorises it and harms transfer."""
    tokens = _tokens(chunks.train)
    if tokens >= training.min_corpus_tokens:
        return
    raise CorpusTooSmallError(
        f"corpus {source.describe()} is too small for a language adapter for {language!r}: {tokens:,} tokens of "
        f"training text, and it needs at least {training.min_corpus_tokens:,} (language_adapter.min_corpus_tokens). On "
        "a few thousand tokens (a UDHR declaration) an adapter memorises the text and moves the states the task "
        "adapter reads; measured on Swahili POS it took word accuracy from 57 % to 15 %. Give more text of the "
        "language (news, Wikipedia: hf:wikimedia/wikipedia:20231101.<code>, a folder of .txt files; several sources "
        "as a list), or set min_corpus_tokens: 0 to train anyway"
    )


def _held_out_loss(model, chunks: MlmChunks, tokenizer, training: LanguageAdapterTraining, seed: int,
                   device) -> dict[str, float]:
    return evaluate_mlm(model, chunks.held_out, tokenizer, training.batch_size, training.mlm_probability, seed + 3, device)


class BestWeights:
    """The adapter's weights at its lowest held-out MLM loss so far (a copy in memory, ~7 MB for a
    384-wide base; saved with each checkpoint so a resumed run keeps it)."""

    def __init__(self) -> None:
        self.loss: float | None = None
        self.step: int | None = None
        self.state: dict[str, torch.Tensor] = {}

    def offer(self, loss: float, step: int, am: AdapterModel, language: str) -> None:
        if self.loss is None or loss < self.loss:
            self.loss, self.step = loss, step
            self.state = {name: tensor.detach().clone() for name, tensor in adapter_state_dict(am, language).items()}

    def restore(self, am: AdapterModel, language: str) -> None:
        load_adapter_weights(am, language, Path(f"<best weights of step {self.step}>"), weights=self.state)


def next_batch(sequences: list[list[int]], position: Position, size: int, seed: int) -> list[list[int]]:
    """The next `size` sequences; each epoch is a seeded permutation, so the data order is a pure
    function of (seed, epoch, cursor) and a resumed run continues where it stopped."""
    if position.cursor + size > len(sequences):
        position.epoch, position.cursor = position.epoch + 1, 0
    epoch_seed = (seed * 1_000_003 + position.epoch) % 2**63  # in torch's seed range for any seed
    order = torch.randperm(len(sequences), generator=torch.Generator().manual_seed(epoch_seed))
    picked = order[position.cursor : position.cursor + size].tolist()
    position.cursor += size
    return [sequences[i] for i in picked]


def _fingerprint(base_model, language: str, source: CorpusSource, training: LanguageAdapterTraining, chunks: MlmChunks,
                 mlm_head_sha256: str | None) -> str:
    """Identifies a training run: a checkpoint resumes only the run that wrote it."""
    digest = hashlib.sha256()
    header = {"base": str(base_model), "language": language, "corpus": source.describe(), "training": training.to_dict(),
              "seeding": SEEDING_VERSION}
    if mlm_head_sha256:
        header["mlm_head"] = mlm_head_sha256
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    for chunk in chunks.train:
        digest.update(torch.tensor(chunk, dtype=torch.int32).numpy().tobytes())
    return digest.hexdigest()


def _save_checkpoint(folder, fingerprint, am, language, optimizer, scheduler, mask_rng, dropout_rng, position,
                     history, best: BestWeights) -> None:
    with atomic_directory(folder) as staging:
        save_file(adapter_state_dict(am, language), str(staging / "adapter.safetensors"))
        if best.state:
            save_file(best.state, str(staging / "best.safetensors"))
        save_optimizer(optimizer, scheduler, staging)
        save_file({"dropout": dropout_rng.get_state(), "mask": mask_rng.get_state()}, str(staging / "rng.safetensors"))
        state = {"fingerprint": fingerprint, "position": dataclasses.asdict(position), "history": history,
                 "best": {"loss": best.loss, "step": best.step}}
        (staging / "state.json").write_text(json.dumps(state), encoding="utf-8")


def _restore(folder: Path, fingerprint, am, language, optimizer, scheduler, mask_rng, dropout_rng, best: BestWeights):
    """Load the checkpoint in `folder` if it belongs to this run; return (position, history) or None."""
    recover_interrupted(folder)  # a process killed while replacing the checkpoint left the old one beside it
    state_file = folder / "state.json"
    if not state_file.is_file():
        return None
    state = json.loads(state_file.read_text(encoding="utf-8"))
    if state.get("fingerprint") != fingerprint:
        return None  # written by a different configuration or corpus: start over (it will be replaced)
    load_adapter_weights(am, language, folder / "adapter.safetensors")
    load_optimizer(optimizer, scheduler, folder)
    rng = load_file(str(folder / "rng.safetensors"))
    dropout_rng.set_state(rng["dropout"])
    mask_rng.set_state(rng["mask"])
    if (folder / "best.safetensors").is_file():
        best.loss, best.step = state["best"]["loss"], state["best"]["step"]
        best.state = load_file(str(folder / "best.safetensors"))
    return Position(**state["position"]), state["history"]
