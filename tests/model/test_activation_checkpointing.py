"""`llm.activation_checkpointing`: the frozen decoder layers recomputed in the backward give the same gradients,
keep only their inputs, and leave the model untouched afterwards.

Tiny Llama and Gemma 3 (sliding-window layers, four norms per layer) behind a tiny HuBERT and window Q-Former, with
padded and packed ("rows") speech, early stop at an intermediate layer and the full decoder (ZeRO-3's mode), and
the finetuning paths (`lm_logits`, `answer_logits`) that run the whole LLM with grad.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM

from model.encoders import EncoderConfig, build_encoder
from model.llm import LLMConfig, checkpointed_layers, decoder_of, load_llm
from model.projectors import ProjectorConfig, build_projector
from model.speech_llm import PromptBatch, SpeechLLM
from tests.model.test_encoders import tiny_hubert
from train.memory import saved_bytes

HIDDEN = 48


def _llm(arch: str):
    torch.manual_seed(0)
    kw = dict(vocab_size=64, hidden_size=HIDDEN, intermediate_size=96, num_hidden_layers=7, num_attention_heads=4,
              num_key_value_heads=2)
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(**kw))
    return Gemma3ForCausalLM(Gemma3TextConfig(**kw, head_dim=12, sliding_window=6))


def _speech_llm(arch: str, **llm_settings) -> SpeechLLM:
    encoder = build_encoder(EncoderConfig(), model=tiny_hubert("layer"))
    torch.manual_seed(1)
    projector = build_projector(ProjectorConfig(hidden=32, heads=2, ffn=64, layers=1), encoder.dim, HIDDEN,
                                encoder.frame_rate)
    cfg = LLMConfig(layers=[0, 3, 7], dtype="float32", **llm_settings)
    llm, _ = load_llm(cfg, model=_llm(arch), tokenizer=object())
    return SpeechLLM(encoder, projector, llm, None, cfg)


def _audio():
    g = torch.Generator().manual_seed(2)
    audio = torch.randn(3, 16000, generator=g)
    mask = torch.ones(3, 16000, dtype=torch.bool)
    mask[1, 9000:] = False
    mask[2, 5000:] = False
    return audio, mask


def _grads(model: SpeechLLM, layers=None) -> tuple[dict[str, torch.Tensor], int]:
    """Projector gradients of a loss over every returned layer, and the bytes autograd saved meanwhile."""
    model.projector.zero_grad()
    audio, mask = _audio()

    def loss() -> torch.Tensor:
        states, speech_mask = model.speech_hidden_states(audio, mask, layers=layers, position_shift=0)
        return sum((h.square() * speech_mask[..., None]).mean() * (i + 1) for i, h in enumerate(states.values()))

    value, saved = saved_bytes(loss, model.parameters())
    value.backward()
    return {n: p.grad.clone() for n, p in model.projector.named_parameters()}, saved


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
@pytest.mark.parametrize("packing", ["off", "rows"])
@pytest.mark.parametrize("early_stop", [True, False])
def test_same_gradients_fewer_saved_bytes(arch, packing, early_stop):
    plain = _speech_llm(arch, packing=packing, early_stop=early_stop)
    ckpt = _speech_llm(arch, packing=packing, early_stop=early_stop, activation_checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    want, saved_plain = _grads(plain)
    got, saved_ckpt = _grads(ckpt)
    for name in want:
        # Recomputing dropout-free eval layers gives bit-identical activations, hence identical gradients.
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0, msg=name)
    # The projector's own saved tensors stay (a large share at these widths); tests/train/test_memory.py checks
    # the LLM's part byte for byte.
    assert saved_ckpt < 0.6 * saved_plain, (saved_ckpt, saved_plain)
    # The wrappers are gone: nothing of the checkpointing outlives the call.
    assert all("forward" not in layer.__dict__ for layer in decoder_of(ckpt.llm).layers)


def test_no_grad_forward_runs_layers_as_they_are(monkeypatch):
    """Text side and generation run without grad: no checkpoint frames, same states."""
    model = _speech_llm("llama", activation_checkpointing=True)
    calls = []
    import model.llm as llm_module

    real = llm_module.checkpoint
    monkeypatch.setattr(llm_module, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    ids = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        text, _ = model.text_hidden_states(ids, torch.ones(2, 9, dtype=torch.bool), position_shift=0)
    assert not calls
    plain = dataclasses.replace(model.cfg, activation_checkpointing=False)
    model.cfg = plain
    with torch.no_grad():
        again, _ = model.text_hidden_states(ids, torch.ones(2, 9, dtype=torch.bool), position_shift=0)
    for layer in text:
        assert torch.equal(text[layer], again[layer])


def test_full_forward_paths_same_gradients():
    """`lm_logits` and `answer_logits` (the ASR term and finetuning) under checkpointing: same gradients."""
    results = []
    for enabled in (False, True):
        model = _speech_llm("gemma3", activation_checkpointing=enabled)
        embeds, mask = model.speech_embeds(*_audio())
        labels = torch.full(mask.shape, -100)
        labels[:, 2:5] = 7
        logits = model.lm_logits(embeds, mask.long())
        batch = PromptBatch(embeds, mask.long(), labels, torch.zeros(3, dtype=torch.long),
                            torch.full((3,), mask.shape[1]))
        answer, _ = model.answer_logits(batch)
        (logits.logsumexp(-1).mean() + answer.logsumexp(-1).mean()).backward()
        results.append([p.grad.clone() for p in model.projector.parameters()])
    for want, got in zip(*results):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_wrappers_removed_after_an_exception():
    model = _llm("llama")
    layers = decoder_of(model).layers
    with pytest.raises(RuntimeError, match="boom"), checkpointed_layers(model):
        assert all("forward" in layer.__dict__ for layer in layers)
        raise RuntimeError("boom")
    assert all("forward" not in layer.__dict__ for layer in layers)
