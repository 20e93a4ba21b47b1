"""Padding-free packing (model/packing.py): the plan, pack/unpack, and packed forwards equal to padded ones for
Llama, Gemma 3 and Qwen2 (sliding windows crossed), with position shifts - both the block-diagonal rows (SDPA) and the
varlen path's sequence boundaries, the latter through a reference varlen attention registered with transformers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import AttentionInterface

from model.llm import llm_hidden_states, num_llm_layers, position_ids_from_mask, resolve_layers
from model.packing import pack, packed_inputs, plan_packing, unpack
from tests.model.test_llm import HIDDEN, tiny_llm
from tests.model.test_speech_llm import AUDIO_LENGTHS, audio_batch, build

LENGTHS = (12, 9, 5, 3, 7, 1)
# Sequence 2 (5 tokens) shares a row with sequence 4 (7 tokens, positions 4..10) and starts at position 11, and in
# the one-row layout it follows sequence 1 (positions 2..10): boundaries inferred from positions would merge them.
SHIFTS = torch.tensor([0, 2, 11, 40, 4, 11])


def _batch(side: str, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    embeds = torch.randn(len(LENGTHS), max(LENGTHS), HIDDEN, generator=g)
    mask = torch.zeros(len(LENGTHS), max(LENGTHS), dtype=torch.bool)
    for i, n in enumerate(LENGTHS):
        if side == "right":
            mask[i, :n] = True
        else:
            mask[i, max(LENGTHS) - n:] = True
    return embeds, mask


# ------------------------------------------------------------------------------------------------ plan, pack
def test_first_fit_decreasing_plan():
    plan = plan_packing(torch.tensor(LENGTHS))  # capacity 12: rows [12], [9, 3], [7, 5], [1]
    assert plan.capacity == 12 and plan.rows == 4
    assert plan.row_of.tolist() == [0, 1, 2, 1, 2, 3] and plan.start_of.tolist() == [0, 0, 7, 9, 0, 0]
    rows = {}
    for i, (r, s) in enumerate(zip(plan.row_of.tolist(), plan.start_of.tolist())):
        rows.setdefault(r, []).append((s, LENGTHS[i]))
    for items in rows.values():  # no overlap, everything inside the row
        items.sort()
        assert all(a + n <= b for (a, n), (b, _) in zip(items, items[1:])) and items[-1][0] + items[-1][1] <= 12
    assert plan.density == pytest.approx(sum(LENGTHS) / 48)
    wide = plan_packing(torch.tensor(LENGTHS), capacity=20)
    assert wide.rows == 2
    one = plan_packing(torch.tensor(LENGTHS), one_row=True)
    assert (one.rows, one.capacity, one.start_of.tolist()) == (1, 37, [0, 12, 21, 26, 29, 36])


def test_plan_errors():
    with pytest.raises(ValueError, match="at least one token"):
        plan_packing(torch.tensor([3, 0]))
    with pytest.raises(ValueError, match="does not fit rows of capacity 4"):
        plan_packing(torch.tensor([3, 5]), capacity=4)


@pytest.mark.parametrize("side", ["right", "left"])
def test_pack_unpack_round_trip_and_gradients(side):
    embeds, mask = _batch(side)
    embeds.requires_grad_()
    plan = plan_packing(mask.sum(1))
    packed = pack(embeds, mask, plan)
    assert packed.shape == (plan.rows, plan.capacity, HIDDEN)
    assert int((packed.abs().sum(-1) > 0).sum()) == sum(LENGTHS)
    back = unpack(packed, mask, plan)
    assert torch.equal(back, embeds.detach().masked_fill(~mask[..., None], 0))
    back.sum().backward()
    assert torch.equal(embeds.grad, mask[..., None].float().expand_as(embeds))


# ------------------------------------------------------------------------------------------------ forwards
def _padded(model, embeds, mask, layers):
    pos = position_ids_from_mask(mask, SHIFTS)
    states = llm_hidden_states(model, embeds, mask, layers, position_ids=pos)
    return {l: h.masked_fill(~mask[..., None], 0) for l, h in states.items()}


def _packed(model, embeds, mask, layers, mode):
    plan, inputs = packed_inputs(model, embeds, mask, SHIFTS, mode)
    return {l: unpack(h, mask, plan) for l, h in llm_hidden_states(model, layers=layers, **inputs).items()}


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("arch", ["llama", "gemma3", "qwen2"])
def test_packed_rows_equal_padded_hidden_states_and_gradients(arch, side):
    model = tiny_llm(arch)
    layers = resolve_layers("all", num_llm_layers(model)) + [1, 3]
    embeds, mask = _batch(side)
    want_in, got_in = embeds.clone().requires_grad_(), embeds.clone().requires_grad_()
    want, got = _padded(model, want_in, mask, layers), _packed(model, got_in, mask, layers, "rows")
    for l in layers:
        torch.testing.assert_close(got[l], want[l], rtol=1e-5, atol=1e-5, msg=f"{arch} layer {l}")
    weights = torch.randn(want[layers[-1]].shape, generator=torch.Generator().manual_seed(3))
    sum((want[l] * weights).sum() for l in layers).backward()
    sum((got[l] * weights).sum() for l in layers).backward()
    torch.testing.assert_close(got_in.grad, want_in.grad, rtol=1e-4, atol=1e-5)


def _reference_varlen_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                                sliding_window=None, cu_seq_lens_q=None, **kwargs):
    """What flash-attn's varlen kernel computes, in plain torch: causal attention within each [start, end) of
    ``cu_seq_lens_q`` (sliding window as flash counts it), nothing across. [B, H, S, d] in, [B, S, H, d] out."""
    assert attention_mask is None and cu_seq_lens_q is not None, "the varlen path must pass boundaries, not a mask"
    groups = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
    window = sliding_window or getattr(module, "sliding_window", None)
    out = torch.empty_like(query)
    bounds = cu_seq_lens_q.tolist()
    for start, end in zip(bounds, bounds[1:]):
        n = end - start
        allowed = torch.ones(n, n, dtype=torch.bool).tril()
        if window:
            allowed &= (torch.arange(n)[:, None] - torch.arange(n)[None]) < window
        out[:, :, start:end] = F.scaled_dot_product_attention(query[:, :, start:end], key[:, :, start:end],
                                                              value[:, :, start:end], attn_mask=allowed,
                                                              scale=scaling)
    return out.transpose(1, 2).contiguous(), None


@pytest.mark.parametrize("arch", ["llama", "gemma3", "qwen2"])
def test_varlen_boundaries_reach_the_attention_and_equal_padded(arch):
    AttentionInterface.register("varlen_reference", _reference_varlen_attention)
    model = tiny_llm(arch)
    layers = resolve_layers("all", num_llm_layers(model))
    embeds, mask = _batch("right")
    want = _padded(model, embeds, mask, layers)
    model.set_attn_implementation("varlen_reference")
    got = _packed(model, embeds, mask, layers, "varlen")
    for l in layers:
        torch.testing.assert_close(got[l], want[l], rtol=1e-5, atol=1e-5, msg=f"{arch} layer {l}")


def test_speech_llm_packing_setting_gives_the_same_states():
    padded, packed = build("gemma3", "linear", packing="off"), build("gemma3", "linear", pack_capacity=8)
    assert packed.packing_mode == "rows" and padded.packing_mode == "off"
    audio, audio_mask = audio_batch(AUDIO_LENGTHS)
    with torch.no_grad():
        want, mask = padded.speech_hidden_states(audio, audio_mask, position_shift=torch.tensor([3, 0, 9]))
        got, got_mask = packed.speech_hidden_states(audio, audio_mask, position_shift=torch.tensor([3, 0, 9]))
    assert torch.equal(mask, got_mask)
    for l in want:
        torch.testing.assert_close(got[l], want[l].masked_fill(~mask[..., None], 0), rtol=1e-5, atol=1e-5)
