"""Padding-free LLM forward: the variable-length sequences of a batch packed into shared rows.

A padded batch runs every decoder layer over ``B x N_max`` positions, although only ``sum(N_i)`` hold speech; with
length-bucketed batches the waste is smaller but never zero, and for the LLM's MLPs and projections (nearly all of
its FLOPs at these lengths) every padded position costs as much as a real one. Packing puts several sequences into
one row and keeps them from seeing each other:

- ``varlen`` (flash-attn): all sequences in one row, no padding at all, and the sequence boundaries handed to the
  attention kernel as ``cu_seq_lens`` (HF's padding-free flash path). Attention work is per sequence.
- ``rows`` (SDPA / eager, any device): first-fit-decreasing into rows of ``capacity`` positions (default: the
  longest sequence), with a block-diagonal causal mask (and the sliding window where the model has one). Attention
  over a row costs ``capacity^2`` like one padded sample, so rows pay as soon as they hold more than one sequence.

Positions restart at 0 (plus the training position shift) for every packed sequence, so each sequence's hidden
states equal those of the padded forward (tested for Llama, Gemma 3 and Qwen2 in tests/model/test_packing.py).
Boundaries are passed explicitly, never inferred from position ids: with random position shifts a sequence could
start exactly one past where the previous one ended, and inference would merge them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["PackPlan", "plan_packing", "pack", "unpack", "packed_inputs", "VARLEN_ATTENTION"]

VARLEN_ATTENTION = ("flash_attention_2", "flash_attention_3")
"""Attention implementations that take sequence boundaries (``cu_seq_lens``) instead of a mask."""


@dataclass(frozen=True)
class PackPlan:
    """Where each sequence of a ``[B, N]`` batch goes in ``[rows, capacity]``."""

    rows: int
    capacity: int
    row_of: Tensor
    """``[B]`` the row of each sequence."""
    start_of: Tensor
    """``[B]`` its first position in that row."""
    lengths: Tensor
    """``[B]`` its number of valid tokens."""

    @property
    def density(self) -> float:
        """Share of the packed positions that hold tokens (1.0 = no padding left)."""
        return float(self.lengths.sum()) / (self.rows * self.capacity)


def plan_packing(lengths: Tensor, capacity: int = 0, one_row: bool = False) -> PackPlan:
    """First-fit decreasing (ties by batch index, so the plan is deterministic) into rows of ``capacity``.

    Args:
        lengths: ``[B]`` valid tokens per sequence (each >= 1).
        capacity: positions per row; 0 = the longest sequence. Ignored with ``one_row``.
        one_row: every sequence in a single row of exactly ``sum(lengths)`` positions (varlen attention).
    """
    lens = [int(n) for n in lengths.tolist()]
    if not lens or min(lens) < 1:
        raise ValueError(f"every packed sequence needs at least one token, got lengths {lens}")
    if one_row:
        starts = torch.tensor([0] + lens[:-1]).cumsum(0)
        return PackPlan(1, sum(lens), torch.zeros(len(lens), dtype=torch.long), starts, torch.tensor(lens))
    capacity = capacity or max(lens)
    if max(lens) > capacity:
        raise ValueError(f"a sequence of {max(lens)} tokens does not fit rows of capacity {capacity}")
    free: list[int] = []
    row_of, start_of = [0] * len(lens), [0] * len(lens)
    for i in sorted(range(len(lens)), key=lambda i: (-lens[i], i)):
        row = next((r for r, space in enumerate(free) if space >= lens[i]), None)
        if row is None:
            row = len(free)
            free.append(capacity)
        row_of[i], start_of[i] = row, capacity - free[row]
        free[row] -= lens[i]
    return PackPlan(len(free), capacity, torch.tensor(row_of), torch.tensor(start_of), torch.tensor(lens))


def _token_slots(mask: Tensor, plan: PackPlan) -> tuple[Tensor, Tensor]:
    """Flat indices of the valid tokens in the padded ``[B * N]`` and packed ``[rows * capacity]`` layouts."""
    mask = mask.bool()
    src = mask.flatten().nonzero().squeeze(1)
    batch_index = src // mask.shape[1]
    rank = (mask.long().cumsum(1) - 1).flatten()[src]  # index of the token within its sequence
    dev = mask.device
    dst = plan.row_of.to(dev)[batch_index] * plan.capacity + plan.start_of.to(dev)[batch_index] + rank
    return src, dst


def pack(x: Tensor, mask: Tensor, plan: PackPlan) -> Tensor:
    """``[B, N, D]`` -> ``[rows, capacity, D]`` (zeros in the unused positions); differentiable."""
    src, dst = _token_slots(mask, plan)
    flat = x.reshape(-1, x.shape[-1])[src]
    out = x.new_zeros(plan.rows * plan.capacity, x.shape[-1]).index_copy(0, dst, flat)
    return out.view(plan.rows, plan.capacity, x.shape[-1])


def unpack(y: Tensor, mask: Tensor, plan: PackPlan) -> Tensor:
    """``[rows, capacity, D]`` -> ``[B, N, D]`` with zeros at padded positions; differentiable."""
    src, dst = _token_slots(mask, plan)
    b, n = mask.shape
    out = y.new_zeros(b * n, y.shape[-1]).index_copy(0, src, y.reshape(-1, y.shape[-1])[dst])
    return out.view(b, n, y.shape[-1])


def _segment_ids(plan: PackPlan, device) -> tuple[Tensor, Tensor]:
    """Per packed position: its sequence index (-1 where unused) and its index within the sequence."""
    seq = torch.full((plan.rows * plan.capacity,), -1, dtype=torch.long)
    local = torch.zeros(plan.rows * plan.capacity, dtype=torch.long)
    for i, (row, start, n) in enumerate(zip(plan.row_of.tolist(), plan.start_of.tolist(), plan.lengths.tolist())):
        at = row * plan.capacity + start
        seq[at:at + n] = i
        local[at:at + n] = torch.arange(n)
    return seq.view(plan.rows, -1).to(device), local.view(plan.rows, -1).to(device)


def _block_causal_mask(seq: Tensor, local: Tensor, dtype: torch.dtype, sliding_window: int | None) -> Tensor:
    """Additive ``[rows, 1, C, C]`` mask: a query sees the earlier keys of its own sequence (within the sliding
    window). Unused positions see only themselves, so no softmax row is empty (an all-masked row would be NaN)."""
    same = seq[:, :, None] == seq[:, None, :]
    causal = local[:, :, None] >= local[:, None, :]
    allowed = same & causal
    if sliding_window is not None:
        allowed &= (local[:, :, None] - local[:, None, :]) < sliding_window
    eye = torch.eye(seq.shape[1], dtype=torch.bool, device=seq.device)
    allowed |= (seq[:, :, None] < 0) & eye
    mask = torch.zeros(allowed.shape, dtype=dtype, device=seq.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


def packed_inputs(model, embeds: Tensor, mask: Tensor, shift: Tensor | None, mode: str,
                  capacity: int = 0) -> tuple[PackPlan, dict]:
    """The packed ``inputs_embeds`` and the attention arguments for the HF decoder.

    Args:
        model: the HF causal LM (its config says the attention implementation and any sliding window).
        embeds: ``[B, N, D]``; mask: ``[B, N]`` True at valid positions.
        shift: ``[B]`` position offsets, one int for all, or None.
        mode: "varlen" (flash-attn: one row + ``cu_seq_lens``) or "rows" (block-diagonal masks).
        capacity: row length for "rows" (0: the longest sequence).

    Returns:
        ``(plan, kwargs)`` where kwargs hold ``inputs_embeds``, ``position_ids``, ``attention_mask`` and, for
        varlen, ``cu_seq_lens_q/k`` and ``max_length_q/k``.
    """
    plan = plan_packing(mask.bool().sum(1).cpu(), capacity, one_row=mode == "varlen")
    seq, local = _segment_ids(plan, embeds.device)
    position_ids = local.clone()
    if shift is not None:
        # An int shift (as `SpeechLLM.speech_hidden_states` accepts) is the same offset for every sequence.
        offsets = torch.as_tensor(shift, device=embeds.device).long().expand(mask.shape[0])
        position_ids += torch.where(seq >= 0, offsets[seq.clamp(min=0)], 0)
    kwargs = {"inputs_embeds": pack(embeds, mask, plan), "position_ids": position_ids}
    if mode == "varlen":
        bounds = torch.cat([plan.lengths.new_zeros(1), plan.lengths.cumsum(0)]).to(embeds.device, torch.int32)
        longest = int(plan.lengths.max())
        kwargs.update(attention_mask=None, cu_seq_lens_q=bounds, cu_seq_lens_k=bounds, max_length_q=longest,
                      max_length_k=longest)
        return plan, kwargs
    if mode != "rows":
        raise ValueError(f"packing mode must be 'varlen' or 'rows', got {mode!r}")
    config = getattr(model, "config", None)
    config = getattr(config, "get_text_config", lambda: config)()
    full = _block_causal_mask(seq, local, embeds.dtype, None)
    layer_types = getattr(config, "layer_types", None)
    if layer_types:  # models that take one mask per attention type (Gemma 3, Qwen2, ...)
        masks = {}
        for kind in set(layer_types):
            window = getattr(config, "sliding_window", None) if kind == "sliding_attention" else None
            masks[kind] = full if window is None else _block_causal_mask(seq, local, embeds.dtype, window)
        kwargs["attention_mask"] = masks
    else:
        kwargs["attention_mask"] = full
    return plan, kwargs
