"""Data and model together: a streamed batch from real shards through a tiny SpeechLLM into every objective.

Tiny HuBERT (layer-norm, as hubert-large) -> window Q-Former -> tiny Llama over the tokenizer of the loader; the
contrastive losses over "all" layers plus the ASR loss on a chat prompt. A few optimiser steps on the projector alone
must lower the loss on a fixed batch: the pieces are wired so that training can work at all.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from data.stream import StreamConfig, StreamLoader
from model.encoders import EncoderConfig, build_encoder
from model.llm import LLMConfig, load_llm
from model.losses import AlignmentObjective, LossConfig
from model.projectors import ProjectorConfig, build_projector
from model.speech_llm import SpeechLLM
from tests.model.test_encoders import tiny_hubert

TEMPLATE = ("{{ bos_token }}{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} </s>{% endfor %}"
            "{% if add_generation_prompt %}assistant :{% endif %}")


def _speech_llm(tokenizer_dir) -> SpeechLLM:
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tok.chat_template = TEMPLATE
    encoder = build_encoder(EncoderConfig(), model=tiny_hubert("layer"))  # layer norm, as hubert-large
    projector = build_projector(ProjectorConfig(hidden=32, heads=2, ffn=64, layers=2), encoder.dim, 48,
                                encoder.frame_rate)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=48, intermediate_size=96,
                                         num_hidden_layers=11, num_attention_heads=4, num_key_value_heads=2,
                                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))
    cfg = LLMConfig(layers="all", dtype="float32")
    llm, tok = load_llm(cfg, model=llama, tokenizer=tok)
    return SpeechLLM(encoder, projector, llm, tok, cfg)


@pytest.fixture(scope="module")
def batch(shard_set, tiny_tokenizer_dir):
    loader = StreamLoader(StreamConfig(sources=[{"path": str(shard_set)}], batch_size=6, num_workers=0,
                                       tokenizer=str(tiny_tokenizer_dir), text_norm="lower", max_duration=3.0))
    return next(iter(loader))


def _loss(model: SpeechLLM, objective: AlignmentObjective, batch: dict):
    speech, speech_mask, text, text_mask = model.paired_hidden_states(batch["audio"], batch["audio_mask"],
                                                                      batch["text_ids"], batch["text_mask"])
    assert sorted(speech) == [0, 5, 10, 11] == sorted(text)
    logits = labels = None
    if objective.cfg.uses_asr:
        embeds, mask = model.speech_embeds(batch["audio"], batch["audio_mask"])
        prompt = model.build_prompt_embeds(embeds, mask, ["transcribe"] * batch["size"], batch["texts"])
        logits, labels = model.lm_logits(prompt.inputs_embeds, prompt.attention_mask), prompt.labels
    return objective(speech, speech_mask, text, text_mask, logits, labels, keys=batch["keys"])


@pytest.mark.parametrize("objective", ["cos", "wasser", "wasser+asr"])
def test_streamed_batch_trains_the_projector_only(batch, tiny_tokenizer_dir, objective):
    model = _speech_llm(tiny_tokenizer_dir)
    loss_fn = AlignmentObjective(LossConfig(objective=objective, blur=0.5, contrastive_weight=0.1
                                            if "+" in objective else 1.0))
    model.train()
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=3e-3)
    first, metrics = _loss(model, loss_fn, batch)
    kind = objective.split("+")[0]
    assert {f"{kind}/layer_{layer}" for layer in (0, 5, 10, 11)} <= set(metrics)
    first.backward()
    frozen = list(model.encoder.parameters()) + list(model.llm.parameters())
    assert all(p.grad is None for p in frozen)
    assert all(p.grad is not None for p in model.projector.parameters())
    assert sum(float(p.grad.abs().sum()) for p in model.projector.parameters()) > 0
    optimizer.step()
    for _ in range(7):
        optimizer.zero_grad()
        loss, _ = _loss(model, loss_fn, batch)
        loss.backward()
        optimizer.step()
    last, last_metrics = _loss(model, loss_fn, batch)
    assert torch.isfinite(last)
    # alone, the contrastive term must clearly fall; with ASR (contrastive weight 0.1) both terms must fall
    before, after = (float(m["loss/contrastive"].detach()) for m in (metrics, last_metrics))
    assert after < (0.9 * before if objective in ("cos", "wasser") else before)
    if "asr" in objective:
        assert float(last_metrics["loss/asr"].detach()) < float(metrics["loss/asr"].detach())
