"""The adapter core against hand-written references of DESIGN.md section 3, on tiny real models."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from madx import AdapterConfig, AdapterModel, ConfigError, Stack, preset
from madx.layers import GlowCoupling, NICECoupling
from madx.surgery import ARCHITECTURES

MODEL_TYPES = sorted(ARCHITECTURES)  # every supported architecture: a new row of the surgery table is tested at once
HEADS = ["bare", "mlm", "token"]


def randomize(am: AdapterModel, name: str, std: float = 0.3, seed: int = 1) -> None:
    """Fresh adapters are near identity; tests of the formulas need weights that do something."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in am.adapter_modules(name).values():
            for param in module.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * std)


def ids_for(model, batch: int = 2, length: int = 9, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(5, model.config.vocab_size, (batch, length), generator=generator)


def output_of(model, ids):
    out = model(input_ids=ids)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


# -- hand-written reference computations (DESIGN.md section 3) ---------------------------------------
def ref_bottleneck(adapter, z):
    down, up = adapter.adapter_down[0], adapter.adapter_up
    return F.linear(adapter.adapter_down[1](F.linear(z, down.weight, down.bias)), up.weight, up.bias)


def ref_block(block, names, h_in, x):
    ln = block.LayerNorm

    def norm(t):
        return F.layer_norm(t, ln.normalized_shape, ln.weight, ln.bias, ln.eps)

    h = F.linear(h_in, block.dense.weight, block.dense.bias)  # dropout is 0 in eval
    for name in names:
        adapter = block.adapters[name]
        z = norm(h + x) if adapter.original_ln_before else h
        h = ref_bottleneck(adapter, z) + h
    return norm(h + x)


def ref_nice_forward(coupling, e):
    s1 = e.shape[-1] // 2
    e1, e2 = e[..., :s1], e[..., s1:]
    y1 = e1 + coupling.F(e2)
    y2 = e2 + coupling.G(y1)
    return torch.cat([y1, y2], -1)


# -- the bottleneck formula ----------------------------------------------------------------------------
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_pfeiffer_single_and_stack_match_the_formula(make_tiny_model, model_type):
    am = AdapterModel(make_tiny_model(model_type, "mlm"))
    am.add_adapter("a", "pfeiffer")
    am.add_adapter("b", preset("pfeiffer", reduction_factor=4, non_linearity="tanh"))
    randomize(am, "a", seed=1)
    randomize(am, "b", seed=2)
    block = am.sites.ffn_blocks[1]
    torch.manual_seed(3)
    h_in = torch.randn(2, 5, block.dense.in_features)
    x = torch.randn(2, 5, am.hidden_size)
    for setup in (["a"], ["a", "b"], ["b", "a"]):
        am.set_active(Stack(*setup))
        torch.testing.assert_close(block(h_in, x), ref_block(block, setup, h_in, x), rtol=0, atol=1e-6)
    am.set_active(Stack("a", "b"))
    ab = block(h_in, x)
    am.set_active(Stack("b", "a"))
    assert (ab - block(h_in, x)).abs().max() > 1e-3, "Stack order must matter"


def test_houlsby_places_adapters_after_attention_and_ffn_with_reference_form(make_tiny_model):
    am = AdapterModel(make_tiny_model("xlm-roberta", "bare"))
    am.add_adapter("h", "houlsby")
    randomize(am, "h")
    am.set_active("h")
    for block in (am.sites.attention_blocks[0], am.sites.ffn_blocks[0]):
        assert "h" in block.adapters and block.adapters["h"].original_ln_before is False
        assert isinstance(block.adapters["h"].adapter_down[1], nn.SiLU)
        torch.manual_seed(0)
        h_in, x = torch.randn(1, 4, block.dense.in_features), torch.randn(1, 4, am.hidden_size)
        torch.testing.assert_close(block(h_in, x), ref_block(block, ["h"], h_in, x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("head", HEADS)
def test_surgery_is_invisible_until_an_adapter_is_active(make_tiny_model, model_type, head):
    model = make_tiny_model(model_type, head)
    ids = ids_for(model)
    before = output_of(model, ids)
    keys_before = set(model.state_dict())
    am = AdapterModel(model)
    assert set(model.state_dict()) == keys_before, "base weights must keep their state-dict keys"
    torch.testing.assert_close(output_of(model, ids), before, rtol=0, atol=0)
    am.add_adapter("lang", "madx_language")
    am.add_adapter("task", "madx_task")
    torch.testing.assert_close(output_of(model, ids), before, rtol=0, atol=0)  # added, not active
    randomize(am, "lang")
    am.set_active(Stack("lang", "task"))
    assert (output_of(model, ids) - before).abs().max() > 1e-3
    am.set_active(None)
    torch.testing.assert_close(output_of(model, ids), before, rtol=0, atol=0)


def test_new_adapters_start_near_identity(make_tiny_model):
    model = make_tiny_model("xlm-roberta", "bare")
    ids = ids_for(model)
    before = output_of(model, ids)
    am = AdapterModel(model)
    am.add_adapter("lang", "madx_language")
    am.add_adapter("task", "madx_task")
    am.set_active(Stack("lang", "task"))
    change = (output_of(model, ids) - before).abs().max().item()
    assert 0 < change < 0.1  # N(0, 0.02) weights, zero biases
    adapter = am.sites.ffn_blocks[0].adapters["task"]
    assert adapter.adapter_down[0].bias.abs().max() == 0 and adapter.adapter_up.bias.abs().max() == 0
    assert abs(adapter.adapter_up.weight.std().item() - 0.02) < 0.01


# -- invertible adapters ---------------------------------------------------------------------------------
@pytest.mark.parametrize("coupling", [NICECoupling, GlowCoupling])
@pytest.mark.parametrize("hidden", [32, 33, 768])
def test_invertible_round_trip_is_exact(coupling, hidden):
    torch.manual_seed(0)
    module = coupling(hidden, AdapterConfig(invertible="nice", invertible_reduction_factor=2))
    with torch.no_grad():  # trained-scale weights: unit-variance activations, far from identity
        for param in module.parameters():
            param.normal_(std=1.0 / param.shape[-1] ** 0.5)
    e = torch.randn(3, 7, hidden)
    y = module(e)
    assert (y - e).abs().max() > 1e-2, "randomised coupling should not be the identity"
    torch.testing.assert_close(module.inverse(y), e, rtol=0, atol=1e-5)
    torch.testing.assert_close(module(module.inverse(e)), e, rtol=0, atol=1e-5)


def test_nice_matches_the_formula_and_reference_sizes():
    module = NICECoupling(768, AdapterConfig(invertible="nice", invertible_reduction_factor=2))
    assert module.F[0].weight.shape == (192, 384) and module.G[2].weight.shape == (384, 192)
    with torch.no_grad():
        for param in module.parameters():
            param.normal_(std=0.3)
    e = torch.randn(2, 3, 768)
    torch.testing.assert_close(module(e), ref_nice_forward(module, e), rtol=0, atol=1e-6)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_invertible_runs_on_embeddings_of_the_first_adapter_in_the_stack(make_tiny_model, model_type):
    model = make_tiny_model(model_type, "bare")
    am = AdapterModel(model)
    am.add_adapter("lang", "madx_language")
    am.add_adapter("lang2", "madx_language")
    am.add_adapter("task", "madx_task")
    randomize(am, "lang", seed=1)
    randomize(am, "lang2", seed=2)
    ids = ids_for(model)
    embeddings = model.base_model.embeddings
    plain = embeddings(input_ids=ids)
    am.set_active(Stack("lang", "task"))
    torch.testing.assert_close(embeddings(input_ids=ids), ref_nice_forward(am.sites.invertible["lang"], plain))
    am.set_active(Stack("lang2", "task"))
    torch.testing.assert_close(embeddings(input_ids=ids), ref_nice_forward(am.sites.invertible["lang2"], plain))
    am.set_active(Stack("task", "lang"))  # first adapter has no invertible adapter: none runs
    torch.testing.assert_close(embeddings(input_ids=ids), plain, rtol=0, atol=0)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_inverse_runs_in_the_mlm_head_right_before_the_vocabulary_projection(make_tiny_model, model_type):
    model = make_tiny_model(model_type, "mlm")
    am = AdapterModel(model)
    am.add_adapter("lang", "madx_language")
    randomize(am, "lang")
    am.set_active("lang")
    ids = ids_for(model)
    coupling = am.sites.invertible["lang"]
    hidden = model.base_model(input_ids=ids).last_hidden_state
    if model_type == "bert":
        transformed = model.cls.predictions.transform(hidden)
        decoder = model.cls.predictions.decoder
    else:
        head = model.lm_head
        transformed = head.layer_norm(F.gelu(head.dense(hidden)))
        decoder = head.decoder
    expected = F.linear(coupling.inverse(transformed), decoder.weight, decoder.bias)
    torch.testing.assert_close(model(input_ids=ids).logits, expected, rtol=0, atol=1e-5)
    without_inverse = F.linear(transformed, decoder.weight, decoder.bias)
    assert (model(input_ids=ids).logits - without_inverse).abs().max() > 1e-3


# -- freezing and training -----------------------------------------------------------------------------
def _snapshot(model):
    return {name: param.detach().clone() for name, param in model.named_parameters()}


def test_task_training_under_stack_updates_only_the_task_adapter_and_head(make_tiny_model):
    model = make_tiny_model("xlm-roberta", "token", num_labels=5)
    am = AdapterModel(model)
    am.add_adapter("en", "madx_language")
    am.add_adapter("ner", "madx_task")
    am.set_active(Stack("en", "ner"))
    count = am.train_adapter("ner", train_head=True)
    assert am.active == Stack("en", "ner"), "training must keep the Stack with the frozen English adapter"
    expected = am.adapter_parameter_count("ner") + sum(p.numel() for p in am.token_head.parameters())
    assert count.trainable == expected and count.total == sum(p.numel() for p in model.parameters())
    before = _snapshot(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = ids_for(model)
    model.train()
    loss = model(input_ids=ids, labels=torch.randint(0, 5, ids.shape)).loss
    loss.backward()
    optimizer.step()
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None}
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert with_grad == changed
    assert changed and all(".adapters.ner." in name or name.startswith("classifier.") for name in changed)
    assert any(name.startswith("classifier.") for name in changed)
    assert not any(".en." in name or "invertible" in name for name in with_grad)


def test_language_training_updates_the_adapter_and_both_directions_of_its_coupling(make_tiny_model):
    model = make_tiny_model("xlm-roberta", "mlm")
    am = AdapterModel(model)
    am.add_adapter("sw", "madx_language")
    count = am.train_adapter("sw")
    assert count.trainable == am.adapter_parameter_count("sw")
    ids = ids_for(model)
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None}
    assert all(".sw." in name for name in with_grad)
    assert {n for n in with_grad if "invertible_adapters.sw.F" in n} and {n for n in with_grad if ".G." in n}
    assert not any(p.requires_grad for n, p in model.named_parameters() if ".sw." not in n)


def test_parameter_counts_follow_the_closed_forms(make_tiny_model):
    model = make_tiny_model("xlm-roberta", "bare", hidden=64, layers=3)
    am = AdapterModel(model)
    d, layers = 64, 3
    am.add_adapter("houlsby", "houlsby")
    am.add_adapter("pfeiffer", "pfeiffer")
    am.add_adapter("lang", "madx_language")
    m = d // 16
    assert am.adapter_parameter_count("houlsby") == 2 * layers * (2 * d * m + m + d)
    assert am.adapter_parameter_count("pfeiffer") == layers * (2 * d * m + m + d)
    m, half, inner = d // 2, d // 2, d // 4
    coupling = 2 * (half * inner + inner + inner * half + half)
    assert am.adapter_parameter_count("lang") == layers * (2 * d * m + m + d) + coupling


def test_leave_out_skips_layers(make_tiny_model):
    model = make_tiny_model("bert", "bare", layers=3)
    am = AdapterModel(model)
    am.add_adapter("t", preset("madx_task", leave_out=[0, 2]))
    assert [("t" in b.adapters) for b in am.sites.ffn_blocks] == [False, True, False]
    am.set_active("t")
    assert [b.active for b in am.sites.ffn_blocks] == [(), ("t",), ()]
    with pytest.raises(ConfigError, match="leave_out"):
        am.add_adapter("bad", preset("madx_task", leave_out=[3]))


def test_skip_layers_drops_adapters_at_inference(make_tiny_model):
    model = make_tiny_model("xlm-roberta", "bare", layers=3)
    am = AdapterModel(model)
    am.add_adapter("lang", "madx_language")
    am.add_adapter("task", "madx_task")
    am.set_active(Stack("lang", "task"), skip_layers=[2])
    assert [b.active for b in am.sites.ffn_blocks] == [("lang", "task"), ("lang", "task"), ()]


# -- configs, presets, composition ---------------------------------------------------------------------
def test_presets_and_configs_round_trip():
    assert preset("madx_language").reduction_factor == 2 and preset("madx_language").invertible == "nice"
    assert preset("madx_task").reduction_factor == 16 and preset("madx_task").invertible is None
    for name in ("madx_language", "madx_task", "pfeiffer", "houlsby"):
        config = preset(name)
        assert AdapterConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown adapter preset"):
        preset("lora")
    with pytest.raises(ConfigError, match="unknown adapter config keys"):
        AdapterConfig.from_dict({"reduction_factor": 2, "scaling": 0.5})
    with pytest.raises(ConfigError, match="non_linearity"):
        AdapterConfig(non_linearity="sigmoid")
    assert Stack.from_dict(Stack("sw", "ner").to_dict()) == Stack("sw", "ner")
    assert Stack("sw", "ner") != Stack("ner", "sw")


def test_unknown_adapter_and_bad_names_are_clear_errors(make_tiny_model):
    am = AdapterModel(make_tiny_model("xlm-roberta", "bare"))
    with pytest.raises(ConfigError, match="no adapter named 'sw'"):
        am.set_active(Stack("sw"))
    with pytest.raises(ConfigError, match="letters, digits"):
        am.add_adapter("a.b")
    am.add_adapter("sw")
    with pytest.raises(ConfigError, match="already has an adapter named 'sw'"):
        am.add_adapter("sw")


def test_unsupported_architecture_is_a_clear_error():
    import transformers

    from madx import UnsupportedModelError

    config = transformers.GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=50)
    with pytest.raises(UnsupportedModelError, match="'gpt2'.*supported model types"):
        AdapterModel(transformers.GPT2Model(config))


def test_core_imports_without_orchestration_or_tracking():
    code = (
        "import sys, madx, madx.adapter_files, madx.model, madx.surgery;"
        "bad = [m for m in ('prefect', 'mlflow', 'seqeval', 'datasets') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
