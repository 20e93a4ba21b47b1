"""The frozen LLM: layer specs, attention fallback, loading, and the truncated forward against HF's full one."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    AutoTokenizer,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from model.llm import (
    LLMConfig,
    decoder_of,
    llm_hidden_states,
    load_llm,
    num_llm_layers,
    position_ids_from_mask,
    resolve_attn_implementation,
    resolve_layers,
)

HIDDEN = 32


def tiny_llm(arch: str, attn: str = "sdpa"):
    """A randomly initialised tiny causal LM; Gemma3 and Qwen2 mix sliding-window (window 4) and global layers."""
    torch.manual_seed(0)
    common = dict(vocab_size=61, hidden_size=HIDDEN, intermediate_size=64, num_attention_heads=4,
                  num_key_value_heads=2, attn_implementation=attn)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(num_hidden_layers=7, **common))
    elif arch == "gemma3":  # layer_types: 5 sliding, 1 global, 2 sliding; embeddings scaled by sqrt(32)
        model = Gemma3ForCausalLM(Gemma3TextConfig(num_hidden_layers=8, head_dim=8, sliding_window=4,
                                                   final_logit_softcapping=30.0, **common))
    elif arch == "qwen2":  # layers 0-2 global, 3-10 sliding
        model = Qwen2ForCausalLM(Qwen2Config(num_hidden_layers=11, use_sliding_window=True, sliding_window=4,
                                             max_window_layers=3, **common))
    else:
        raise ValueError(arch)
    return model.eval()


@pytest.fixture(scope="module", params=["llama", "gemma3", "qwen2"])
def arch_model(request):
    return request.param, tiny_llm(request.param)


def padded_batch(side: str, seed: int = 1):
    """Embeddings [3, 12, D] with 12, 9 and 5 real tokens padded on `side` (long enough to cross the window)."""
    g = torch.Generator().manual_seed(seed)
    embeds = torch.randn(3, 12, HIDDEN, generator=g)
    mask = torch.zeros(3, 12, dtype=torch.bool)
    for i, n in enumerate((12, 9, 5)):
        if side == "right":
            mask[i, :n] = True
        else:
            mask[i, 12 - n:] = True
    return embeds, mask


# ------------------------------------------------------------------------------------------------ config, layers
@pytest.mark.parametrize(("spec", "n", "expected"), [
    ("all", 32, [0, 5, 10, 15, 20, 25, 30, 32]),
    ("all", 30, [0, 5, 10, 15, 20, 25, 30]),
    ("all", 7, [0, 5, 7]),
    ("all", 4, [0, 4]),
    ("emb", 32, [0]),
    ("last", 32, [32]),
    ([16, 0, 16, -1], 32, [0, 16, 32]),
    ([-33], 32, [0]),
])
def test_resolve_layers(spec, n, expected):
    assert resolve_layers(spec, n) == expected


@pytest.mark.parametrize(("spec", "n", "match"), [
    ("middle", 8, "unknown layer preset"),
    ([], 8, "empty"),
    ([9], 8, "out of range"),
    ([-10], 8, "out of range"),
    ([1.5], 8, "ints"),
    ([True], 8, "ints"),
    ("all", 0, "num_layers"),
])
def test_resolve_layers_errors(spec, n, match):
    with pytest.raises(ValueError, match=match):
        resolve_layers(spec, n)


@pytest.mark.parametrize("kwargs", [dict(layers="mid"), dict(layers=[]), dict(layers=["3"]),
                                    dict(attn_implementation="flash"), dict(dtype="fp8"),
                                    dict(position_shift_max=-1), dict(speech_placeholder=""),
                                    dict(speech_placeholder=" <speech>"), dict(max_new_tokens=0)])
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        LLMConfig(**kwargs)


def test_attn_auto_falls_back_to_sdpa():
    # No flash_attn and no CUDA here: "auto" must give sdpa; explicit choices pass through; fp32 never gets flash.
    assert resolve_attn_implementation("auto", torch.bfloat16) == "sdpa"
    assert resolve_attn_implementation("eager") == "eager"
    model, _ = load_llm(LLMConfig(), model=tiny_llm("llama", attn="eager"), tokenizer=object())
    assert model.config._attn_implementation == "sdpa"


def test_auto_picks_flash_only_with_flash_cuda_and_16_bit(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "flash_attn" else None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_attn_implementation("auto", torch.bfloat16) == "flash_attention_2"
    assert resolve_attn_implementation("auto", torch.float32) == "sdpa"


def test_load_llm_freezes_and_reports_missing_files(tmp_path):
    model, tok = load_llm(LLMConfig(), model=tiny_llm("qwen2"), tokenizer="tok")
    assert tok == "tok" and not model.training
    assert all(not p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="name_or_path is empty"):
        load_llm(LLMConfig(), model=tiny_llm("qwen2"))
    with pytest.raises(OSError, match="local_files_only"):
        load_llm(LLMConfig(name_or_path=str(tmp_path / "no-such-model")))


def test_load_llm_from_local_directory(tmp_path, tiny_tokenizer_dir):
    tiny_llm("llama").save_pretrained(tmp_path)
    model, _ = load_llm(LLMConfig(name_or_path=str(tmp_path), dtype="float32"),
                        tokenizer=AutoTokenizer.from_pretrained(tiny_tokenizer_dir))
    assert isinstance(model, LlamaForCausalLM) and model.dtype == torch.float32 and num_llm_layers(model) == 7
    assert model.config._attn_implementation == "sdpa" and not any(p.requires_grad for p in model.parameters())


def test_position_ids_from_mask():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 0, 0]]
    assert position_ids_from_mask(mask, torch.tensor([10, 3])).tolist() == [[0, 0, 10, 11, 12], [3, 4, 5, 0, 0]]
    assert position_ids_from_mask(mask, 7).tolist() == [[0, 0, 7, 8, 9], [7, 8, 9, 0, 0]]


# ------------------------------------------------------------------------------------------------ truncated forward
def _count_calls(model):
    """Forward-hook counters on every decoder layer, the final norm and the LM head."""
    dec = decoder_of(model)
    counts = {"norm": 0, "lm_head": 0, **{i: 0 for i in range(len(dec.layers))}}
    handles = []

    def counter(key):
        def hook(*_):
            counts[key] += 1
        return hook

    for i, layer in enumerate(dec.layers):
        handles.append(layer.register_forward_hook(counter(i)))
    handles.append(dec.norm.register_forward_hook(counter("norm")))
    handles.append(model.lm_head.register_forward_hook(counter("lm_head")))
    return counts, handles


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("spec", ["all", "emb", "last", "mid", "mixed"])
def test_truncated_forward_matches_full_hidden_states(arch_model, side, spec):
    arch, model = arch_model
    n = num_llm_layers(model)
    layers = {"mid": [n // 2], "mixed": [1, n - 2, 3]}.get(spec, spec)
    layers = resolve_layers(layers, n)
    embeds, mask = padded_batch(side)
    pos = position_ids_from_mask(mask, torch.tensor([0, 2, 400]))
    with torch.no_grad():
        full = model(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, output_hidden_states=True)
        assert len(full.hidden_states) == n + 1
        counts, handles = _count_calls(model)
        try:
            got = llm_hidden_states(model, embeds, mask, layers, position_ids=pos)
        finally:
            for h in handles:
                h.remove()
    assert sorted(got) == layers
    for i in layers:
        err = (got[i] - full.hidden_states[i]).abs().max().item()
        assert err <= 1e-5, f"{arch} {side} layer {i}: max abs diff {err}"
    deepest = layers[-1]
    assert all(counts[j] == 1 for j in range(deepest)), counts  # layer j computes hidden state j + 1
    assert all(counts[j] == 0 for j in range(deepest, n)), counts  # nothing past the deepest requested layer
    assert counts["norm"] == (1 if deepest == n else 0) and counts["lm_head"] == 0


def test_hidden_state_convention(arch_model):
    """0 = embeddings as the forward sees them (Gemma3: scaled), 1..L-1 raw layer outputs, L = after final norm."""
    arch, model = arch_model
    n = num_llm_layers(model)
    ids = torch.randint(1, 61, (2, 6), generator=torch.Generator().manual_seed(0))
    dec = decoder_of(model)
    raw_out = {}
    handle = dec.layers[n - 1].register_forward_hook(lambda _m, _a, out: raw_out.setdefault("last", out))
    with torch.no_grad():
        full = model(input_ids=ids, output_hidden_states=True).hidden_states
        handle.remove()
        embeds = model.get_input_embeddings()(ids)
        got = llm_hidden_states(model, embeds, None, [0, n - 1, n])
    if arch == "gemma3":  # the sqrt(hidden) scaling sits inside embed_tokens, so get_input_embeddings() includes it
        plain = torch.nn.functional.embedding(ids, dec.embed_tokens.weight)
        assert torch.allclose(embeds, plain * HIDDEN**0.5, atol=1e-5)
    assert torch.equal(embeds, full[0]) and torch.equal(got[0], full[0])
    assert torch.allclose(full[n], dec.norm(raw_out["last"]), atol=1e-6)  # HF ties the last entry to the normed one
    assert not torch.allclose(full[n], raw_out["last"], atol=1e-3)
    assert torch.allclose(got[n], full[n], atol=1e-6) and torch.allclose(got[n - 1], full[n - 1], atol=1e-6)


def test_gradients_reach_inputs_through_frozen_llm():
    model = tiny_llm("llama")
    model.requires_grad_(False)
    embeds, mask = padded_batch("right")
    embeds.requires_grad_(True)
    states = llm_hidden_states(model, embeds, mask, [0, 3])
    (states[3] * mask[..., None]).sum().backward()
    assert embeds.grad is not None and embeds.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_hooks_removed_after_early_stop():
    model = tiny_llm("qwen2")
    before = [len(layer._forward_hooks) + len(layer._forward_pre_hooks) for layer in decoder_of(model).layers]
    embeds, mask = padded_batch("left")
    with torch.no_grad():
        llm_hidden_states(model, embeds, mask, [0, 2])
        llm_hidden_states(model, embeds, mask, [0])
    after = [len(layer._forward_hooks) + len(layer._forward_pre_hooks) for layer in decoder_of(model).layers]
    assert before == after


def test_without_early_stop_every_layer_runs_and_states_agree():
    """early_stop=False (ZeRO-3): the same states, but the decoder runs to the end instead of aborting."""
    model = tiny_llm("llama")
    n = num_llm_layers(model)
    embeds, mask = padded_batch("right")
    with torch.no_grad():
        stopped = llm_hidden_states(model, embeds, mask, [0, 2])
        counts, handles = _count_calls(model)
        try:
            full = llm_hidden_states(model, embeds, mask, [0, 2], early_stop=False)
        finally:
            for h in handles:
                h.remove()
    assert sorted(full) == [0, 2]
    assert all(torch.equal(stopped[i], full[i]) for i in (0, 2))
    assert all(counts[j] == 1 for j in range(n)) and counts["norm"] == 1
