"""Saving and loading adapters: equal outputs after a round trip, clear errors on bad folders."""

from __future__ import annotations

import json
import time

import pytest
import torch

from madx import AdapterLoadError, AdapterModel, ConfigError, Stack, load_adapter, save_adapter
from madx.fileutil import atomic_directory

LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}


def trained_looking(am: AdapterModel, name: str, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in am.adapter_modules(name).values():
            for param in module.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)


@pytest.fixture
def saved_pair(make_tiny_model, tmp_path):
    """A language adapter and a task adapter with its head, saved from a token-classification model."""
    model = make_tiny_model("xlm-roberta", "token", seed=7)
    am = AdapterModel(model)
    am.add_adapter("en", "madx_language")
    am.add_adapter("ner", "madx_task")
    am.new_token_head(LABELS)
    trained_looking(am, "en", 1)
    trained_looking(am, "ner", 2)
    am.set_active(Stack("en", "ner"))
    ids = torch.randint(5, 300, (2, 8), generator=torch.Generator().manual_seed(0))
    expected = model(input_ids=ids).logits
    save_adapter(am, "en", tmp_path / "en")
    save_adapter(am, "ner", tmp_path / "ner", with_head=True)
    return tmp_path, ids, expected


def test_round_trip_into_a_fresh_copy_of_the_base_gives_identical_outputs(saved_pair, make_tiny_model):
    folder, ids, expected = saved_pair
    fresh = AdapterModel(make_tiny_model("xlm-roberta", "token", seed=7))
    assert load_adapter(fresh, folder / "en") == "en"
    assert load_adapter(fresh, folder / "ner") == "ner"
    fresh.set_active(Stack("en", "ner"))
    torch.testing.assert_close(fresh.model(input_ids=ids).logits, expected, rtol=0, atol=0)
    assert fresh.model.config.id2label == LABELS and fresh.model.num_labels == 5


def test_saved_folder_describes_itself(saved_pair):
    folder, _, _ = saved_pair
    assert sorted(p.name for p in (folder / "ner").iterdir()) == [
        "adapter.safetensors",
        "adapter_config.json",
        "head.safetensors",
        "head_config.json",
    ]
    config = json.loads((folder / "en" / "adapter_config.json").read_text())
    assert config["config"]["invertible"] == "nice" and config["config"]["reduction_factor"] == 2
    assert config["base_model"] == {"hidden_size": 32, "model_type": "xlm-roberta", "name_or_path": "", "num_hidden_layers": 2}


def test_wrong_hidden_size_or_architecture_names_both(saved_pair, make_tiny_model):
    folder, _, _ = saved_pair
    bert = AdapterModel(make_tiny_model("bert", "token", hidden=64))
    with pytest.raises(AdapterLoadError, match=r"xlm-roberta with hidden size 32.*bert with hidden size 64"):
        load_adapter(bert, folder / "en")
    roberta = AdapterModel(make_tiny_model("roberta", "token"))
    with pytest.raises(AdapterLoadError, match=r"trained for xlm-roberta.*this model is roberta"):
        load_adapter(roberta, folder / "en")
    assert bert.configs == {} and roberta.configs == {}


def test_broken_folders_fail_clearly_and_leave_the_model_unchanged(saved_pair, make_tiny_model):
    folder, _, _ = saved_pair
    am = AdapterModel(make_tiny_model("xlm-roberta", "token", seed=7))
    (folder / "en" / "adapter.safetensors").write_bytes((folder / "en" / "adapter.safetensors").read_bytes()[:100])
    with pytest.raises(AdapterLoadError, match=r"adapter.safetensors: not a readable safetensors file"):
        load_adapter(am, folder / "en")
    (folder / "ner" / "adapter_config.json").unlink()
    with pytest.raises(AdapterLoadError, match=r"adapter_config.json is missing"):
        load_adapter(am, folder / "ner")
    with pytest.raises(AdapterLoadError, match="is missing"):
        load_adapter(am, folder / "nowhere")
    assert am.configs == {} and all(not block.adapters for block in am.sites.ffn_blocks)


def test_head_needs_a_token_classification_model(saved_pair, make_tiny_model):
    folder, _, _ = saved_pair
    bare = AdapterModel(make_tiny_model("xlm-roberta", "bare", seed=7))
    with pytest.raises(AdapterLoadError, match="has a token-classification head"):
        load_adapter(bare, folder / "ner")
    assert load_adapter(bare, folder / "ner", with_head=False) == "ner"


def test_name_clash_needs_overwrite(saved_pair, make_tiny_model):
    folder, _, _ = saved_pair
    am = AdapterModel(make_tiny_model("xlm-roberta", "token", seed=7))
    load_adapter(am, folder / "en")
    with pytest.raises(ConfigError, match="already has an adapter named 'en'"):
        load_adapter(am, folder / "en")
    assert load_adapter(am, folder / "en", name="en2") == "en2"
    assert load_adapter(am, folder / "en", overwrite=True) == "en"


def test_swapping_the_language_adapter_never_touches_the_base(saved_pair, make_tiny_model):
    folder, ids, expected = saved_pair
    model = make_tiny_model("xlm-roberta", "token", seed=7)
    am = AdapterModel(model)
    base_storage = {name: p.data_ptr() for name, p in model.base_model.named_parameters()}
    load_adapter(am, folder / "ner")
    load_adapter(am, folder / "en", name="sw")  # stands in for a second language
    load_adapter(am, folder / "en")
    am.set_active(Stack("sw", "ner"))
    start = time.perf_counter()
    am.set_active(Stack("en", "ner"))
    assert time.perf_counter() - start < 0.05
    torch.testing.assert_close(model(input_ids=ids).logits, expected, rtol=0, atol=0)
    after = {name: p.data_ptr() for name, p in model.base_model.named_parameters() if name in base_storage}
    assert after == base_storage


def test_atomic_directory_keeps_the_old_folder_when_writing_fails(tmp_path):
    target = tmp_path / "adapter"
    with atomic_directory(target) as staging:
        (staging / "weights").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as staging:
            (staging / "weights").write_text("half")
            raise RuntimeError("crash mid-write")
    assert (target / "weights").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]
    with atomic_directory(target) as staging:
        (staging / "weights").write_text("new")
    assert (target / "weights").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["adapter"]


def test_loading_draws_no_random_init_and_a_missing_tensor_leaves_no_adapter(saved_pair, make_tiny_model):
    """load_adapter builds the adapter's modules without the random init (every weight is loaded
    next): the global RNG is untouched, and a file lacking a tensor leaves no half-filled adapter."""
    from safetensors.torch import load_file, save_file

    folder, _, _ = saved_pair
    am = AdapterModel(make_tiny_model("xlm-roberta", "token", seed=7))
    torch.manual_seed(0)
    expected_draw = torch.rand(3)
    torch.manual_seed(0)
    load_adapter(am, folder / "en")
    torch.testing.assert_close(torch.rand(3), expected_draw, rtol=0, atol=0)
    saved = load_file(str(folder / "en" / "adapter.safetensors"))
    for key, tensor in am.adapter_modules("en")["layers.0.ffn"].state_dict().items():
        torch.testing.assert_close(tensor, saved[f"layers.0.ffn.{key}"], rtol=0, atol=0)

    dropped = dict(saved)
    dropped.pop("layers.1.ffn.adapter_up.bias")
    save_file(dropped, str(folder / "en" / "adapter.safetensors"))
    with pytest.raises(AdapterLoadError, match=r"missing \['layers.1.ffn.adapter_up.bias'\]"):
        load_adapter(am, folder / "en", name="sw")
    assert sorted(am.configs) == ["en"] and all("sw" not in block.adapters for block in am.sites.ffn_blocks)
    assert "sw" not in am.sites.invertible
