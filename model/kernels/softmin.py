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

__all__ = ["softmin_pairs", "softmin_plan_grad", "LastSoftmin", "triton_available"]

# Caps of the (BLOCK_R, BLOCK_C) block sizes the launchers pick: the one place they are set, so that
# `model.kernels.aot` can enumerate every constexpr configuration a launch can compile.
SOFTMIN_BLOCKS = (64, 128)  # _softmin_kernel, launched by softmin_pairs
PLAN_GRAD_BLOCKS = (32, 64)  # _plan_grad_kernel, launched by softmin_plan_grad


def triton_available() -> bool:
    return triton is not None


def _blocks(caps: tuple[int, int], n_rows: int, n_cols: int) -> tuple[int, int]:
    """The constexpr block sizes for a launch: each size's next power of two, at most its cap."""
    return min(caps[0], triton.next_power_of_2(n_rows)), min(caps[1], triton.next_power_of_2(n_cols))


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


    @triton.jit
    def _plan_grad_kernel(cost, h, eps, f, gf, out, n_rows, n_cols, n_i, n_j, out_i, out_j,
                          sc_i, sc_j, sc_r, sc_c, sh_i, sh_j, sh_c, se_i, se_j, sf_i, sf_j, sf_r,
                          sg_i, sg_j, sg_r, so_i, so_j, so_r, so_c,
                          BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
        # One output block of dL/dC = sum over the pairs sharing this cost block of P * df, where
        # P[n, m] = exp(h[m] - C[n, m] / eps + f[n] / eps) is the softmin's weight (recomputed, never stored).
        block = tl.program_id(0)
        oi = block // out_j
        oj = block % out_j
        rows = tl.program_id(1) * BLOCK_R + tl.arange(0, BLOCK_R)
        cols = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
        row_ok = rows < n_rows
        col_ok = cols < n_cols
        ok = row_ok[:, None] & col_ok[None, :]
        acc = tl.zeros((BLOCK_R, BLOCK_C), tl.float32)
        i_lo = tl.where(out_i == 1, 0, oi)
        i_hi = tl.where(out_i == 1, n_i, oi + 1)
        j_lo = tl.where(out_j == 1, 0, oj)
        j_hi = tl.where(out_j == 1, n_j, oj + 1)
        for i in range(i_lo, i_hi):
            for j in range(j_lo, j_hi):
                e = tl.load(eps + i * se_i + j * se_j).to(tl.float32)
                c = tl.load(cost + i * sc_i + j * sc_j + rows[:, None] * sc_r + cols[None, :] * sc_c, mask=ok,
                            other=0.0).to(tl.float32)
                hv = tl.load(h + i * sh_i + j * sh_j + cols * sh_c, mask=col_ok, other=float("-inf")).to(tl.float32)
                fv = tl.load(f + i * sf_i + j * sf_j + rows * sf_r, mask=row_ok, other=0.0).to(tl.float32)
                gv = tl.load(gf + i * sg_i + j * sg_j + rows * sg_r, mask=row_ok, other=0.0).to(tl.float32)
                z = tl.where(ok, hv[None, :] - c / e + fv[:, None] / e, float("-inf"))  # <= 0 where it counts
                # A softmin weight is at most 1, but at huge costs (|x|~1e3, eps 2.5e-3) float32 cancellation in
                # f/e - c/e leaves z tens above 0 and exp() at inf (then inf * 0 = NaN): clamp to the exact bound.
                acc += tl.exp(tl.minimum(z, 0.0)) * gv[:, None]
        tl.store(out + oi * so_i + oj * so_j + rows[:, None] * so_r + cols[None, :] * so_c, acc, mask=ok)


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
    paired, pairs, _, c, hh, ee = _as_pair_grid(eps, cost, h, dim)
    n_rows, n_cols = c.shape[-2:]
    out = torch.empty(*pairs, n_rows, dtype=torch.float32, device=c.device)
    block_r, block_c = _blocks(SOFTMIN_BLOCKS, n_rows, n_cols)
    grid = (pairs[0] * pairs[1], triton.cdiv(n_rows, block_r))
    _softmin_kernel[grid](c, hh, ee, out, n_rows, n_cols, pairs[1], *c.stride(), *hh.stride(), *ee.stride(),
                          *out.stride(), BLOCK_R=block_r, BLOCK_C=block_c)
    return out[:, 0] if paired else out


def _as_pair_grid(eps: Tensor, cost: Tensor, h: Tensor, dim: int):
    """Shared by the wrappers: the paired case as a [B, 1] grid, the cost and h broadcast views, rows/cols swapped
    by strides for ``dim=-2``."""
    paired = eps.dim() == 1
    pairs = (eps.shape[0], 1) if paired else tuple(eps.shape)
    if paired:
        eps, cost = eps[:, None], cost.unsqueeze(-3) if cost.dim() == 3 else cost
        h = h.unsqueeze(-2) if h.dim() == 2 else h
    lead = cost.shape[:-2]
    while len(lead) < 2:
        cost, lead = cost.unsqueeze(0), (1, *lead)
    c = _pairs_view(cost, pairs, 2)
    if dim == -2:
        c = c.transpose(-1, -2)
    return paired, pairs, cost, c, _pairs_view(h, pairs, 1), _pairs_view(eps, pairs, 0)


def softmin_plan_grad(eps: Tensor, cost: Tensor, h: Tensor, f: Tensor, grad_f: Tensor, dim: int) -> Tensor:
    """Gradient of ``softmin_pairs(eps, cost, h, dim)`` wrt ``cost`` given ``grad_f``: the softmin weights times
    ``grad_f``, summed over the pairs that share a cost block (a ``[Bx, 1, N, N]`` self cost gets one ``[N, N]``
    block per set), recomputed block by block from ``f``: memory is the size of ``cost``, never pairs x block."""
    paired, pairs, cost4, c, hh, ee = _as_pair_grid(eps, cost, h, dim)
    if paired:
        f, grad_f = f[:, None], grad_f[:, None]
    out = torch.empty(cost4.shape, dtype=torch.float32, device=cost.device)
    o = out.transpose(-1, -2) if dim == -2 else out
    n_rows, n_cols = c.shape[-2:]
    block_r, block_c = _blocks(PLAN_GRAD_BLOCKS, n_rows, n_cols)
    grid = (out.shape[0] * out.shape[1], triton.cdiv(n_rows, block_r), triton.cdiv(n_cols, block_c))
    _plan_grad_kernel[grid](c, hh, ee, f, grad_f, o, n_rows, n_cols, pairs[0], pairs[1], out.shape[0],
                            out.shape[1], *c.stride(), *hh.stride(), *ee.stride(), *f.stride(), *grad_f.stride(),
                            *o.stride(), BLOCK_R=block_r, BLOCK_C=block_c)
    return out.view(cost.shape)


class LastSoftmin(torch.autograd.Function):
    """The differentiated last Sinkhorn step with both directions in the kernels: forward `softmin_pairs`,
    backward `softmin_plan_grad` (``h`` and ``eps`` are constants, as geomloss detaches them)."""

    @staticmethod
    def forward(ctx, cost: Tensor, h: Tensor, eps: Tensor, dim: int) -> Tensor:  # noqa: D102
        f = softmin_pairs(eps, cost, h, dim)
        ctx.save_for_backward(cost, h, eps, f)
        ctx.dim = dim
        return f.to(cost.dtype)

    @staticmethod
    def backward(ctx, grad_f: Tensor):  # noqa: D102
        cost, h, eps, f = ctx.saved_tensors
        grad = softmin_plan_grad(eps, cost, h, f, grad_f.float().contiguous(), ctx.dim)
        return grad.to(cost.dtype), None, None, None
