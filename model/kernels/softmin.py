"""Triton kernel: the soft C-transform of every Sinkhorn pair in one launch, without a [pairs, N, M] temporary.

One Sinkhorn update of the batched solver (`model.sinkhorn`) is, for every pair ``p = (i, j)`` and every row ``n``,

    f[p, n] = -eps[p] * logsumexp_m( h[p, m] - C[p, n, m] / eps[p] )

over a cost block that is per pair (the cross costs ``C(x_i, y_j)``) or shared by all pairs of a set (the self
costs ``C(x_i, x_i)``, read with a zero stride over ``j`` instead of being copied B times). The torch reference
writes ``h - C / eps`` into a [pairs, N, M] buffer, takes its max, exps it and sums it: four passes over that much
memory per update. This kernel streams each row block's costs once with an online log-sum-exp (running max and
rescaled sum), so a Sinkhorn step reads each cost once per softmin and writes only the potentials.

Reductions over rows (the ``g`` updates) use the same kernel on the transposed strides. Everything is addressed by
strides, so broadcast inputs (``log_b`` shared over ``i``, self costs over ``j``) cost nothing. The kernel runs
wherever Triton runs: CUDA, or the CPU under ``TRITON_INTERPRET=1`` (how CI checks it against the reference).
"""

from __future__ import annotations

import torch
from torch import Tensor

try:  # Triton is optional: CUDA wheels of torch ship it; CPU-only installs may not
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised on machines without triton
    triton = None

__all__ = ["softmin_pairs", "triton_available"]


def triton_available() -> bool:
    return triton is not None


if triton is not None:

    @triton.jit
    def _softmin_kernel(cost, h, eps, out, n_rows, n_cols, n_j,
                        sc_i, sc_j, sc_r, sc_c, sh_i, sh_j, sh_c, se_i, se_j, so_i, so_j, so_r,
                        BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
        pair = tl.program_id(0)
        i = pair // n_j
        j = pair % n_j
        e = tl.load(eps + i * se_i + j * se_j).to(tl.float32)
        rows = tl.program_id(1) * BLOCK_R + tl.arange(0, BLOCK_R)
        row_ok = rows < n_rows
        run_max = tl.full((BLOCK_R,), float("-inf"), tl.float32)
        run_sum = tl.zeros((BLOCK_R,), tl.float32)
        for start in range(0, n_cols, BLOCK_C):
            cols = start + tl.arange(0, BLOCK_C)
            col_ok = cols < n_cols
            hv = tl.load(h + i * sh_i + j * sh_j + cols * sh_c, mask=col_ok, other=float("-inf")).to(tl.float32)
            c = tl.load(cost + i * sc_i + j * sc_j + rows[:, None] * sc_r + cols[None, :] * sc_c,
                        mask=row_ok[:, None] & col_ok[None, :], other=0.0).to(tl.float32)
            z = hv[None, :] - c / e
            z = tl.where(col_ok[None, :], z, float("-inf"))
            new_max = tl.maximum(run_max, tl.max(z, axis=1))
            # All -inf so far (padding columns only): shift by 0 so that exp(-inf - 0) = 0, never NaN.
            safe = tl.where(new_max == float("-inf"), 0.0, new_max)
            run_sum = run_sum * tl.exp(run_max - safe) + tl.sum(tl.exp(z - safe[:, None]), axis=1)
            run_max = new_max
        f = -e * (tl.log(run_sum) + run_max)
        tl.store(out + i * so_i + j * so_j + rows * so_r, f, mask=row_ok)


def _pairs_view(t: Tensor, pairs: tuple[int, int], tail: int) -> Tensor:
    """``t`` broadcast to ``[Pi, Pj, *last tail dims]`` (a view: zero strides where it is shared)."""
    shape = t.shape[t.dim() - tail:]
    lead = t.shape[: t.dim() - tail]
    while len(lead) < 2:
        t, lead = t.unsqueeze(0), (1, *lead)
    return t.expand(*pairs, *shape)


def softmin_pairs(eps: Tensor, cost: Tensor, h: Tensor, dim: int) -> Tensor:
    """``-eps * logsumexp(h - C / eps)`` over ``dim`` of ``cost`` for every pair; see the module docstring.

    Args:
        eps: ``[*P]`` temperatures, ``P`` = ``(Bx, By)`` or ``(B,)`` pair dims.
        cost: ``[*P', N, M]``, broadcastable to ``[*P, N, M]`` (shared self costs).
        h: log-weights + potential / eps, ``[*P'', M]`` for ``dim=-1`` or ``[*P'', N]`` for ``dim=-2``,
            broadcastable over the pairs.
        dim: -1 (reduce over columns, result ``[*P, N]``) or -2 (over rows, result ``[*P, M]``).

    Returns:
        float32 potentials (the solver runs in float32 or float64; float64 inputs are reduced in float32 here,
        so the reference path is used for float64).
    """
    if triton is None:
        raise RuntimeError("triton is not installed: use the torch Sinkhorn path (loss.kernels=torch)")
    if dim not in (-1, -2):
        raise ValueError(f"dim must be -1 or -2, got {dim}")
    paired = eps.dim() == 1
    pairs = (eps.shape[0], 1) if paired else tuple(eps.shape)
    if paired:
        eps, cost = eps[:, None], cost.unsqueeze(-3) if cost.dim() == 3 else cost
        h = h.unsqueeze(-2) if h.dim() == 2 else h
    c = _pairs_view(cost, pairs, 2)
    if dim == -2:
        c = c.transpose(-1, -2)  # rows <-> columns by strides only
    hh, ee = _pairs_view(h, pairs, 1), _pairs_view(eps, pairs, 0)
    n_rows, n_cols = c.shape[-2:]
    out = torch.empty(*pairs, n_rows, dtype=torch.float32, device=c.device)
    block_r = min(64, triton.next_power_of_2(n_rows))
    block_c = min(128, triton.next_power_of_2(n_cols))
    grid = (pairs[0] * pairs[1], triton.cdiv(n_rows, block_r))
    _softmin_kernel[grid](c, hh, ee, out, n_rows, n_cols, pairs[1], *c.stride(), *hh.stride(), *ee.stride(),
                          *out.stride(), BLOCK_R=block_r, BLOCK_C=block_c)
    return out[:, 0] if paired else out
