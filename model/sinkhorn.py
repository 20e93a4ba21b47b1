"""Debiased Sinkhorn divergences between padded token sets, for every (x_i, y_j) pair at once (plain-torch reference).

The Wasserstein InfoNCE of the paper scores a (speech_i, text_j) pair by minus the Sinkhorn divergence between the two
token clouds. Its public code loops over the B*B pairs in Python and calls geomloss
``SamplesLoss("sinkhorn", p=2, blur=blur, scaling=scaling, debias=True)`` on each pair's un-padded tokens. This module
returns the same numbers, and the same gradients, for all pairs in one batched computation:

- uniform weights over each set's real tokens; padding has weight 0 (log-weight -inf) and is zeroed before any cost,
  so padded values cannot leak into costs, diameters or gradients;
- cost ``C(x, y) = |x - y|^2 / 2`` from ``|x|^2 + |y|^2 - 2 x.y`` (one matmul for all pairs, D is never replicated);
  the self costs ``C(x_i, x_i)`` and ``C(y_j, y_j)`` are computed once per set, not per pair;
- every pair has its own diameter (bounding box of its two sets, geomloss ``max_diameter``) and hence its own
  eps-scaling schedule. Schedules are aligned at their end: a pair whose schedule is shorter than the longest one keeps
  its potentials untouched until its first step, which is geomloss' initialisation softmin at ``eps_list[0]``;
- geomloss' symmetric (averaged) updates of the four potentials ``f_ba, g_ab, f_aa, g_bb``, then one last
  "extrapolation" step at ``eps = blur^p``. The loop runs without autograd; only that last step is differentiated
  (envelope theorem), with geomloss' routing: the potentials on x carry the gradient wrt x, those on y wrt y. Backward
  is one product with each last step's softmax weights plus the D-wide matmuls of the costs.

Fused kernels (``model/kernels/``) are tested against this file, so it stays in plain torch ops; the two small autograd
Functions exist only to share the cost matmul between both gradient routes and to keep one saved block per softmin.
Memory is O(Bx * By * (N*M + N*N + M*M)): the debias potentials ``f_aa``/``g_bb`` are per pair (each pair anneals with
its own schedule), so their softmins need one [N, N] / [M, M] block per pair.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "BACKENDS",
    "resolve_backend",
    "SinkhornConfig",
    "epsilon_schedules",
    "pair_diameters",
    "sinkhorn_divergence_matrix",
    "sinkhorn_divergence_pairs",
]


@dataclass
class SinkhornConfig:
    """Settings of the debiased Sinkhorn divergence (geomloss ``SamplesLoss("sinkhorn", debias=True)`` semantics).

    Pass to the functions below as ``sinkhorn_divergence_matrix(x, xm, y, ym, **dataclasses.asdict(cfg))``.
    """

    blur: float = 0.05
    """Target entropic blur; the final temperature is ``eps = blur ** p``. The paper's code uses 0.05, its table 0.5."""
    scaling: float = 0.5
    """Ratio between successive blur values of the eps-scaling descent (geomloss default 0.5), in (0, 1)."""
    p: int = 2
    """Exponent of the ground cost ``|x - y|^p / p``; only 2 (the paper's choice) is implemented."""

    def __post_init__(self) -> None:
        _check_params(self.blur, self.scaling, self.p)


def _check_params(blur: float, scaling: float, p: int) -> None:
    if not blur > 0:
        raise ValueError(f"blur must be > 0, got {blur}")
    if not 0 < scaling < 1:
        raise ValueError(f"scaling must be in (0, 1), got {scaling}")
    if p != 2:
        raise ValueError(f"only p=2 (cost |x - y|^2 / 2) is implemented, got p={p}")


BACKENDS = ("auto", "torch", "triton")

# ------------------------------------------------------------------------------------------------ schedules
def epsilon_schedules(diameters: np.ndarray, p: int, blur: float, scaling: float) -> list[np.ndarray]:
    """Vectorised geomloss ``epsilon_schedule(p, diameter, blur, scaling)`` for many diameters.

    Each schedule is ``[diameter^p] + exp(arange(p log diameter, p log blur, p log scaling)) + [blur^p]``. The arange is
    reproduced the way numpy computes it (length ``ceil((stop - start) / step)``, values ``start + k * delta`` with
    ``delta = (start + step) - start``), so lengths match geomloss even when a diameter sits on a boundary.

    Args:
        diameters: float64 array of positive, finite diameters, any shape.
        p: Cost exponent.
        blur: Target blur (> 0).
        scaling: Blur ratio between successive steps, in (0, 1).

    Returns:
        One float64 schedule per diameter (flattened order); lengths differ between diameters.
    """
    d = np.asarray(diameters, dtype=np.float64).reshape(-1)
    start, stop, step = p * np.log(d), p * np.log(blur), p * np.log(scaling)
    lengths = np.maximum(np.ceil((stop - start) / step), 0).astype(np.int64)
    k = np.arange(int(lengths.max(initial=0)), dtype=np.float64)
    # numpy's arange stores start, start + step, then fills start + k * ((start + step) - start) for k >= 2.
    delta = (start + step) - start
    logs = start[:, None] + k[None, :] * delta[:, None]
    if logs.shape[1] > 1:
        logs[:, 1] = start + step
    mids = np.exp(logs)
    return [np.concatenate(([di**p], mids[i, : lengths[i]], [blur**p])) for i, di in enumerate(d.tolist())]


def _aligned_schedule(diameters: np.ndarray, p: int, blur: float, scaling: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-step temperatures and phases for all pairs, schedules aligned at their end.

    Step ``t`` of pair ``k`` has phase ``t - start_k``: < 0 before the pair's schedule starts (potentials kept),
    0 for geomloss' initialisation softmin at ``eps_list[0]``, > 0 for the symmetric updates over ``eps_list``.

    Returns:
        ``eps [T, K]`` (float64; before a pair starts it holds the pair's first eps so the unused softmin stays
        finite) and ``start [K]`` (int64), with ``T = 1 + max_k len(eps_list_k)``.
    """
    schedules = epsilon_schedules(diameters, p, blur, scaling)
    n_steps = 1 + max(len(s) for s in schedules)
    eps = np.empty((n_steps, len(schedules)), dtype=np.float64)
    start = np.empty(len(schedules), dtype=np.int64)
    for k, s in enumerate(schedules):  # K scalars of bookkeeping; all tensor work below is batched over pairs
        start[k] = n_steps - 1 - len(s)
        eps[: start[k] + 1, k] = s[0]
        eps[start[k] + 1 :, k] = s
    return eps, start


def _bounding_box(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per set, the coordinate-wise min and max over its real points, in one pass: padded positions are filled
    with the set's first real point, which moves neither bound."""
    first = mask.long().argmax(1)  # index of a real point of each set
    anchor = x[torch.arange(x.shape[0], device=x.device), first][:, None]  # [B, 1, D]
    lo, hi = torch.aminmax(torch.where(mask[..., None], x, anchor), dim=1)
    return lo, hi


def pair_diameters(x: Tensor, x_mask: Tensor, y: Tensor, y_mask: Tensor, outer: bool = True) -> Tensor:
    """geomloss ``max_diameter`` of each pair's real points: norm of the bounding box of both sets.

    Returns ``[Bx, By]`` when ``outer`` else ``[B]`` (pair ``k`` = ``(x_k, y_k)``), in the inputs' dtype.
    """
    with torch.no_grad():
        x_lo, x_hi = _bounding_box(x, x_mask)  # [Bx, D]
        y_lo, y_hi = _bounding_box(y, y_mask)  # [By, D]
        if outer:  # [Bx, By, D]: one D-vector per pair, not one per token pair
            x_lo, x_hi, y_lo, y_hi = x_lo[:, None], x_hi[:, None], y_lo[None], y_hi[None]
        return (torch.maximum(x_hi, y_hi) - torch.minimum(x_lo, y_lo)).norm(dim=-1)


# ------------------------------------------------------------------------------------------------ costs
class _CrossCost(torch.autograd.Function):
    """``C[..., n, m] = |x_n - y_m|^2 / 2`` from one matmul, returned twice with geomloss' gradient routing.

    geomloss builds ``C_xy = cost(x, y.detach())`` and ``C_yx = cost(y, x.detach())``: the potential on x carries the
    gradient wrt x only and the potential on y the gradient wrt y only. Computing both from autograd would cost two
    D-wide matmuls forward; here the values are shared and each copy's backward contracts with the other set.
    """

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor, outer: bool) -> tuple[Tensor, Tensor]:  # noqa: D102
        ctx.save_for_backward(x, y)
        ctx.outer = outer
        sq_x, sq_y = _squared_norms(x), _squared_norms(y)
        if outer:  # [Bx * N, D] @ [D, By * M]: every pair's dot products in one matmul
            (bx, n, d), (by, m, _) = x.shape, y.shape
            xy = (x.reshape(bx * n, d) @ y.reshape(by * m, d).T).view(bx, n, by, m).transpose(1, 2)
            cost = (sq_x[:, None, :, None] - 2 * xy + sq_y[None, :, None, :]) / 2
        else:
            cost = (sq_x[:, :, None] - 2 * (x @ y.mT) + sq_y[:, None, :]) / 2
        return cost, cost.clone()

    @staticmethod
    def backward(ctx, g_for_x: Tensor, g_for_y: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # noqa: D102
        x, y = ctx.saved_tensors
        grad_x = grad_y = None
        # dC/dx_n = x_n - y_m and dC/dy_m = y_m - x_n (half squared distance).
        if ctx.outer:
            if ctx.needs_input_grad[0]:
                grad_x = g_for_x.sum((1, 3))[..., None] * x - torch.einsum("ijnm,jmd->ind", g_for_x, y)
            if ctx.needs_input_grad[1]:
                grad_y = g_for_y.sum((0, 2))[..., None] * y - torch.einsum("ijnm,ind->jmd", g_for_y, x)
        else:
            if ctx.needs_input_grad[0]:
                grad_x = g_for_x.sum(-1)[..., None] * x - g_for_x @ y
            if ctx.needs_input_grad[1]:
                grad_y = g_for_y.sum(-2)[..., None] * y - g_for_y.mT @ x
        return grad_x, grad_y, None


def _squared_norms(x: Tensor) -> Tensor:
    """``|x_n|^2`` in one fused reduction (no ``x * x`` temporary the size of the tokens)."""
    return torch.linalg.vector_norm(x, dim=-1).square()


class _SelfCost(torch.autograd.Function):
    """``C(x, x.detach())`` per set, ``[B, N, N]``: like geomloss, differentiated through the first argument only,
    so ``dC[n, n'] / dx_n = x_n - x_n'`` and the backward is ``rowsum(G) * x - G @ x``: one matmul, no autograd
    graph over the ``[B, N, D]`` squares."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # noqa: D102
        ctx.save_for_backward(x)
        sq = _squared_norms(x)
        return torch.baddbmm((sq[:, :, None] + sq[:, None, :]) / 2, x, x.mT, alpha=-1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # noqa: D102
        (x,) = ctx.saved_tensors
        return torch.baddbmm(grad.sum(-1, keepdim=True) * x, grad, x, alpha=-1)


def _self_cost(x: Tensor) -> Tensor:
    return _SelfCost.apply(x)


# ------------------------------------------------------------------------------------------------ Sinkhorn
def _exp_floor(dtype: torch.dtype) -> float:
    """A little above log of the smallest normal number of ``dtype`` (-79.3 for float32, -700.4 for float64)."""
    return math.log(torch.finfo(dtype).tiny) + 8


def _softmin(buf: Tensor, eps: Tensor, cost: Tensor, h: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Soft C-transform ``f = -eps * logsumexp(h - C / eps)`` over ``dim`` (-1: over m, -2: over n) of ``cost``.

    ``cost [..., N, M]`` may be shared by several pairs through broadcasting (self costs are per set); ``eps [*P]`` is
    per pair; ``h`` (log-weights + potential / eps) is indexed by the reduced axis. Same arithmetic as
    ``torch.logsumexp`` (log of the summed shifted exps, plus the max), but in a caller-owned ``buf [*P, N, M]``:
    fresh multi-MB temporaries page-fault on every call on CPU and cost as much as the exps.

    Returns:
        ``f [*P, N or M]`` and the row sums of the shifted exps left in ``buf`` (to normalise them into weights).
    """
    h = h[..., None, :] if dim == -1 else h[..., :, None]
    z = torch.addcdiv(h, cost, eps[..., None, None], value=-1, out=buf)  # h - C / eps
    z_max = z.amax(dim, keepdim=True)
    # Shifted values below log(tiny) would exp to subnormals, which are ~10x slower on x86 CPUs; they are < 1e-30
    # of the row's largest term (exp(0) = 1), so dropping them (-> exp(-inf) = 0) leaves every sum unchanged.
    z = torch.nn.functional.threshold_(z.sub_(z_max), _exp_floor(z.dtype), -float("inf"))
    total = z.exp_().sum(dim, keepdim=True)
    return -eps[..., None] * total.log().add_(z_max).squeeze(dim), total


class _LastSoftmin(torch.autograd.Function):
    """The differentiated last Sinkhorn step: `_softmin` with ``h`` and ``eps`` constant (geomloss detaches them).

    ``d f_n / d C_nm`` is the softmax weight ``P_nm`` of the log-sum-exp, so backward is one product with the saved
    weights, summed over the pairs that share a cost block (self costs are per set). Same gradient as autograd
    through ``logsumexp``, but it saves one block (P) per softmin and skips the subnormal exps (see `_softmin`).
    """

    @staticmethod
    def forward(ctx, cost: Tensor, h: Tensor, eps: Tensor, dim: int) -> Tensor:  # noqa: D102
        buf = cost.new_empty(*eps.shape, *cost.shape[-2:])
        f, total = _softmin(buf, eps, cost, h, dim)
        ctx.save_for_backward(buf.div_(total))  # the shifted exps become the weights P
        ctx.dim, ctx.cost_shape = dim, cost.shape
        return f

    @staticmethod
    def backward(ctx, grad_f: Tensor) -> tuple[Tensor, None, None, None]:  # noqa: D102
        (weights,) = ctx.saved_tensors
        return (weights * grad_f.unsqueeze(ctx.dim)).sum_to_size(ctx.cost_shape), None, None, None


def _step(f: Tensor, f_new: Tensor, phase: Tensor | None) -> Tensor:
    """geomloss' update: keep before the pair's schedule starts, assign at its init step, average afterwards.

    ``phase`` None means every pair is past its init step (most steps): plain averaging, no masks.
    """
    if phase is None:
        return 0.5 * (f + f_new)
    phase = phase[..., None]
    return torch.where(phase == 0, f_new, torch.where(phase > 0, 0.5 * (f + f_new), f))


def _trim_padding(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Drop trailing positions that are padding in every set (e.g. a batch padded to a global length): they change
    nothing but cost compute, and slicing gives them an exact zero gradient. Only when that saves a tenth of the
    positions: the slice's backward writes a zero-filled gradient of the full size, which costs more than a few
    padded columns."""
    last = int(mask.any(0).nonzero().max()) + 1
    return (x, mask) if last > 0.9 * mask.shape[1] else (x[:, :last], mask[:, :last])


def resolve_backend(backend: str, x: Tensor) -> str:
    """"torch" or "triton" for ``backend`` in auto/torch/triton: auto takes the Triton kernels for float32 CUDA
    tensors when triton is installed (float64 stays on the reference: the kernels accumulate in float32)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        from model.kernels.softmin import triton_available

        fits = x.is_cuda and x.dtype != torch.float64 and triton_available()
        return "triton" if fits else "torch"
    return backend


def _sinkhorn(x: Tensor, x_mask: Tensor, y: Tensor, y_mask: Tensor, blur: float, scaling: float, p: int,
              outer: bool, backend: str = "torch", self_schedule: str = "pair") -> Tensor:
    """Shared body of the matrix (``outer``: pairs ``[Bx, By]``) and paired (pairs ``[B]``) divergences.

    ``backend="triton"`` runs every softmin in the kernels of `model.kernels.softmin`: the no-grad eps-scaling
    loop without any ``[pairs, N, M]`` temporary (self costs read once per set), and the differentiated last step
    with a backward that recomputes the plans block by block, so memory stays at the costs themselves:
    ``O(B (N + M) D + B^2 N M + B (N^2 + M^2))``.
    """
    backend = resolve_backend(backend, x)
    if x.dtype in (torch.float16, torch.bfloat16):  # eps = blur^2 = 2.5e-3 is below half precision's comfort zone
        x, y = x.float(), y.float()
    x, x_mask = _trim_padding(x, x_mask)
    y, y_mask = _trim_padding(y, y_mask)
    # Zero the padding: padded values (even inf/nan) then never reach a cost or a diameter, and their gradient is 0.
    x = torch.where(x_mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))
    y = torch.where(y_mask[..., None], y, torch.zeros((), dtype=y.dtype, device=y.device))
    a = x_mask.to(x.dtype) / x_mask.sum(1, keepdim=True).to(x.dtype)  # uniform weights, as geomloss' ones(N) / N
    b = y_mask.to(y.dtype) / y_mask.sum(1, keepdim=True).to(y.dtype)
    log_a, log_b = a.log(), b.log()  # -inf on padding: it takes no part in any softmin

    diam = pair_diameters(x, x_mask, y, y_mask, outer).double().cpu().numpy()
    if not np.isfinite(diam).all():
        raise ValueError("x or y has non-finite values at real (unmasked) positions")
    # geomloss fails on a zero diameter (log 0); all points then coincide and S = 0 at any eps, so start at blur.
    diam = np.where(diam > 0, diam, blur)
    pairs, n_pairs = diam.shape, diam.size
    per_set = outer and self_schedule == "set"
    # One aligned schedule for every pair (and, per set, for its self-transport problem), so all end together.
    diameters = np.concatenate([diam.ravel(), diam.max(1), diam.max(0)]) if per_set else diam.ravel()
    eps_np, start_np = _aligned_schedule(diameters, p, blur, scaling)
    eps_all = torch.as_tensor(eps_np, dtype=x.dtype, device=x.device)
    start_all = torch.as_tensor(start_np, device=x.device)
    eps_steps, start = eps_all[:, :n_pairs].view(-1, *pairs), start_all[:n_pairs].view(pairs)

    c_for_x, c_for_y = _CrossCost.apply(x, y, outer)  # [*P, N, M], same values
    c_xx, c_yy = _self_cost(x), _self_cost(y)  # [Bx, N, N], [By, M, M]
    a_x, log_a_x, b_y, log_b_y = a, log_a, b, log_b  # per set
    if outer:  # broadcast the per-set tensors over the pair grid [Bx, By]
        a, log_a, b, log_b = a[:, None], log_a[:, None], b[None], log_b[None]
    if per_set:  # OT(a_i, a_i) solved once per set i (B problems, not B^2), with the longest of its pairs' schedules
        bx = x.shape[0]
        eps_x, start_x = eps_all[:, n_pairs:n_pairs + bx], start_all[n_pairs:n_pairs + bx]
        eps_y, start_y = eps_all[:, n_pairs + bx:], start_all[n_pairs + bx:]
        self_x, self_y = (c_xx, a_x, log_a_x), (c_yy, b_y, log_b_y)
    else:  # geomloss: each pair anneals its self terms with the pair's own schedule
        eps_x, start_x, eps_y, start_y = eps_steps, start, eps_steps, start
        self_x = (c_xx[:, None], a, log_a) if outer else (c_xx, a, log_a)
        self_y = (c_yy[None], b, log_b) if outer else (c_yy, b, log_b)
    (c_xx, a_s, log_a_s), (c_yy, b_s, log_b_s) = self_x, self_y
    last_start = int(start_all.max())

    with torch.no_grad():
        c_xy, cd_xx, cd_yy = c_for_x.detach(), c_xx.detach(), c_yy.detach()
        f_ba = x.new_zeros(*pairs, x.shape[1])  # potentials on x_i for OT(a_i, b_j)
        g_ab = x.new_zeros(*pairs, y.shape[1])  # potentials on y_j for OT(a_i, b_j)
        f_aa = x.new_zeros(*eps_x.shape[1:], x.shape[1])  # on x_i for OT(a_i, a_i): per pair or per set
        g_bb = x.new_zeros(*eps_y.shape[1:], y.shape[1])  # on y_j for OT(b_j, b_j)
        if backend == "triton":
            from model.kernels.softmin import softmin_pairs

            def softmin(_buf, eps, cost, h, dim):
                return softmin_pairs(eps, cost, h, dim).to(x.dtype), None
            buf_xy = buf_xx = buf_yy = None
        else:
            softmin = _softmin
            buf_xy = x.new_empty(*pairs, *c_xy.shape[-2:])
            buf_xx = x.new_empty(*eps_x.shape[1:], *cd_xx.shape[-2:])
            buf_yy = x.new_empty(*eps_y.shape[1:], *cd_yy.shape[-2:])
        for t in range(eps_steps.shape[0]):
            eps, ex, ey = eps_steps[t], eps_x[t], eps_y[t]
            e = eps[..., None]
            # Symmetric updates from the same old potentials (zero potentials make step 0 geomloss' initialisation).
            ft_ba, _ = softmin(buf_xy, eps, c_xy, log_b + g_ab / e, dim=-1)
            gt_ab, _ = softmin(buf_xy, eps, c_xy, log_a + f_ba / e, dim=-2)
            ft_aa, _ = softmin(buf_xx, ex, cd_xx, log_a_s + f_aa / ex[..., None], dim=-1)
            gt_bb, _ = softmin(buf_yy, ey, cd_yy, log_b_s + g_bb / ey[..., None], dim=-1)
            early = t <= last_start  # some schedule has not started yet: masked updates
            f_ba, g_ab = _step(f_ba, ft_ba, t - start if early else None), _step(g_ab, gt_ab, t - start if early
                                                                                  else None)
            f_aa = _step(f_aa, ft_aa, t - start_x if early else None)
            g_bb = _step(g_bb, gt_bb, t - start_y if early else None)

    # Last extrapolation at eps = blur^p, the only differentiated step: potentials enter as constants.
    eps, ex, ey = eps_steps[-1], eps_x[-1], eps_y[-1]  # blur^p everywhere
    e = eps[..., None]
    if backend == "triton":  # plans recomputed in backward: no pairs x [N, N] self-transport blocks kept
        from model.kernels.softmin import LastSoftmin as last
    else:
        last = _LastSoftmin
    f_ba, g_ab = last.apply(c_for_x, log_b + g_ab / e, eps, -1), last.apply(c_for_y, log_a + f_ba / e, eps, -2)
    f_aa = last.apply(c_xx, log_a_s + f_aa / ex[..., None], ex, -1)
    g_bb = last.apply(c_yy, log_b_s + g_bb / ey[..., None], ey, -1)
    if per_set:  # <a_i, f_aa_i> and <b_j, g_bb_j> are per set: broadcast them over the pair grid
        return ((a * f_ba).sum(-1) - (a_s * f_aa).sum(-1)[:, None]
                + (b * g_ab).sum(-1) - (b_s * g_bb).sum(-1)[None])
    # geomloss' sinkhorn_cost (balanced, debiased): <a, f_ba - f_aa> + <b, g_ab - g_bb>; a = 0 on padding.
    return (a * (f_ba - f_aa)).sum(-1) + (b * (g_ab - g_bb)).sum(-1)


def _check_inputs(x: Tensor, x_mask: Tensor, y: Tensor, y_mask: Tensor, paired: bool) -> None:
    for name, t in (("x", x), ("y", y)):
        if t.dim() != 3:
            raise ValueError(f"{name} must be [batch, tokens, dim], got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")
    for name, t, m in (("x", x, x_mask), ("y", y, y_mask)):
        if m.dtype != torch.bool:
            raise ValueError(f"{name}_mask must be a bool tensor (True = real token), got {m.dtype}")
        if tuple(m.shape) != tuple(t.shape[:2]):
            raise ValueError(f"{name}_mask has shape {tuple(m.shape)}, expected {tuple(t.shape[:2])}")
        empty = (~m.any(1)).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"{name}_mask has no real token at batch index {empty[0]} (empty sets: {empty})")
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"x and y must share the feature dim, got {x.shape[-1]} and {y.shape[-1]}")
    if x.dtype != y.dtype or x.device != y.device:
        raise ValueError(f"x and y must share dtype and device, got {x.dtype}/{x.device} and {y.dtype}/{y.device}")
    if paired and x.shape[0] != y.shape[0]:
        raise ValueError(f"paired sets need the same batch size, got {x.shape[0]} and {y.shape[0]}")


def sinkhorn_divergence_matrix(x: Tensor, x_mask: Tensor, y: Tensor, y_mask: Tensor, blur: float = 0.05,
                               scaling: float = 0.5, p: int = 2, backend: str = "torch",
                               self_schedule: str = "pair") -> Tensor:
    """Debiased Sinkhorn divergence between every x set and every y set.

    ``S[i, j] = SamplesLoss("sinkhorn", p=p, blur=blur, scaling=scaling, debias=True)(x[i][x_mask[i]],
    y[j][y_mask[j]])`` from geomloss, with its gradients (envelope theorem: only the last Sinkhorn step is
    differentiated), computed for all pairs at once.

    Args:
        x: ``[Bx, N, D]`` token sets (float32 or float64; half precision is computed in float32).
        x_mask: ``[Bx, N]`` bool, True = real token; every row needs at least one.
        y: ``[By, M, D]`` token sets, same dtype and device as ``x``.
        y_mask: ``[By, M]`` bool.
        blur: Target blur; final temperature ``blur ** p``.
        scaling: Blur ratio between eps-scaling steps, in (0, 1).
        p: Cost exponent; only 2 (``C = |x - y|^2 / 2``).
        backend: "torch" (this file), "triton" (the fused softmin kernel for the eps-scaling loop) or "auto"
            (triton for float32 CUDA tensors when it is installed).
        self_schedule: "pair" (geomloss: the debiasing problems OT(x_i, x_i) and OT(y_j, y_j) are annealed with
            each pair's own schedule, B^2 of them) or "set" (once per set, with the longest schedule among its
            pairs: B problems, 1/B of the self-transport work; values move by ~1e-5 relative, see the tests).

    Returns:
        ``[Bx, By]`` divergences.

    Raises:
        ValueError: on shape, dtype or device mismatches, bad parameters, an empty set (naming its batch index) or
            non-finite real tokens.
    """
    _check_params(blur, scaling, p)
    _check_inputs(x, x_mask, y, y_mask, paired=False)
    if self_schedule not in ("pair", "set"):
        raise ValueError(f"self_schedule must be 'pair' or 'set', got {self_schedule!r}")
    return _sinkhorn(x, x_mask, y, y_mask, blur, scaling, p, outer=True, backend=backend, self_schedule=self_schedule)


def sinkhorn_divergence_pairs(x: Tensor, x_mask: Tensor, y: Tensor, y_mask: Tensor, blur: float = 0.05,
                              scaling: float = 0.5, p: int = 2,
                              backend: str = "torch") -> Tensor:
    """Debiased Sinkhorn divergence between paired sets: ``S[k]`` for ``(x[k], y[k])``, shapes ``[B, N, D]``,
    ``[B, M, D]`` -> ``[B]``. Equals the diagonal of `sinkhorn_divergence_matrix` at ``1 / B`` of its cost.

    Args and errors as in `sinkhorn_divergence_matrix`; ``x`` and ``y`` must have the same batch size.
    """
    _check_params(blur, scaling, p)
    _check_inputs(x, x_mask, y, y_mask, paired=True)
    return _sinkhorn(x, x_mask, y, y_mask, blur, scaling, p, outer=False, backend=backend)
