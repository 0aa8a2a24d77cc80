"""AdapterHub interoperability: imported adapters compute what the reference library computes, and
adapters we export compute in the reference what they compute here.

Two kinds of tests:
- unit tests (fast, no reference library): config mapping and every refused option family, key
  prefixes, legacy forms, .bin safety, clear errors, heads, export files, the CLI. They build
  AdapterHub folders by hand from the shapes the reference writes (docs/adapterhub-format.md).
- interop tests (`slow`): the real `adapters==1.3.0` in its own venv (scripts/adapterhub_env.sh,
  cached) runs scripts/adapterhub_oracle.py. `make` gives tiny random models, AdapterHub adapters and
  reference outputs, which our pipeline must reproduce after import; our own random adapters are
  exported and the oracle's `run` must reproduce our outputs. If the venv cannot be built (no PyPI),
  these tests FAIL with the reason: they are the proof, and must not vanish as skips.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import torch
import typer
from safetensors.torch import load_file, save_file
from transformers import AutoModelForTokenClassification
from typer.testing import CliRunner

from madx import AdapterLoadError, AdapterModel, ConfigError, Stack, load_adapter, preset, save_adapter
from madx.adapterhub import export_adapterhub, from_adapterhub_config, import_adapterhub, to_adapterhub_config
from cli.adapterhub import register
from madx.errors import MadxError, UnsupportedModelError
from madx.adapter_files import read_adapter_config

ROOT = Path(__file__).resolve().parents[1]
ORACLE = ROOT / "scripts" / "adapterhub_oracle.py"
TOLERANCE = 1e-4

# The `config` dicts exactly as adapters 1.3.0 saves them (docs/adapterhub-format.md, section 1).
SEQ_BN = {
    "adapter_residual_before_ln": False,
    "cross_adapter": False,
    "dropout": 0.0,
    "factorized_phm_W": True,
    "factorized_phm_rule": False,
    "hypercomplex_nonlinearity": "glorot-uniform",
    "init_weights": "bert",
    "init_weights_seed": None,
    "inv_adapter": None,
    "inv_adapter_reduction_factor": None,
    "is_parallel": False,
    "learn_phm": True,
    "leave_out": [],
    "ln_after": False,
    "ln_before": False,
    "mh_adapter": False,
    "non_linearity": "relu",
    "original_ln_after": True,
    "original_ln_before": True,
    "output_adapter": True,
    "phm_bias": True,
    "phm_c_init": "normal",
    "phm_dim": 4,
    "phm_init_range": 0.0001,
    "phm_layer": False,
    "phm_rank": 1,
    "reduction_factor": 16,
    "residual_before_ln": True,
    "scaling": 1.0,
    "shared_W_phm": False,
    "shared_phm_rule": True,
    "stochastic_depth": 0.0,
    "use_gating": False,
}
MADX_LA = {**SEQ_BN, "inv_adapter": "nice", "inv_adapter_reduction_factor": 2, "reduction_factor": 2}
DOUBLE_SEQ_BN = {**SEQ_BN, "mh_adapter": True, "non_linearity": "swish", "original_ln_before": False}
LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC", 5: "B-ORG"}


# -- hand-made AdapterHub folders ----------------------------------------------------------------------
def hub_weights(config: dict, hidden: int = 32, layers: int = 2, name: str = "lang", prefix: str = "roberta.",
                seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under the keys and shapes the reference writes for `config`."""
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(shape, generator=generator)

    m = int(hidden // config["reduction_factor"])
    places = (["output"] if config["output_adapter"] else []) + (["attention.output"] if config["mh_adapter"] else [])
    state = {}
    for layer in range(layers):
        if layer in config["leave_out"]:
            continue
        for place in places:
            key = f"{prefix}encoder.layer.{layer}.{place}.adapters.{name}."
            state |= {key + "adapter_down.0.weight": rand(m, hidden), key + "adapter_down.0.bias": rand(m),
                      key + "adapter_up.weight": rand(hidden, m), key + "adapter_up.bias": rand(hidden)}
    if config.get("inv_adapter"):
        s1, s2 = hidden // 2, hidden - hidden // 2
        for net, size_in, size_out in (("F", s2, s1), ("G", s1, s2)):  # subnet(in, out): in -> in // rf -> out
            size = int(size_in // config["inv_adapter_reduction_factor"])
            key = f"{prefix}invertible_adapters.{name}.{net}."
            state |= {key + "0.weight": rand(size, size_in), key + "0.bias": rand(size),
                      key + "2.weight": rand(size_out, size), key + "2.bias": rand(size_out)}
    return state


def write_hub(folder: Path, config: dict | str, model_type: str = "xlm-roberta", hidden: int = 32, layers: int = 2,
              name: str = "lang", prefix: str | None = None, formats: tuple[str, ...] = ("safetensors",),
              state: dict | None = None, **top) -> dict[str, torch.Tensor]:
    """An AdapterHub adapter folder; returns the weights written."""
    if prefix is None:
        prefix = "bert." if model_type == "bert" else "roberta."
    resolved = config if isinstance(config, dict) else {"seq_bn": SEQ_BN, "seq_bn_inv": {**MADX_LA, "reduction_factor": 16}}[config]
    state = hub_weights(resolved, hidden, layers, name, prefix) if state is None else state
    folder.mkdir(parents=True, exist_ok=True)
    described = {"config": config, "hidden_size": hidden, "model_class": "XLMRobertaAdapterModel",
                 "model_name": "xlm-roberta-base", "model_type": model_type, "name": name,
                 "version": "adapters.1.3.0", **top}
    (folder / "adapter_config.json").write_text(json.dumps({k: v for k, v in described.items() if v is not ...}))
    if "safetensors" in formats:
        save_file(state, str(folder / "adapter.safetensors"))
    if "bin" in formats:
        torch.save(state, folder / "pytorch_adapter.bin")
    return state


def write_hub_head(folder: Path, name: str = "task", labels: dict[int, str] = LABELS, hidden: int = 32,
                   static: bool = False, **config_changes) -> dict[str, torch.Tensor]:
    label2id = {label: i for i, label in labels.items()}
    generator = torch.Generator().manual_seed(5)
    weight, bias = torch.randn(len(labels), hidden, generator=generator), torch.randn(len(labels), generator=generator)
    if static:  # saved from XLMRobertaForTokenClassification + adapters.init
        described = {"config": None, "name": None, "model_class": "XLMRobertaForTokenClassification",
                     "num_labels": len(labels), "label2id": label2id}
        state = {"classifier.weight": weight, "classifier.bias": bias}
    else:
        head = {"activation_function": "tanh", "dropout_prob": None, "head_type": "tagging", "label2id": label2id,
                "layers": 1, "num_labels": len(labels), **config_changes}
        described = {"config": head, "name": name, "model_class": "XLMRobertaAdapterModel"}
        state = {f"heads.{name}.1.weight": weight, f"heads.{name}.1.bias": bias}
    described |= {"hidden_size": hidden, "model_name": "xlm-roberta-base", "model_type": "xlm-roberta",
                  "version": "adapters.1.3.0"}
    (folder / "head_config.json").write_text(json.dumps(described))
    save_file(state, str(folder / "model_head.safetensors"))
    return state


def madx_key(hub_key: str, name: str) -> str:
    """Our key for an AdapterHub key, written out independently of the code under test."""
    key = re.sub(r"^(roberta|bert)\.", "", hub_key)
    for pattern, ours in ((rf"^encoder\.layer\.(\d+)\.attention\.output\.adapters\.{name}\.", r"layers.\1.attention."),
                          (rf"^encoder\.layer\.(\d+)\.output\.adapters\.{name}\.", r"layers.\1.ffn."),
                          (rf"^invertible_adapters\.{name}\.", "invertible.")):
        key = re.sub(pattern, ours, key)
    return key


def assert_imported(folder: Path, hub_state: dict[str, torch.Tensor], hub_name: str) -> None:
    ours = load_file(str(folder / "adapter.safetensors"))
    expected = {madx_key(key, hub_name): tensor for key, tensor in hub_state.items()}
    assert sorted(ours) == sorted(expected)
    for key, tensor in expected.items():
        assert torch.equal(ours[key], tensor), key


# -- config mapping ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("hub", "ours"),
    [(SEQ_BN, preset("pfeiffer")), (MADX_LA, preset("madx_language")), (DOUBLE_SEQ_BN, preset("houlsby"))],
    ids=["seq_bn", "seq_bn_inv-rf2", "double_seq_bn"],
)
def test_reference_configs_map_both_ways_exactly(hub, ours):
    assert from_adapterhub_config(hub) == ours
    assert to_adapterhub_config(ours) == hub  # the full dict, key for key, as the reference saves it


def test_preset_strings_and_missing_keys_follow_the_reference():
    # The library's seq_bn_inv preset keeps reduction factor 16; MAD-X's 2 must come from the file.
    assert from_adapterhub_config("seq_bn_inv") == preset("madx_language", reduction_factor=16)
    assert from_adapterhub_config("pfeiffer") == preset("pfeiffer")
    assert from_adapterhub_config("houlsby") == preset("houlsby")
    # A dict without original_ln_before is a BnConfig: its default is Houlsby-style placement.
    minimal = {"mh_adapter": False, "output_adapter": True, "reduction_factor": 16, "non_linearity": "relu"}
    assert from_adapterhub_config(minimal) == preset("pfeiffer", original_ln_before=False)
    with pytest.raises(AdapterLoadError, match="required options"):
        from_adapterhub_config({"output_adapter": True, "reduction_factor": 16})


REFUSED = [
    ({"scaling": 0.5}, "scaling"),
    ({"scaling": "learned"}, "scaling"),
    ({"ln_before": True}, "ln_before"),
    ({"ln_after": True}, "ln_after"),
    ({"adapter_residual_before_ln": True}, "adapter_residual_before_ln"),
    ({"residual_before_ln": "post_add"}, "residual_before_ln"),
    ({"residual_before_ln": False}, "residual_before_ln"),
    ({"original_ln_after": False}, "original_ln_after"),
    ({"use_gating": True}, "use_gating"),
    ({"is_parallel": True}, "is_parallel"),
    ({"cross_adapter": True}, "cross_adapter"),
    ({"phm_layer": True}, "phm_layer"),
    ({"dropout": 0.1}, "dropout"),
    ({"stochastic_depth": 0.1}, "stochastic_depth"),
    ({"inv_adapter": "glow", "inv_adapter_reduction_factor": 2}, "inv_adapter"),
    ({"inv_adapter": "nice", "inv_adapter_reduction_factor": None}, "inv_adapter_reduction_factor"),
    ({"non_linearity": "gelu_new"}, "non_linearity"),
    ({"non_linearity": "leakyrelu"}, "non_linearity"),
    ({"reduction_factor": {"1": 8, "default": 16}}, "reduction_factor"),
    ({"init_weights": "xavier"}, "init_weights"),
    ({"leave_out": "11"}, "leave_out"),
    ({"architecture": "lora", "r": 8, "alpha": 8}, "architecture"),
    ({"architecture": "prefix_tuning", "prefix_length": 30}, "architecture"),
    ({"architecture": "union", "configs": []}, "architecture"),
    ({"some_future_option": True}, "some_future_option"),
]


@pytest.mark.parametrize(("changes", "option"), REFUSED, ids=[f"{o}={list(c.values())[0]!r}" for c, o in REFUSED])
def test_options_we_cannot_compute_are_refused_by_name(changes, option):
    with pytest.raises(AdapterLoadError) as error:
        from_adapterhub_config({**SEQ_BN, **changes}, where="x/adapter_config.json")
    message = str(error.value)
    assert f"{option}=" in message and "x/adapter_config.json" in message, message
    value = {**SEQ_BN, **changes}[option]
    assert repr(value) in message, message


def test_gelu_means_what_the_files_version_says():
    assert from_adapterhub_config({**SEQ_BN, "non_linearity": "gelu"}).non_linearity == "gelu"  # exact erf form
    assert from_adapterhub_config({**SEQ_BN, "non_linearity": "GELU"}).non_linearity == "gelu"
    assert from_adapterhub_config({**SEQ_BN, "non_linearity": "gelu_orig"}, legacy=True).non_linearity == "gelu"
    with pytest.raises(AdapterLoadError, match="gelu_new"):  # adapter-transformers' "gelu" was the tanh form
        from_adapterhub_config({**SEQ_BN, "non_linearity": "gelu"}, legacy=True)


def test_gelu_in_a_file_without_version_is_refused(tmp_path):
    write_hub(tmp_path / "hub", {**SEQ_BN, "non_linearity": "gelu"}, version=...)
    with pytest.raises(AdapterLoadError, match="non_linearity='gelu'"):
        import_adapterhub(tmp_path / "hub", tmp_path / "ours")


def test_legacy_nested_invertible_adapter():
    legacy = {key: value for key, value in MADX_LA.items() if not key.startswith("inv_")}
    nested = {"block_type": "nice", "reduction_factor": 2, "non_linearity": "relu"}
    assert from_adapterhub_config({**legacy, "invertible_adapter": nested}) == preset("madx_language")
    with pytest.raises(AdapterLoadError, match="invertible_adapter.non_linearity='tanh'"):
        from_adapterhub_config({**legacy, "invertible_adapter": {**nested, "non_linearity": "tanh"}})


def test_glow_has_no_adapterhub_config():
    with pytest.raises(ConfigError, match="glow"):
        to_adapterhub_config(preset("madx_language", invertible="glow"))


# -- importing files -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model_type", "prefix", "model_class"),
    [("xlm-roberta", "roberta.", "XLMRobertaAdapterModel"), ("xlm-roberta", "", "XLMRobertaModel"),
     ("roberta", "roberta.", "RobertaForTokenClassification"), ("bert", "bert.", "BertAdapterModel"),
     ("bert", "", "BertModel")],
)
def test_keys_with_and_without_the_model_prefix(tmp_path, model_type, prefix, model_class):
    config = {**MADX_LA, "leave_out": [1]}
    state = write_hub(tmp_path / "hub", config, model_type=model_type, layers=3, prefix=prefix, model_class=model_class)
    out = import_adapterhub(tmp_path / "hub", tmp_path / "ours")
    assert_imported(out, state, "lang")
    saved = read_adapter_config(out)
    assert saved["base_model"] == {"hidden_size": 32, "model_type": model_type, "name_or_path": "xlm-roberta-base",
                                   "num_hidden_layers": 3}
    assert saved["config"] == preset("madx_language", leave_out=[1]).to_dict()
    assert saved["metadata"]["adapterhub"]["model_class"] == model_class


def test_number_of_layers_counts_left_out_last_layers(tmp_path):
    write_hub(tmp_path / "hub", {**SEQ_BN, "leave_out": [3]}, layers=4)  # MAD-X 2.0: no adapter in the last layer
    assert read_adapter_config(import_adapterhub(tmp_path / "hub", tmp_path / "a"))["base_model"]["num_hidden_layers"] == 4
    with pytest.raises(AdapterLoadError, match=r"missing \['encoder.layer.4.output"):  # a 12-layer adapter lacks keys
        import_adapterhub(tmp_path / "hub", tmp_path / "b", num_layers=12)


def test_houlsby_attention_keys_and_odd_hidden_sizes(tmp_path):
    # d = 35: the NICE nets' hidden sizes are in // rf of their own input (F: 18 -> 9 -> 17, G: 17 -> 8 -> 18).
    config = {**DOUBLE_SEQ_BN, "inv_adapter": "nice", "inv_adapter_reduction_factor": 2}
    state = write_hub(tmp_path / "hub", config, hidden=35, name="ho")
    assert state["roberta.invertible_adapters.ho.F.0.weight"].shape == (9, 18)
    assert_imported(import_adapterhub(tmp_path / "hub", tmp_path / "ours"), state, "ho")


def test_mixed_or_foreign_prefixes_are_refused(tmp_path):
    state = hub_weights(SEQ_BN)
    first = next(iter(state))
    mixed = {(key.removeprefix("roberta.") if key == first else key): value for key, value in state.items()}
    write_hub(tmp_path / "mixed", SEQ_BN, state=mixed)
    with pytest.raises(AdapterLoadError, match="some keys start with 'roberta.'"):
        import_adapterhub(tmp_path / "mixed", tmp_path / "ours")
    write_hub(tmp_path / "foreign", SEQ_BN, prefix="bert.")  # BERT keys in an XLM-R adapter
    with pytest.raises(AdapterLoadError, match=r"unexpected \['bert\.encoder"):
        import_adapterhub(tmp_path / "foreign", tmp_path / "ours")


def test_legacy_weight_names_are_renamed(tmp_path):
    state = hub_weights(MADX_LA)
    old = {key.replace(".output.adapters.", ".output.layer_text_lang_adapters.")
              .replace("invertible_adapters", "invertible_lang_adapters"): value for key, value in state.items()}
    write_hub(tmp_path / "hub", MADX_LA, state=old)
    assert_imported(import_adapterhub(tmp_path / "hub", tmp_path / "ours"), state, "lang")


def test_bin_files_load_safely_and_safetensors_win(tmp_path):
    state = write_hub(tmp_path / "bin", SEQ_BN, formats=("bin",))
    assert_imported(import_adapterhub(tmp_path / "bin", tmp_path / "a"), state, "lang")

    state = write_hub(tmp_path / "both", SEQ_BN)
    torch.save({key: value + 1 for key, value in state.items()}, tmp_path / "both" / "pytorch_adapter.bin")
    assert_imported(import_adapterhub(tmp_path / "both", tmp_path / "b"), state, "lang")

    write_hub(tmp_path / "evil", SEQ_BN, formats=())
    torch.save({**state, "payload": NotATensor()}, tmp_path / "evil" / "pytorch_adapter.bin")
    with pytest.raises(AdapterLoadError, match="pytorch_adapter.bin: not a readable PyTorch weights file"):
        import_adapterhub(tmp_path / "evil", tmp_path / "c")


class NotATensor:
    """Pickled into a .bin: torch.load(weights_only=True) must refuse any object that is not a tensor."""


def _missing_weights(folder: Path) -> None:
    (folder / "adapter.safetensors").unlink()


def _corrupt_weights(folder: Path) -> None:
    (folder / "adapter.safetensors").write_bytes(b"\x00" * 20)


def _bad_json(folder: Path) -> None:
    (folder / "adapter_config.json").write_text("{not json")


def _no_config(folder: Path) -> None:
    (folder / "adapter_config.json").unlink()


def _drop_one_key(folder: Path) -> None:
    state = load_file(str(folder / "adapter.safetensors"))
    state.pop("roberta.encoder.layer.1.output.adapters.lang.adapter_up.bias")
    save_file(state, str(folder / "adapter.safetensors"))


def _wrong_reduction_factor(folder: Path) -> None:
    saved = json.loads((folder / "adapter_config.json").read_text())
    saved["config"]["reduction_factor"] = 4
    (folder / "adapter_config.json").write_text(json.dumps(saved))


def _unknown_model_type(folder: Path) -> None:
    saved = json.loads((folder / "adapter_config.json").read_text())
    saved["model_type"] = "gpt2"
    (folder / "adapter_config.json").write_text(json.dumps(saved))


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        (_no_config, AdapterLoadError, "adapter_config.json is missing"),
        (_bad_json, AdapterLoadError, "not valid JSON"),
        (_missing_weights, AdapterLoadError, "no adapter weights: expected adapter.safetensors or pytorch_adapter.bin"),
        (_corrupt_weights, AdapterLoadError, "not a readable safetensors file"),
        (_drop_one_key, AdapterLoadError, r"missing \['encoder.layer.1.output.adapters.lang.adapter_up.bias'\]"),
        (_wrong_reduction_factor, AdapterLoadError, r"adapter_down\.0\.bias has shape \(16,\), expected \(8,\)"),
        (_unknown_model_type, UnsupportedModelError, "model_type 'gpt2' is not supported"),
    ],
    ids=["no-config", "bad-json", "no-weights", "corrupt-weights", "missing-key", "wrong-shape", "unknown-model-type"],
)
def test_broken_folders_give_clear_errors(tmp_path, damage, error, message):
    write_hub(tmp_path / "hub", MADX_LA)
    damage(tmp_path / "hub")
    with pytest.raises(error, match=message):
        import_adapterhub(tmp_path / "hub", tmp_path / "ours")
    assert not (tmp_path / "ours").exists()
    with pytest.raises(AdapterLoadError, match="is not a folder"):
        import_adapterhub(tmp_path / "nowhere", tmp_path / "ours")


def test_names_madx_cannot_use_need_a_new_name(tmp_path):
    state = write_hub(tmp_path / "hub", SEQ_BN, name="sw/wiki@ukp")
    with pytest.raises(AdapterLoadError, match="pass a madx name"):
        import_adapterhub(tmp_path / "hub", tmp_path / "ours")
    out = import_adapterhub(tmp_path / "hub", tmp_path / "ours", name="sw")
    assert read_adapter_config(out)["name"] == "sw"
    assert_imported(out, state, re.escape("sw/wiki@ukp"))


# -- heads -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("static", [False, True], ids=["flex-tagging-head", "static-ForTokenClassification-head"])
def test_tagging_heads_become_our_token_head(tmp_path, static):
    write_hub(tmp_path / "hub", SEQ_BN, name="task")
    head = write_hub_head(tmp_path / "hub", static=static)
    out = import_adapterhub(tmp_path / "hub", tmp_path / "ours")
    saved = json.loads((out / "head_config.json").read_text())
    assert saved["id2label"] == {str(i): label for i, label in LABELS.items()}
    ours = load_file(str(out / "head.safetensors"))
    weight, bias = head.values()
    assert torch.equal(ours["weight"], weight) and torch.equal(ours["bias"], bias)
    assert not (import_adapterhub(tmp_path / "hub", tmp_path / "nohead", with_head=False) / "head_config.json").exists()


@pytest.mark.parametrize(
    ("changes", "option"),
    [({"layers": 2}, "layers"), ({"head_type": "classification"}, "head_type"), ({"dropout_prob": 0.3}, "dropout_prob"),
     ({"bias": False}, "bias"), ({"use_pooler": True}, "use_pooler")],
)
def test_heads_we_cannot_compute_are_refused(tmp_path, changes, option):
    write_hub(tmp_path / "hub", SEQ_BN, name="task")
    write_hub_head(tmp_path / "hub", **changes)
    with pytest.raises(AdapterLoadError, match=f"head_config.json: AdapterHub option {option}="):
        import_adapterhub(tmp_path / "hub", tmp_path / "ours")


def test_head_without_labels_and_head_of_the_wrong_size(tmp_path):
    write_hub(tmp_path / "hub", SEQ_BN, name="task")
    write_hub_head(tmp_path / "hub", label2id=None)
    saved = json.loads((import_adapterhub(tmp_path / "hub", tmp_path / "ours") / "head_config.json").read_text())
    assert saved["id2label"] == {str(i): f"LABEL_{i}" for i in range(len(LABELS))}
    write_hub_head(tmp_path / "hub", hidden=16)
    with pytest.raises(AdapterLoadError, match=r"heads.task.1.weight has shape \(6, 16\), expected \(6, 32\)"):
        import_adapterhub(tmp_path / "hub", tmp_path / "ours")


# -- exporting -------------------------------------------------------------------------------------------
def randomise(am: AdapterModel, names: tuple[str, ...], seed: int, std: float = 0.5) -> None:
    """Trained-looking weights: far from the near-identity init, so every mapping error shows."""
    generator = torch.Generator().manual_seed(seed)
    modules = [module for name in names for module in am.adapter_modules(name).values()] + [am.token_head]
    with torch.no_grad():
        for module in modules:
            for param in module.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * std)


@pytest.fixture
def our_pair(make_tiny_model, tmp_path):
    """A BERT language adapter (MAD-X 2.0 leave_out) and a Houlsby gelu task adapter + head, saved by madx."""
    am = AdapterModel(make_tiny_model("bert", "token", layers=3))
    am.add_adapter("sw", preset("madx_language", leave_out=[2]))
    am.add_adapter("ner", preset("houlsby", non_linearity="gelu", reduction_factor=8))
    am.new_token_head(LABELS)
    randomise(am, ("sw", "ner"), seed=3)
    return save_adapter(am, "sw", tmp_path / "madx" / "sw"), save_adapter(am, "ner", tmp_path / "madx" / "ner", with_head=True)


def test_export_writes_what_the_reference_reads(our_pair, tmp_path):
    language, task = our_pair
    hub = export_adapterhub(task, tmp_path / "hub" / "ner")
    assert sorted(p.name for p in hub.iterdir()) == [
        "adapter.safetensors", "adapter_config.json", "head_config.json", "model_head.safetensors",
        "pytorch_adapter.bin", "pytorch_model_head.bin"]
    saved = json.loads((hub / "adapter_config.json").read_text())
    assert sorted(saved) == ["config", "hidden_size", "model_class", "model_name", "model_type", "name", "version"]
    assert saved["version"] == "adapters.1.3.0" and saved["model_class"] == "BertAdapterModel"
    assert saved["config"] == {**DOUBLE_SEQ_BN, "non_linearity": "gelu", "reduction_factor": 8}
    for safe, pickled in (("adapter.safetensors", "pytorch_adapter.bin"), ("model_head.safetensors", "pytorch_model_head.bin")):
        a, b = load_file(str(hub / safe)), torch.load(hub / pickled, weights_only=True)
        assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert "bert.encoder.layer.0.attention.output.adapters.ner.adapter_up.weight" in load_file(str(hub / "adapter.safetensors"))
    head = json.loads((hub / "head_config.json").read_text())
    assert head["config"]["label2id"] == {label: i for i, label in LABELS.items()} and head["config"]["layers"] == 1
    assert sorted(load_file(str(hub / "model_head.safetensors"))) == ["heads.ner.1.bias", "heads.ner.1.weight"]

    bare = export_adapterhub(language, tmp_path / "hub" / "sw", model_class="BertModel")
    keys = load_file(str(bare / "adapter.safetensors"))
    assert "invertible_adapters.sw.F.0.weight" in keys and not any(k.startswith("bert.") for k in keys)
    assert not any(".layer.2." in k for k in keys)  # leave_out
    with pytest.raises(ConfigError, match="flex-head model class"):
        export_adapterhub(task, tmp_path / "hub" / "x", model_class="BertModel")


def test_export_then_import_gives_back_the_same_adapter(our_pair, tmp_path):
    for ours in our_pair:
        back = import_adapterhub(export_adapterhub(ours, tmp_path / "hub" / ours.name), tmp_path / "back" / ours.name)
        assert read_adapter_config(back)["config"] == read_adapter_config(ours)["config"]
        for file in ("adapter.safetensors", "head.safetensors"):
            if (ours / file).exists():
                a, b = load_file(str(ours / file)), load_file(str(back / file))
                assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a), file


def test_export_refuses_what_adapterhub_cannot_load(make_tiny_model, tmp_path):
    am = AdapterModel(make_tiny_model("xlm-roberta", "bare"))
    am.add_adapter("g", preset("madx_language", invertible="glow"))
    with pytest.raises(ConfigError, match="'glow' invertible adapter cannot be exported"):
        export_adapterhub(save_adapter(am, "g", tmp_path / "g"), tmp_path / "hub")
    am = AdapterModel(make_tiny_model("camembert", "bare"))
    am.add_adapter("c", "madx_task")
    with pytest.raises(ConfigError, match="no adapter model class for model type 'camembert'"):
        export_adapterhub(save_adapter(am, "c", tmp_path / "c"), tmp_path / "hub")


# -- CLI -------------------------------------------------------------------------------------------------
def test_cli_commands(tmp_path):
    app = typer.Typer(add_completion=False)

    @app.callback()
    def _root() -> None:
        """madx"""

    register(app)
    runner = CliRunner()
    listing = runner.invoke(app, ["--help"]).output
    assert "import-adapterhub" in listing and "export-adapterhub" in listing
    assert "--no-head" in runner.invoke(app, ["import-adapterhub", "--help"]).output

    write_hub(tmp_path / "hub", MADX_LA)
    result = runner.invoke(app, ["import-adapterhub", str(tmp_path / "hub"), "--name", "sw", "--out", str(tmp_path / "sw")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["export-adapterhub", str(tmp_path / "sw"), "--out", str(tmp_path / "back")])
    assert result.exit_code == 0 and (tmp_path / "back" / "pytorch_adapter.bin").is_file(), result.output

    write_hub(tmp_path / "bad", {**SEQ_BN, "scaling": 2.0})
    result = runner.invoke(app, ["import-adapterhub", str(tmp_path / "bad"), "--out", str(tmp_path / "x")])
    assert isinstance(result.exception, MadxError) and "scaling=2.0" in str(result.exception)


# -- interop with the reference library ----------------------------------------------------------------
CASES = {  # one oracle `make` each; BERT's task adapter is Houlsby (double_seq_bn)
    "xlm-roberta": ["--model-type", "xlm-roberta"],
    "roberta": ["--model-type", "roberta"],
    "bert-houlsby": ["--model-type", "bert", "--houlsby"],
}
# Our adapters for the reverse direction, chosen so that each exercises other mappings:
# (language adapter, task adapter, model_class for the language adapter's export)
REVERSE = {
    "xlm-roberta": (preset("madx_language", leave_out=[1]), preset("madx_task", non_linearity="gelu", reduction_factor=8), None),
    "roberta": (preset("madx_language", non_linearity="tanh"), preset("madx_task"), None),
    "bert-houlsby": (preset("madx_language", invertible_reduction_factor=4), preset("houlsby", reduction_factor=8), "BertModel"),
}


# Runs several oracle commands in ONE process of the reference venv: importing `adapters` costs ~8 s
# of CPU, each command well under 1 s. The oracle script is loaded as a module and its own `main`
# runs each command line (every command seeds itself, so results equal separate runs).
_DRIVER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("adapterhub_oracle", sys.argv[1])
oracle = importlib.util.module_from_spec(spec)
spec.loader.exec_module(oracle)
for args in json.loads(sys.argv[2]):
    code = oracle.main(args)
    if code:
        sys.exit(f"oracle {args} exited with {code}")
"""


def _run_oracle(python: str, commands: list[list[str]]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    result = subprocess.run([python, "-c", _DRIVER, str(ORACLE), json.dumps(commands)], capture_output=True, text=True,
                            env=env, timeout=900)
    if result.returncode != 0:
        pytest.fail(f"the AdapterHub oracle failed on {commands}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}",
                    pytrace=False)


@pytest.fixture(scope="session")
def oracle_python() -> str:
    """The python of the reference venv (built once, ~85 s, with PyPI access; then cached)."""
    try:
        result = subprocess.run(["bash", str(ROOT / "scripts" / "adapterhub_env.sh")], capture_output=True, text=True,
                                cwd=ROOT, timeout=1800)
    except subprocess.TimeoutExpired:
        pytest.fail("building the AdapterHub reference venv (scripts/adapterhub_env.sh) took over 30 minutes", pytrace=False)
    python = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    if result.returncode != 0 or not Path(python).is_file():
        pytest.fail(
            "cannot build the AdapterHub reference venv with adapters==1.3.0 (scripts/adapterhub_env.sh; the first "
            "build needs access to a PyPI registry). The interop tests compare against the real library and cannot "
            f"run without it.\nexit code {result.returncode}; stderr:\n{result.stderr[-3000:]}",
            pytrace=False,
        )
    return python


@pytest.fixture(scope="session")
def references(oracle_python, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapterhub-reference")
    _run_oracle(oracle_python, [["make", "--out", str(root / case), *args] for case, args in CASES.items()])
    return {case: root / case for case in CASES}


def _inputs(reference: Path) -> tuple[torch.Tensor, torch.Tensor]:
    data = json.loads((reference / "inputs.json").read_text())
    return torch.tensor(data["input_ids"]), torch.tensor(data["attention_mask"])


def _load_base(reference: Path):
    """The oracle's base folder is a bare *Model; loaded into *ForTokenClassification every encoder
    weight must arrive (only the classifier is new, only the unused pooler is left over)."""
    model, info = AutoModelForTokenClassification.from_pretrained(reference / "base", output_loading_info=True)
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias"}, info
    assert set(info["unexpected_keys"]) <= {"pooler.dense.weight", "pooler.dense.bias"} and not info["mismatched_keys"], info
    return AdapterModel(model.eval())


@torch.no_grad()
def _our_outputs(am: AdapterModel, reference: Path, language: str, task: str) -> dict[str, torch.Tensor]:
    """Our activations under the oracle's output names (see scripts/adapterhub_oracle.py)."""
    ids, mask = _inputs(reference)
    base = am.model.base_model
    am.set_active(Stack(language, task))
    outputs = {"logits_stack": am.model(input_ids=ids, attention_mask=mask).logits}
    run = base(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    outputs["hidden_stack"] = run.last_hidden_state
    outputs |= {f"hidden_states_stack.{i}": h for i, h in enumerate(run.hidden_states)}
    for setup, key in ((language, "lang"), (task, "task"), (None, "none")):
        am.set_active(setup)
        run = base(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        outputs[f"hidden_{key}"], outputs[f"embeddings_{key}"] = run.last_hidden_state, run.hidden_states[0]
    return outputs


def _assert_adapters_matter(ours: dict[str, torch.Tensor]) -> None:
    """A difference of 0 proves something only if the adapters change the output: they must, a lot."""
    for key in ("hidden_stack", "hidden_lang", "hidden_task", "embeddings_lang"):
        other = "embeddings_none" if key.startswith("embeddings") else "hidden_none"
        assert (ours[key] - ours[other]).abs().max() > 0.1, key
    assert (ours["hidden_stack"] - ours["hidden_lang"]).abs().max() > 0.1


def _max_differences(ours: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> dict[str, float]:
    _assert_adapters_matter(ours)
    required = {"logits_stack", "hidden_stack", "hidden_lang", "hidden_task", "embeddings_lang", "hidden_states_stack.1"}
    assert required <= set(ours) & set(reference), sorted(set(reference))
    differences = {}
    for key in sorted(set(ours) & set(reference)):
        assert ours[key].shape == reference[key].shape, key
        differences[key] = (ours[key].float() - reference[key].float()).abs().max().item()
    return differences


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_imported_adapterhub_adapters_reproduce_the_reference(case, references, tmp_path):
    reference = references[case]
    am = _load_base(reference)
    load_adapter(am, import_adapterhub(reference / "lang", tmp_path / "lang"))
    load_adapter(am, import_adapterhub(reference / "task", tmp_path / "task"))
    expected = load_file(str(reference / "outputs.safetensors"))
    differences = _max_differences(_our_outputs(am, reference, "lang", "task"), expected)
    invertible = am.sites.invertible["lang"]
    with torch.no_grad():
        differences["inv_forward"] = (invertible(expected["inv_input"]) - expected["inv_forward"]).abs().max().item()
        differences["inv_reverse"] = (invertible.inverse(expected["inv_input"]) - expected["inv_reverse"]).abs().max().item()
    print(f"\n[AdapterHub -> madx] {case}: max abs diff {max(differences.values()):.3e} "
          f"(logits {differences['logits_stack']:.3e}, {len(differences)} tensors)")
    assert max(differences.values()) < TOLERANCE, differences


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("adapter", ["lang", "task"])
def test_import_then_export_gives_back_the_reference_files(case, adapter, references, tmp_path):
    original = references[case] / adapter
    exported = export_adapterhub(import_adapterhub(original, tmp_path / "ours"), tmp_path / "hub")
    for file in ("adapter_config.json", "head_config.json"):
        if (original / file).exists():
            assert json.loads((exported / file).read_text()) == json.loads((original / file).read_text()), file
    for file in ("adapter.safetensors", "pytorch_adapter.bin", "model_head.safetensors", "pytorch_model_head.bin"):
        if (original / file).exists():
            load = load_file if file.endswith(".safetensors") else lambda p: torch.load(p, weights_only=True)
            a, b = load(str(exported / file)), load(str(original / file))
            assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a), file


@pytest.fixture(scope="session")
def reverse_runs(oracle_python, references, tmp_path_factory):
    """Our random adapters per case, exported; the oracle's `run` on them; (ours, theirs) per case."""
    root = tmp_path_factory.mktemp("madx-to-adapterhub")
    ours, commands = {}, []
    for seed, (case, (language, task, language_class)) in enumerate(REVERSE.items()):
        reference, out = references[case], root / case
        am = _load_base(reference)
        am.add_adapter("sw", language)
        am.add_adapter("ner", task)
        am.new_token_head(LABELS)
        randomise(am, ("sw", "ner"), seed=seed)
        hub_sw = export_adapterhub(save_adapter(am, "sw", out / "madx" / "sw"), out / "hub" / "sw", model_class=language_class)
        hub_ner = export_adapterhub(save_adapter(am, "ner", out / "madx" / "ner", with_head=True), out / "hub" / "ner")
        ours[case] = _our_outputs(am, reference, "sw", "ner")
        commands.append(["run", "--base", str(reference / "base"), "--lang", str(hub_sw), "--task", str(hub_ner),
                          "--inputs", str(reference / "inputs.json"), "--out", str(out / "adapterhub.safetensors")])
    _run_oracle(oracle_python, commands)
    return {case: (ours[case], load_file(str(root / case / "adapterhub.safetensors"))) for case in REVERSE}


@pytest.mark.slow
@pytest.mark.parametrize("case", REVERSE)
def test_exported_madx_adapters_compute_the_same_in_the_reference(case, reverse_runs):
    ours, theirs = reverse_runs[case]
    differences = _max_differences(ours, theirs)
    print(f"\n[madx -> AdapterHub] {case}: max abs diff {max(differences.values()):.3e} "
          f"(logits {differences['logits_stack']:.3e}, {len(differences)} tensors)")
    assert max(differences.values()) < TOLERANCE, differences
