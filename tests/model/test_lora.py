"""LoRA adapters on the frozen LLM (model/lora.py): identity at init, only the adapters train, the hidden-state and
packing code runs unchanged through them, exported weights load back exactly, bad settings are clear errors."""

from __future__ import annotations

import pytest
import torch

from model.llm import llm_hidden_states, resolve_layers
from model.lora import EXPORT_PREFIX, LoraConfig, apply_lora, load_lora_weights, lora_parameters
from tests.model.test_llm import tiny_llm


@pytest.mark.parametrize("arch", ["llama", "gemma3", "qwen2"])
def test_fresh_adapters_change_nothing_and_only_they_train(arch):
    model = tiny_llm(arch)
    model.requires_grad_(False)
    embeds = torch.randn(2, 9, 32)
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    layers = resolve_layers("all", model.config.num_hidden_layers)
    before = llm_hidden_states(model, embeds, mask, layers)
    names = apply_lora(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    after = llm_hidden_states(model, embeds, mask, layers)
    for k in layers:  # B = 0: exactly the frozen model
        assert torch.equal(before[k][mask.bool()], after[k][mask.bool()]), k
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == names and len(names) == 2 * 2 * model.config.num_hidden_layers  # A and B, q and v, per layer
    assert all(n.endswith(("lora_A.default.weight", "lora_B.default.weight")) for n in names)
    # gradients reach the adapters through the truncated forward at the deepest requested layer
    states = llm_hidden_states(model, embeds.requires_grad_(), mask, [layers[-1]])
    states[layers[-1]][mask.bool()].pow(2).mean().backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if "lora_A" not in n)  # B gets grad
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)


def test_trained_adapters_move_the_model_and_load_back_exactly():
    model = tiny_llm("llama")
    model.requires_grad_(False)
    torch.manual_seed(1)
    apply_lora(model, LoraConfig(r=2, alpha=4, target_modules=["o_proj", "down_proj"], layers=[0, 3]))
    with torch.no_grad():
        for _, p in lora_parameters(model):
            p.normal_()
    embeds, mask = torch.randn(1, 5, 32), torch.ones(1, 5, dtype=torch.long)
    reference = llm_hidden_states(model, embeds, mask, [7])[7]
    exported = {EXPORT_PREFIX + n: p.detach().clone() for n, p in lora_parameters(model)}
    assert len(exported) == 2 * 2 * 2  # two modules x two layers x (A, B)

    fresh = tiny_llm("llama")
    fresh.requires_grad_(False)
    plain = llm_hidden_states(fresh, embeds, mask, [7])[7]
    apply_lora(fresh, LoraConfig(r=2, alpha=4, target_modules=["o_proj", "down_proj"], layers=[0, 3]))
    load_lora_weights(fresh, exported, "test")
    assert torch.equal(llm_hidden_states(fresh, embeds, mask, [7])[7], reference)
    assert not torch.allclose(plain, reference)


def test_mismatched_exports_and_bad_settings_are_errors():
    model = tiny_llm("llama")
    apply_lora(model, LoraConfig(r=2, target_modules=["q_proj"]))
    weights = {EXPORT_PREFIX + n: p.detach().clone() for n, p in lora_parameters(model)}
    other = tiny_llm("llama")
    apply_lora(other, LoraConfig(r=2, target_modules=["v_proj"]))
    with pytest.raises(ValueError, match="do not fit this LLM's adapters"):
        load_lora_weights(other, weights, "x.safetensors")
    wider = tiny_llm("llama")
    apply_lora(wider, LoraConfig(r=3, target_modules=["q_proj"]))
    with pytest.raises(ValueError, match="shape"):
        load_lora_weights(wider, weights, "x.safetensors")
    with pytest.raises(ValueError, match="name no Linear layer.*q_proj"):
        apply_lora(tiny_llm("llama"), LoraConfig(r=2, target_modules=["query_key_value"]))
    with pytest.raises(ValueError, match="lora.r must be >= 0"):
        LoraConfig(r=-1)
    with pytest.raises(ValueError, match="target_modules is empty"):
        LoraConfig(r=2, target_modules=[])
    assert not LoraConfig().enabled and LoraConfig(r=1).enabled


def test_missing_peft_names_the_install(monkeypatch):
    import builtins

    from model import lora

    real_import = builtins.__import__

    def no_peft(name, *args, **kwargs):
        if name == "peft":
            raise ImportError("No module named 'peft'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_peft)
    lora.require_peft(LoraConfig(r=0))  # off: never needs peft
    with pytest.raises(ImportError, match="pip install peft"):
        lora.require_peft(LoraConfig(r=8))
