"""Triton kernel: masked mean-pool of LLM hidden states, read once, for the cosine InfoNCE of all layers.

The cosine loss depends on each layer's ``[B, N, D]`` states only through their masked mean over tokens
(`model.loss_functions.masked_mean_pool`). The torch reference zero-fills the padding (a copy, because padded states
can be NaN), upcasts and sums: three passes over states that are, at 7 layers x B x N x 4096 in bf16, the largest
tensors the loss touches. This kernel reads each state once, skips padded tokens by mask (so NaN padding never enters),
accumulates in float32 and divides by the token count. Backward needs no kernel: the gradient of a mean is the
upstream gradient spread over the valid tokens.

The rest of the cosine InfoNCE (normalise, similarity of all layers, cross-entropy) runs on the small pooled
``[B, layers, D]`` tensor in `model.losses.ContrastiveLoss` as one batched pass.
"""

from __future__ import annotations

import torch
from torch import Tensor

from model.kernels.softmin import _blocks, triton_available

# Caps of the (BLOCK_N, BLOCK_D) block sizes `_MaskedMean.forward` picks (see `model.kernels.aot`).
POOL_BLOCKS = (32, 256)

if triton_available():
    import triton
    import triton.language as tl

    @triton.jit
    def _masked_mean_kernel(h, mask, out, n_tokens, dim, sh_b, sh_n, sh_d, sm_b, sm_n, so_b, so_d,
                            BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
        b = tl.program_id(0)
        cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
        col_ok = cols < dim
        acc = tl.zeros((BLOCK_D,), tl.float32)
        count = tl.zeros((BLOCK_N,), tl.float32)
        for start in range(0, n_tokens, BLOCK_N):
            tok = start + tl.arange(0, BLOCK_N)
            valid = tl.load(mask + b * sm_b + tok * sm_n, mask=tok < n_tokens, other=0) != 0
            x = tl.load(h + b * sh_b + tok[:, None] * sh_n + cols[None, :] * sh_d,
                        mask=valid[:, None] & col_ok[None, :], other=0.0).to(tl.float32)
            acc += tl.sum(x, axis=0)
            count += valid.to(tl.float32)
        total = tl.maximum(tl.sum(count, axis=0), 1.0)
        tl.store(out + b * so_b + cols * so_d, acc / total, mask=col_ok)

__all__ = ["masked_mean_pool_fused"]


class _MaskedMean(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: Tensor, mask: Tensor) -> Tensor:  # noqa: D102
        b, n, d = h.shape
        mask_u8 = mask.to(torch.uint8)
        out = torch.empty(b, d, dtype=torch.float32, device=h.device)
        block_n, block_d = _blocks(POOL_BLOCKS, n, d)
        _masked_mean_kernel[(b, triton.cdiv(d, block_d))](h, mask_u8, out, n, d, *h.stride(), *mask_u8.stride(),
                                                          *out.stride(), BLOCK_N=block_n, BLOCK_D=block_d)
        ctx.save_for_backward(mask)
        ctx.h_dtype = h.dtype
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        (mask,) = ctx.saved_tensors
        weights = mask.to(grad.dtype) / mask.sum(1, keepdim=True).clamp(min=1).to(grad.dtype)  # [B, N]
        return (weights[:, :, None] * grad[:, None, :]).to(ctx.h_dtype), None


def masked_mean_pool_fused(h: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``h [B, N, D]`` over the tokens where ``mask [B, N]`` is True, float32 ``[B, D]``; equals
    `model.loss_functions.masked_mean_pool` (padding may hold NaN; rows without tokens pool to zeros)."""
    if not triton_available():
        raise RuntimeError("triton is not installed: use loss.kernels=torch")
    return _MaskedMean.apply(h, mask.bool())
