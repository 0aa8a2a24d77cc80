#!/usr/bin/env python
r"""Reference oracle built on the real AdapterHub library (`adapters==1.3.0`).

Run ONLY with the python of the separate venv made by `scripts/adapterhub_env.sh`
(`adapters` pins transformers 4.57.x, which cannot live next to the project's
transformers 5):

    PY=$(bash scripts/adapterhub_env.sh | tail -n1)
    $PY scripts/adapterhub_oracle.py make --out /tmp/ref --model-type xlm-roberta
    $PY scripts/adapterhub_oracle.py run --base /tmp/ref/base --lang /tmp/ref/lang \
        --task /tmp/ref/task --inputs /tmp/ref/inputs.json --out /tmp/ref/run.safetensors \
        --compare /tmp/ref/outputs.safetensors
    $PY scripts/adapterhub_oracle.py mlm-check
    $PY scripts/adapterhub_oracle.py freeze-check
    $PY scripts/adapterhub_oracle.py formula-check
    $PY scripts/adapterhub_oracle.py describe /tmp/ref/lang
    $PY scripts/adapterhub_oracle.py compare A.safetensors B.safetensors

Everything is offline (HF_HUB_OFFLINE=1 is forced) and deterministic given --seed.
Facts about the on-disk format are in docs/adapterhub-format.md.

`make` writes into --out:
  base/                    plain transformers `*Model` (XLMRobertaModel / RobertaModel / BertModel),
                           save_pretrained -> config.json + model.safetensors, standard key names
                           (no `roberta.`/`bert.` prefix), loadable by transformers 4 and 5.
  lang/                    save_adapter(.., "lang"): adapter_config.json, adapter.safetensors AND
                           pytorch_adapter.bin (both written, same weights).
  task/                    save_adapter(.., "task", with_head=True): as above + head_config.json,
                           model_head.safetensors, pytorch_model_head.bin.
  inputs.json              {"input_ids": [[..]], "attention_mask": [[..]]} (with padding)
  outputs.safetensors      reference activations (float32), see OUTPUT KEYS below.
  manifest.json            what was built (model type, sizes, adapter configs, seed, versions).

OUTPUT KEYS (outputs.safetensors):
  logits_stack             tagging-head logits, active Stack("lang", "task")        [B, T, 5]
  hidden_stack             last hidden state, Stack("lang", "task")                 [B, T, d]
  hidden_lang              last hidden state, only "lang" active                    [B, T, d]
  hidden_task              last hidden state, only "task" active                    [B, T, d]
  hidden_none              last hidden state, no adapter active                     [B, T, d]
  embeddings_none          embedding-layer output (incl. its LayerNorm), no adapter [B, T, d]
  embeddings_lang          embedding-layer output + NICE invertible adapter "lang"  [B, T, d]
  embeddings_task          embedding-layer output with only "task" active (no inv)  [B, T, d]
  hidden_states_stack.{i}  all hidden states (i=0: embeddings+inv) under the Stack  [B, T, d]
  inv_input                random tensor X                                          [B, T, d]
  inv_forward              lang's invertible adapter applied to X                   [B, T, d]
  inv_reverse              lang's invertible adapter inverse (rev=True) applied to X [B, T, d]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

try:
    import torch
    import transformers
    import adapters
    from adapters import (
        AutoAdapterModel,
        BertAdapterModel,
        DoubleSeqBnConfig,
        RobertaAdapterModel,
        SeqBnConfig,
        SeqBnInvConfig,
        XLMRobertaAdapterModel,
    )
    from adapters.composition import Stack
    from safetensors.torch import load_file, save_file
except ImportError as exc:  # pragma: no cover - wrong interpreter
    sys.stderr.write(
        f"adapterhub_oracle.py: cannot import the reference stack ({exc}).\n"
        "Run it with the venv python: PY=$(bash scripts/adapterhub_env.sh | tail -n1); $PY scripts/adapterhub_oracle.py ...\n"
    )
    sys.exit(2)

torch.set_num_threads(1)
transformers.logging.set_verbosity_error()

MODEL_TYPES = {
    # model_type: (config class, bare model class, AdapterModel class, MLM class, base_model_prefix)
    "xlm-roberta": (
        transformers.XLMRobertaConfig,
        transformers.XLMRobertaModel,
        XLMRobertaAdapterModel,
        transformers.XLMRobertaForMaskedLM,
        "roberta",
    ),
    "roberta": (
        transformers.RobertaConfig,
        transformers.RobertaModel,
        RobertaAdapterModel,
        transformers.RobertaForMaskedLM,
        "roberta",
    ),
    "bert": (
        transformers.BertConfig,
        transformers.BertModel,
        BertAdapterModel,
        transformers.BertForMaskedLM,
        "bert",
    ),
}
NUM_LABELS = 5


# ----------------------------------------------------------------------------- helpers


def number(text: str):
    """int if integral (so configs say 2, not 2.0, like the library's presets), else float."""
    v = float(text)
    return int(v) if v.is_integer() else v


def log(msg: str) -> None:
    sys.stderr.write(f"[oracle] {msg}\n")


def make_config(model_type: str, hidden: int, layers: int, vocab: int, heads: int | None = None):
    cfg_cls = MODEL_TYPES[model_type][0]
    if heads is None:
        heads = 4 if hidden % 4 == 0 else (2 if hidden % 2 == 0 else 1)
    kwargs = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=64,
        # larger than the usual 0.02 so that the base model is not near-trivial
        initializer_range=0.2,
        hidden_act="gelu",
    )
    if model_type in ("xlm-roberta", "roberta"):
        kwargs.update(pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1)
    else:
        kwargs.update(pad_token_id=0, type_vocab_size=2)
    return cfg_cls(**kwargs)


def randomise_(module: torch.nn.Module, std: float, gen: torch.Generator, name_filter=None) -> list[str]:
    """Overwrite every float parameter (whose name passes name_filter) with N(0, std)."""
    touched = []
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name_filter is not None and not name_filter(name):
                continue
            p.copy_(torch.randn(p.shape, generator=gen) * std)
            touched.append(name)
    return touched


def perturb_layernorms_(module: torch.nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(1.0 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))


def is_adapter_param(name: str) -> bool:
    return ".adapters." in name or "invertible_adapters." in name or name.startswith("heads.")


def make_inputs(config, batch: int, seq: int, gen: torch.Generator) -> dict:
    pad = config.pad_token_id
    low = 3 if pad is not None and pad < 3 else 0
    ids = torch.randint(low, config.vocab_size, (batch, seq), generator=gen)
    if pad is not None:
        ids[ids == pad] = low
    mask = torch.ones(batch, seq, dtype=torch.long)
    # padding: row 1 loses its last 2 tokens, row 2 its last 3 (if the batch has them)
    for row, n_pad in ((1, 2), (2, 3)):
        if row < batch and n_pad < seq:
            ids[row, seq - n_pad :] = pad
            mask[row, seq - n_pad :] = 0
    return {"input_ids": ids.tolist(), "attention_mask": mask.tolist()}


def load_inputs(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = json.loads(Path(path).read_text())
    ids = torch.tensor(data["input_ids"], dtype=torch.long)
    mask = torch.tensor(data.get("attention_mask", [[1] * ids.shape[1]] * ids.shape[0]), dtype=torch.long)
    return ids, mask


def task_reduction_factor(hidden: int, wanted: int = 16, min_bottleneck: int = 2) -> int:
    rf = wanted
    while rf > 1 and hidden // rf < min_bottleneck:
        rf //= 2
    return rf


@torch.no_grad()
def base_hidden(model, ids, mask, setup, output_hidden_states=False):
    model.set_active_adapters(setup)
    out = model.base_model(input_ids=ids, attention_mask=mask, output_hidden_states=output_hidden_states)
    return out


@torch.no_grad()
def head_logits(model, ids, mask, setup, head: str):
    model.set_active_adapters(setup)
    model.active_head = head
    out = model(input_ids=ids, attention_mask=mask, head=head)
    return out.logits


def versions() -> dict:
    return {
        "adapters": adapters.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }


def write_both_adapter_formats(model, out_dir: Path, name: str, with_head: bool) -> None:
    """save_adapter twice: safetensors (adapter.safetensors / model_head.safetensors) and
    torch pickle (pytorch_adapter.bin / pytorch_model_head.bin) in the same folder."""
    model.save_adapter(str(out_dir), name, with_head=with_head, use_safetensors=True)
    model.save_adapter(str(out_dir), name, with_head=with_head, use_safetensors=False)


def compare_files(a_path: str, b_path: str, atol: float) -> int:
    a = load_file(a_path)
    b = load_file(b_path)
    worst = 0.0
    rc = 0
    for k in sorted(set(a) & set(b)):
        if a[k].shape != b[k].shape:
            print(f"{k}: SHAPE MISMATCH {tuple(a[k].shape)} vs {tuple(b[k].shape)}")
            rc = 1
            continue
        d = (a[k].float() - b[k].float()).abs().max().item() if a[k].numel() else 0.0
        worst = max(worst, d)
        status = "ok" if d <= atol else "DIFF"
        if d > atol:
            rc = 1
        print(f"{k}: max_abs_diff={d:.3e} {status}")
    only = sorted(set(a) ^ set(b))
    if only:
        print(f"(keys only in one file, not compared: {only})")
    print(f"worst max_abs_diff={worst:.3e} (atol {atol:g}) -> {'PASS' if rc == 0 else 'FAIL'}")
    return rc


# ----------------------------------------------------------------------------- make


def cmd_make(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    _, bare_cls, adapter_model_cls, _, prefix = MODEL_TYPES[args.model_type]
    config = make_config(args.model_type, args.hidden, args.layers, args.vocab)

    # 1. base model: plain transformers *Model, random, LayerNorms perturbed
    base = bare_cls(config)
    perturb_layernorms_(base, gen)
    base.eval()
    base.save_pretrained(str(out / "base"), safe_serialization=True)
    base_keys = sorted(load_file(str(out / "base" / "model.safetensors")).keys())
    bad = [k for k in base_keys if k.startswith(prefix + ".")]
    if bad:
        raise SystemExit(f"base checkpoint has prefixed keys (expected standard bare-model names): {bad[:3]}")

    # 2. flex-head adapter model with the same base weights
    # fresh config object: the library writes adapter/head definitions into model.config
    model = adapter_model_cls(make_config(args.model_type, args.hidden, args.layers, args.vocab))
    missing, unexpected = getattr(model, prefix).load_state_dict(base.state_dict(), strict=False)
    # `prompt_tuning.base_model_embeddings` is the library's alias of the word embeddings
    missing = [k for k in missing if not k.startswith("prompt_tuning.")]
    if missing or unexpected:
        raise SystemExit(f"base weights did not transfer: missing={missing} unexpected={unexpected}")
    model.config.name_or_path = args.model_name  # becomes "model_name" in adapter_config.json

    lang_cfg = SeqBnInvConfig(reduction_factor=args.lang_rf, inv_adapter_reduction_factor=args.inv_rf)
    task_rf = args.task_rf or task_reduction_factor(args.hidden)
    if args.houlsby:
        task_cfg = DoubleSeqBnConfig(reduction_factor=task_rf)
    else:
        task_cfg = SeqBnConfig(reduction_factor=task_rf)
    model.add_adapter("lang", config=lang_cfg)
    model.add_adapter("task", config=task_cfg)
    model.add_tagging_head("task", num_labels=NUM_LABELS)

    # 3. randomise ALL adapter + head weights (reference init is near identity / zero)
    touched = randomise_(model, args.std, gen, name_filter=is_adapter_param)
    if not any("invertible_adapters.lang." in n for n in touched):
        raise SystemExit("no invertible adapter parameters found for 'lang'")
    model.eval()

    # 4. save adapters (both weight formats) and the head with the task adapter
    write_both_adapter_formats(model, out / "lang", "lang", with_head=False)
    write_both_adapter_formats(model, out / "task", "task", with_head=True)

    # 5. inputs + reference activations
    inputs = make_inputs(config, args.batch, args.seq, gen)
    (out / "inputs.json").write_text(json.dumps(inputs))
    ids = torch.tensor(inputs["input_ids"])
    mask = torch.tensor(inputs["attention_mask"])

    outputs: dict[str, torch.Tensor] = {}
    st = Stack("lang", "task")
    outputs["logits_stack"] = head_logits(model, ids, mask, st, "task")
    res = base_hidden(model, ids, mask, st, output_hidden_states=True)
    outputs["hidden_stack"] = res.last_hidden_state
    for i, h in enumerate(res.hidden_states):
        outputs[f"hidden_states_stack.{i}"] = h
    for key, setup in (("lang", "lang"), ("task", "task")):
        r = base_hidden(model, ids, mask, setup, output_hidden_states=True)
        outputs[f"hidden_{key}"] = r.last_hidden_state
        outputs[f"embeddings_{key}"] = r.hidden_states[0]
    model.set_active_adapters(None)
    with torch.no_grad():
        r = model.base_model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    outputs["hidden_none"] = r.last_hidden_state
    outputs["embeddings_none"] = r.hidden_states[0]
    # sanity: the base adapter-free output equals the plain transformers model
    with torch.no_grad():
        plain = base(input_ids=ids, attention_mask=mask).last_hidden_state
    d_plain = (plain - outputs["hidden_none"]).abs().max().item()
    if d_plain > 1e-5:
        raise SystemExit(f"adapter-free AdapterModel differs from plain {bare_cls.__name__}: {d_plain}")

    inv = model.base_model.invertible_adapters["lang"]
    x = torch.randn(ids.shape[0], ids.shape[1], args.hidden, generator=gen)
    with torch.no_grad():
        outputs["inv_input"] = x
        outputs["inv_forward"] = inv(x)
        outputs["inv_reverse"] = inv(x, rev=True)
        roundtrip = (inv(inv(x), rev=True) - x).abs().max().item()
    outputs = {k: v.detach().float().clone().contiguous() for k, v in outputs.items()}
    save_file(outputs, str(out / "outputs.safetensors"))

    # 6. reload check: load_adapter into a fresh model and reproduce the logits
    manifest = {
        "model_type": args.model_type,
        "adapter_model_class": adapter_model_cls.__name__,
        "base_model_class": bare_cls.__name__,
        "base_model_prefix": prefix,
        "hidden": args.hidden,
        "layers": args.layers,
        "vocab": args.vocab,
        "seed": args.seed,
        "std": args.std,
        "lang_config": lang_cfg.to_dict(),
        "task_config": task_cfg.to_dict(),
        "task_adapter_kind": "double_seq_bn" if args.houlsby else "seq_bn",
        "num_labels": NUM_LABELS,
        "base_checkpoint_keys": base_keys,
        "inv_roundtrip_max_abs_err": roundtrip,
        "files": sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()),
        "output_shapes": {k: list(v.shape) for k, v in outputs.items()},
        "versions": versions(),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    log(f"wrote {out} ({len(outputs)} tensors; inv round-trip err {roundtrip:.2e})")
    print(str(out))
    return 0


# ----------------------------------------------------------------------------- run


def adapter_model_for_base(base_dir: str):
    cfg = transformers.AutoConfig.from_pretrained(base_dir)
    mt = cfg.model_type.replace("_", "-")
    if mt not in MODEL_TYPES:
        model = AutoAdapterModel.from_pretrained(base_dir)
        return model, getattr(model, "base_model_prefix", "")
    cls = MODEL_TYPES[mt][2]
    model, info = cls.from_pretrained(base_dir, output_loading_info=True)
    bad_missing = [k for k in info["missing_keys"] if not k.startswith("heads.")]
    if bad_missing or info["unexpected_keys"] or info.get("mismatched_keys"):
        raise SystemExit(f"base checkpoint did not load cleanly: {info}")
    return model, MODEL_TYPES[mt][4]


def load_adapter_strict(model, path: str, name: str | None, with_head: bool) -> str:
    info: dict = {}
    cfg = json.loads((Path(path) / "adapter_config.json").read_text())
    load_name = model.load_adapter(
        path,
        load_as=name,
        with_head=with_head,
        use_safetensors=True,  # adapter.safetensors if present, else pytorch_adapter.bin
        loading_info=info,
    )
    # The library only *logs* missing/unexpected keys; an oracle must fail instead.
    missing = info.get("missing_keys", [])
    unexpected = info.get("unexpected_keys", [])
    if missing or unexpected:
        raise SystemExit(
            f"adapter {path} did not load cleanly into {type(model).__name__}:\n"
            f"  missing={missing}\n  unexpected={unexpected}"
        )
    if load_name not in model.adapters_config.adapters:
        raise SystemExit(f"adapter {load_name} not registered after load")
    log(f"loaded adapter {load_name!r} (saved as {cfg.get('name')!r}) from {path}")
    return load_name


def cmd_run(args) -> int:
    if not args.lang and not args.task:
        raise SystemExit("give --lang and/or --task")
    torch.manual_seed(args.seed)
    model, _prefix = adapter_model_for_base(args.base)
    model.eval()
    names = []
    lang_name = task_name = None
    if args.lang:
        lang_name = load_adapter_strict(model, args.lang, args.lang_name, with_head=False)
        names.append(lang_name)
    if args.task:
        task_name = load_adapter_strict(model, args.task, args.task_name, with_head=True)
        names.append(task_name)
    model.eval()
    ids, mask = load_inputs(args.inputs)
    setup = Stack(*names)
    outputs = {}
    res = base_hidden(model, ids, mask, setup, output_hidden_states=True)
    outputs["hidden_stack"] = res.last_hidden_state
    for i, h in enumerate(res.hidden_states):
        outputs[f"hidden_states_stack.{i}"] = h
    head = args.head or task_name
    if head is not None and head in model.heads:
        outputs["logits_stack"] = head_logits(model, ids, mask, setup, head)
    elif args.task and (Path(args.task) / "head_config.json").exists():
        raise SystemExit(f"{args.task} has a head_config.json but no head {head!r} was loaded (heads: {list(model.heads)})")
    elif args.task:
        log(f"no head {head!r} loaded (heads: {list(model.heads)}); only hidden states written")
    for n, key in ((lang_name, "lang"), (task_name, "task")):
        if n is not None:
            r = base_hidden(model, ids, mask, n, output_hidden_states=True)
            outputs[f"hidden_{key}"] = r.last_hidden_state
            outputs[f"embeddings_{key}"] = r.hidden_states[0]
    outputs = {k: v.detach().float().clone().contiguous() for k, v in outputs.items()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_file(outputs, args.out)
    log(f"wrote {args.out}: {sorted(outputs)}")
    if args.compare:
        return compare_files(args.out, args.compare, args.atol)
    return 0


# ----------------------------------------------------------------------------- mlm-check


def _manual_lm_logits(transform_fn, decoder, seq, inv):
    t = transform_fn(seq)
    with_inv = decoder(inv(t, rev=True))
    without = decoder(t)
    return with_inv, without


def cmd_mlm_check(args) -> int:
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    _, _, adapter_model_cls, mlm_cls, prefix = MODEL_TYPES[args.model_type]
    config = make_config(args.model_type, args.hidden, args.layers, args.vocab)
    inputs = make_inputs(config, 2, 6, gen)
    ids = torch.tensor(inputs["input_ids"])
    mask = torch.tensor(inputs["attention_mask"])
    lang_cfg = SeqBnInvConfig(reduction_factor=2, inv_adapter_reduction_factor=2)
    report: dict = {"model_type": args.model_type, "versions": versions()}

    # (a) flex-head AdapterModel + add_masked_lm_head
    m = adapter_model_cls(config)
    m.add_adapter("lang", config=lang_cfg)
    m.add_masked_lm_head("mlm")
    randomise_(m, 0.5, gen, name_filter=lambda n: "invertible_adapters." in n or ".adapters." in n)
    m.eval()
    m.set_active_adapters("lang")
    with torch.no_grad():
        logits = m(input_ids=ids, attention_mask=mask, head="mlm").logits
        seq = m.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        head = m.heads["mlm"]
        mods = list(head.children())

        def transform(x):
            for mod in mods[:-1]:
                x = mod(x)
            return x

        inv = m.base_model.invertible_adapters["lang"]
        w, wo = _manual_lm_logits(transform, mods[-1], seq, inv)
    d_w = (logits - w).abs().max().item()
    d_wo = (logits - wo).abs().max().item()
    report["AdapterModel+add_masked_lm_head"] = {
        "head_modules": [type(x).__name__ for x in mods],
        "max_abs_diff_vs_manual_with_inverse": d_w,
        "max_abs_diff_vs_manual_without_inverse": d_wo,
        "inverse_applied": d_w < 1e-5 and d_wo > 1e-4,
    }

    # (b) plain *ForMaskedLM + adapters.init (fresh config: the library stores adapters/heads in it)
    m2 = mlm_cls(make_config(args.model_type, args.hidden, args.layers, args.vocab))
    adapters.init(m2)
    m2.add_adapter("lang", config=lang_cfg)
    randomise_(m2, 0.5, gen, name_filter=lambda n: "invertible_adapters." in n or ".adapters." in n)
    m2.eval()
    m2.set_active_adapters("lang")
    with torch.no_grad():
        logits2 = m2(input_ids=ids, attention_mask=mask).logits
        base2 = getattr(m2, prefix)
        seq2 = base2(input_ids=ids, attention_mask=mask).last_hidden_state
        inv2 = base2.invertible_adapters["lang"]
        if args.model_type == "bert":
            tr = m2.cls.predictions.transform
            dec = m2.cls.predictions.decoder
            transform2 = tr
        else:
            lm = m2.lm_head

            def transform2(x):
                x = lm.dense(x)
                x = transformers.activations.gelu(x)
                return lm.layer_norm(x)

            dec = lm.decoder
        w2, wo2 = _manual_lm_logits(transform2, dec, seq2, inv2)
    d_w2 = (logits2 - w2).abs().max().item()
    d_wo2 = (logits2 - wo2).abs().max().item()
    report[f"{mlm_cls.__name__}+adapters.init"] = {
        "max_abs_diff_vs_manual_with_inverse": d_w2,
        "max_abs_diff_vs_manual_without_inverse": d_wo2,
        "inverse_applied": d_w2 < 1e-5 and d_wo2 > 1e-4,
        "forward_inv_applied_on_embeddings": True,
    }
    # forward direction is applied in both cases: check the embedding output moved
    with torch.no_grad():
        m2.set_active_adapters(None)
        e0 = getattr(m2, prefix)(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[0]
        m2.set_active_adapters("lang")
        e1 = getattr(m2, prefix)(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[0]
    report[f"{mlm_cls.__name__}+adapters.init"]["forward_inv_applied_on_embeddings"] = bool(
        (e0 - e1).abs().max().item() > 1e-4 and (inv2(e0) - e1).abs().max().item() < 1e-5
    )
    print(json.dumps(report, indent=2))
    return 0


# ----------------------------------------------------------------------------- freeze-check


def cmd_freeze_check(args) -> int:
    """What does train_adapter(Stack(lang, task)) unfreeze?"""
    _, _, adapter_model_cls, _, _ = MODEL_TYPES[args.model_type]
    report = {}
    cases = (
        ("train_adapter(Stack('lang','task'))", Stack("lang", "task"), None),
        ("train_adapter('task')", "task", None),
        # the MAD-X recipe of the AdapterHub docs: train the TA, then activate the Stack
        ("train_adapter('task'); active_adapters = Stack('lang','task')", "task", Stack("lang", "task")),
    )
    for label, setup, then_active in cases:
        # fresh config per model: the library keeps adapter/head definitions in model.config
        m = adapter_model_cls(make_config(args.model_type, args.hidden, args.layers, args.vocab))
        m.add_adapter("lang", config=SeqBnInvConfig(reduction_factor=2))
        m.add_adapter("task", config=SeqBnConfig(reduction_factor=task_reduction_factor(args.hidden)))
        m.add_tagging_head("task", num_labels=NUM_LABELS)
        m.train_adapter(setup)
        if then_active is not None:
            m.active_adapters = then_active
        trainable = [n for n, p in m.named_parameters() if p.requires_grad]
        groups = {
            "lang_bottleneck": sum(".adapters.lang." in n for n in trainable),
            "lang_invertible": sum("invertible_adapters.lang." in n for n in trainable),
            "task_bottleneck": sum(".adapters.task." in n for n in trainable),
            "heads": sum(n.startswith("heads.") for n in trainable),
            "base": sum(not is_adapter_param(n) for n in trainable),
        }
        report[label] = {"trainable_param_tensors": groups, "active_setup": str(m.active_adapters)}
    print(json.dumps(report, indent=2))
    return 0


# ----------------------------------------------------------------------------- formula-check


def cmd_formula_check(args) -> int:
    """Re-implement the documented formulas by hand and compare them with the library's modules."""
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    _, _, adapter_model_cls, _, prefix = MODEL_TYPES[args.model_type]
    d = args.hidden
    m = adapter_model_cls(make_config(args.model_type, d, args.layers, args.vocab))
    m.add_adapter("pf", config=SeqBnInvConfig(reduction_factor=2, inv_adapter_reduction_factor=2))
    m.add_adapter("pf2", config=SeqBnConfig(reduction_factor=task_reduction_factor(d)))
    m.add_adapter("ho", config=DoubleSeqBnConfig(reduction_factor=task_reduction_factor(d)))
    m.add_adapter("sc", config=SeqBnConfig(reduction_factor=4, scaling=0.5, non_linearity="gelu"))
    randomise_(m, 0.5, gen, name_filter=is_adapter_param)
    perturb_layernorms_(m, gen)
    m.eval()
    base = m.base_model
    layer = base.encoder.layer[0]
    out_mod, att_mod = layer.output, layer.attention.output
    ln_o, ln_a = out_mod.LayerNorm, att_mod.LayerNorm
    h = torch.randn(2, 5, d, generator=gen)
    x = torch.randn(2, 5, d, generator=gen)
    acts = {"relu": torch.relu, "swish": torch.nn.functional.silu, "gelu": torch.nn.functional.gelu}

    def A(mod, name, z, act):
        ad = mod.adapters[name]
        down, up = ad.adapter_down[0], ad.adapter_up
        return up(acts[act](down(z))) * ad.scaling

    def lib(mod, ln, setup):
        m.set_active_adapters(setup)
        with torch.no_grad():
            return mod.bottleneck_layer_forward(h, x, ln)

    results = {}
    with torch.no_grad():
        # Pfeiffer / seq_bn, one adapter:  out = LN(A(LN(h + x)) + h + x)
        results["seq_bn single: LN(A(LN(h+x)) + h + x)"] = (
            lib(out_mod, ln_o, "pf"), ln_o(A(out_mod, "pf", ln_o(h + x), "relu") + h + x))
        # Stack(A, B): a = A(LN(h+x)) + h ; b = B(LN(a+x)) + a ; out = LN(b + x)
        a = A(out_mod, "pf", ln_o(h + x), "relu") + h
        b = A(out_mod, "pf2", ln_o(a + x), "relu") + a
        results["seq_bn Stack(A,B): a=A(LN(h+x))+h; b=B(LN(a+x))+a; LN(b+x)"] = (
            lib(out_mod, ln_o, Stack("pf", "pf2")), ln_o(b + x))
        # Houlsby / double_seq_bn (original_ln_before=False), both positions: LN(A(h) + h + x)
        results["double_seq_bn output: LN(A(h) + h + x)"] = (
            lib(out_mod, ln_o, "ho"), ln_o(A(out_mod, "ho", h, "swish") + h + x))
        results["double_seq_bn attention.output: LN(A(h) + h + x)"] = (
            lib(att_mod, ln_a, "ho"), ln_a(A(att_mod, "ho", h, "swish") + h + x))
        # mixed Stack(seq_bn, double_seq_bn): each adapter uses its own pre_forward, the LAST one's post_forward
        a = A(out_mod, "pf", ln_o(h + x), "relu") + h
        b = A(out_mod, "ho", a, "swish") + a
        results["Stack(seq_bn, double_seq_bn): a=A(LN(h+x))+h; b=B(a)+a; LN(b+x)"] = (
            lib(out_mod, ln_o, Stack("pf", "ho")), ln_o(b + x))
        # scaling multiplies the bottleneck output before the residual; gelu = exact erf GELU
        results["scaling=0.5, gelu: LN(0.5*up(gelu(down(LN(h+x)))) + h + x)"] = (
            lib(out_mod, ln_o, "sc"), ln_o(A(out_mod, "sc", ln_o(h + x), "gelu") + h + x))
        # no adapter active in the layer: plain LN(h + x)
        results["no adapter: LN(h + x)"] = (lib(out_mod, ln_o, None), ln_o(h + x))

        # NICE coupling
        inv = base.invertible_adapters["pf"]
        s1 = d // 2
        e = torch.randn(2, 5, d, generator=gen)
        e1, e2 = e[..., :s1], e[..., s1:]
        Fm = lambda z: inv.F[2](torch.relu(inv.F[0](z)))
        Gm = lambda z: inv.G[2](torch.relu(inv.G[0](z)))
        y1 = e1 + Fm(e2)
        y2 = e2 + Gm(y1)
        results["NICE forward: y1=e1+F(e2); y2=e2+G(y1)"] = (inv(e), torch.cat([y1, y2], -1))
        x2 = e2 - Gm(e1)
        x1 = e1 - Fm(x2)
        results["NICE inverse: x2=y2-G(y1); x1=y1-F(x2)"] = (inv(e, rev=True), torch.cat([x1, x2], -1))
        results["NICE round trip inv(inv(e), rev=True) == e"] = (inv(inv(e), rev=True), e)
        # embedding hook: hidden_states[0] == inv(embeddings(ids)) with the first adapter of the Stack
        ids = torch.tensor(make_inputs(m.config, 2, 6, gen)["input_ids"])
        m.set_active_adapters(None)
        emb = base(input_ids=ids, output_hidden_states=True).hidden_states[0]
        m.set_active_adapters(Stack("pf", "pf2"))
        emb_stack = base(input_ids=ids, output_hidden_states=True).hidden_states[0]
        results["embeddings under Stack(pf, pf2) == inv_pf(embeddings)"] = (emb_stack, inv(emb))
        m.set_active_adapters(Stack("pf2", "pf"))
        emb_stack2 = base(input_ids=ids, output_hidden_states=True).hidden_states[0]
        results["embeddings under Stack(pf2, pf) == embeddings (pf2 is first and has no inv)"] = (emb_stack2, emb)

    report = {}
    ok = True
    for k, (got, want) in results.items():
        diff = (got - want).abs().max().item()
        report[k] = {"max_abs_diff": diff, "ok": diff < 1e-5}
        ok &= diff < 1e-5
    report["_inv_param_shapes"] = {n: list(p.shape) for n, p in base.invertible_adapters["pf"].named_parameters()}
    report["_all_ok"] = ok
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


# ----------------------------------------------------------------------------- describe


def cmd_describe(args) -> int:
    d = Path(args.dir)
    out = {}
    for cfg_name in ("adapter_config.json", "head_config.json"):
        if (d / cfg_name).exists():
            out[cfg_name] = json.loads((d / cfg_name).read_text())
    for wname in ("adapter.safetensors", "model_head.safetensors", "pytorch_adapter.bin", "pytorch_model_head.bin"):
        p = d / wname
        if not p.exists():
            continue
        sd = load_file(str(p)) if wname.endswith(".safetensors") else torch.load(str(p), map_location="cpu", weights_only=True)
        out[wname] = {k: list(v.shape) for k, v in sorted(sd.items())}
    print(json.dumps(out, indent=2))
    return 0


# ----------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="adapterhub_oracle.py",
        description="Ground truth from the reference library adapters==%s (offline, deterministic)." % adapters.__version__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[-1] if __doc__ else None,
    )
    sub = p.add_subparsers(dest="cmd", required=True)

    def model_args(sp, hidden=32, layers=2, vocab=100):
        sp.add_argument("--model-type", choices=sorted(MODEL_TYPES), default="xlm-roberta")
        sp.add_argument("--hidden", type=int, default=hidden)
        sp.add_argument("--layers", type=int, default=layers)
        sp.add_argument("--vocab", type=int, default=vocab)
        sp.add_argument("--seed", type=int, default=0)

    mk = sub.add_parser("make", help="build a tiny random model + MAD-X adapters, save them and reference outputs")
    mk.add_argument("--out", required=True)
    model_args(mk)
    mk.add_argument("--houlsby", action="store_true", help="task adapter = double_seq_bn (Houlsby) instead of seq_bn")
    mk.add_argument("--lang-rf", type=number, default=2, help="LA reduction factor (MAD-X: 2)")
    mk.add_argument("--inv-rf", type=number, default=2, help="invertible adapter reduction factor (MAD-X: 2)")
    mk.add_argument("--task-rf", type=number, default=None, help="TA reduction factor (default 16, halved until bottleneck >= 2)")
    mk.add_argument("--std", type=float, default=0.5, help="std of the random adapter/head weights")
    mk.add_argument("--batch", type=int, default=3)
    mk.add_argument("--seq", type=int, default=8)
    mk.add_argument("--model-name", default="tiny-random", help="stored as model_name in adapter_config.json")
    mk.set_defaults(func=cmd_make)

    rn = sub.add_parser("run", help="load base + AdapterHub-format adapter folders, Stack(lang, task), write logits")
    rn.add_argument("--base", required=True, help="folder of a plain transformers *Model (save_pretrained)")
    rn.add_argument("--lang", help="language adapter folder (adapter_config.json + weights)")
    rn.add_argument("--task", help="task adapter folder (+ head_config.json + head weights)")
    rn.add_argument("--lang-name", default=None, help="load the LA under this name (default: name in its config)")
    rn.add_argument("--task-name", default=None, help="load the TA under this name (default: name in its config)")
    rn.add_argument("--head", default=None, help="head to use (default: the task adapter's name)")
    rn.add_argument("--inputs", required=True, help="inputs.json with input_ids and attention_mask")
    rn.add_argument("--out", required=True, help="output .safetensors")
    rn.add_argument("--compare", default=None, help="reference .safetensors to diff against (exit 1 on mismatch)")
    rn.add_argument("--atol", type=float, default=1e-5)
    rn.add_argument("--seed", type=int, default=0)
    rn.set_defaults(func=cmd_run)

    mc = sub.add_parser("mlm-check", help="is the invertible adapter's inverse applied in the MLM head?")
    model_args(mc)
    mc.set_defaults(func=cmd_mlm_check)

    fc = sub.add_parser("freeze-check", help="what train_adapter(Stack(lang, task)) leaves trainable")
    model_args(fc)
    fc.set_defaults(func=cmd_freeze_check)

    fo = sub.add_parser("formula-check", help="verify the documented adapter formulas against the library modules")
    model_args(fo)
    fo.set_defaults(func=cmd_formula_check)

    ds = sub.add_parser("describe", help="print configs and weight keys/shapes of a saved adapter folder")
    ds.add_argument("dir")
    ds.set_defaults(func=cmd_describe)

    cp = sub.add_parser("compare", help="diff two .safetensors files key by key")
    cp.add_argument("a")
    cp.add_argument("b")
    cp.add_argument("--atol", type=float, default=1e-5)
    cp.set_defaults(func=lambda a: compare_files(a.a, a.b, a.atol))
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
