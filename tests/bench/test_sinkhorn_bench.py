"""Sinkhorn InfoNCE similarities: our batched reference vs the paper code's per-pair geomloss loop, same run.

Forward + backward of ``sum(W * S)`` over all B*B (speech, text) pairs, float32, L2-normalised random tokens with ragged
masks, blur 0.05, scaling 0.5. Three ways:

- ours: ``model.sinkhorn.sinkhorn_divergence_matrix`` (per-pair diameters and schedules, one batched loop);
- loop: the public code's way, ``SamplesLoss("sinkhorn", p=2, blur, scaling=0.5, debias=True)`` on each pair's
  un-padded tokens, B*B calls;
- batched geomloss: one ``SamplesLoss`` call on ``[B*B, N, D]`` / ``[B*B, M, D]`` expanded pair tensors with zero
  weights on padding. geomloss then uses one diameter (hence one schedule) for the whole batch, measured over all
  points including padding, so its numbers differ from per-pair semantics; we report by how much.

Run with `make bench`; figures go to BENCHMARKS.md (section "sinkhorn"). Never asserts times, only that ours and the
loop agree to 1e-4 relative (values and gradients).

On CUDA (`make gpu-check`, tests/gpu/check.py) it also times ours with ``backend="triton"`` (the kernels), reports
loop / kernel and batched geomloss / kernel against the kernel issue's goals (>= 100x, >= 10x at D=4096; reported,
not asserted) and writes section "sinkhorn_gpu", leaving the CPU section as it is. The check's tiny CPU run
(``SPEECHLLM_GPU_CHECK=tiny``) runs the same code at tiny sizes, the kernel column under Triton's interpreter, and
writes into its own file (``SPEECHLLM_BENCHMARKS_MD``), never into BENCHMARKS.md.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from pathlib import Path
from unittest import mock

import pytest
import torch
from geomloss import SamplesLoss

from model.kernels.softmin import triton_available
from model.sinkhorn import sinkhorn_divergence_matrix
from tests.bench import report
from tests.gpu.check import BENCH_ENV, MODE_ENV, record, record_imports

pytestmark = pytest.mark.bench
TINY = os.environ.get(MODE_ENV) == "tiny"  # the GPU check's CPU run: the same code at tiny sizes
B, N, M, BLUR = (3, 12, 6, 0.05) if TINY else (16, 150, 40, 0.05)
DIMS = (16,) if TINY else (640, 4096)
REPEATS = {"ours": 1, "loop": 1, "batched": 1} if TINY else {"ours": 5, "loop": 3, "batched": 3}
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
GOALS = {"loop": 100.0, "batched": 10.0}
"""Kernel issue, on a GPU at D=4096: loop / kernel >= 100x, batched geomloss / kernel >= 10x (reported only)."""


def _inputs(d: int, seed: int = 0):
    """Speech-like x (50-150 tokens) and text-like y (13-40 tokens), L2-normalised, exact zeros on padding."""
    g = torch.Generator().manual_seed(seed)

    def sets(length: int):
        h = torch.randn(B, length, d, generator=g)
        mask = torch.arange(length)[None] < torch.randint(length // 3, length + 1, (B,), generator=g)[:, None]
        return (h / h.norm(dim=-1, keepdim=True) * mask[..., None]).to(DEVICE), mask.to(DEVICE)

    x, xm = sets(N)
    y, ym = sets(M)
    return x, xm, y, ym, torch.randn(B, B, generator=g).to(DEVICE)


def _ours(x, xm, y, ym, w):
    return sinkhorn_divergence_matrix(x, xm, y, ym, blur=BLUR, scaling=0.5)


def _loop(x, xm, y, ym, w):
    # As the public code: un-pad each set once, then one SamplesLoss call per (i, j) pair.
    loss = SamplesLoss("sinkhorn", p=2, blur=BLUR, scaling=0.5, debias=True)
    xs, ys = [x[i][xm[i]] for i in range(B)], [y[j][ym[j]] for j in range(B)]
    return torch.stack([torch.stack([loss(xs[i], ys[j]) for j in range(B)]) for i in range(B)])


def _ours_per_set(x, xm, y, ym, w):
    return sinkhorn_divergence_matrix(x, xm, y, ym, blur=BLUR, scaling=0.5, self_schedule="set")


def _kernel(x, xm, y, ym, w):
    return sinkhorn_divergence_matrix(x, xm, y, ym, blur=BLUR, scaling=0.5, backend="triton")


def _batched(x, xm, y, ym, w):
    loss = SamplesLoss("sinkhorn", p=2, blur=BLUR, scaling=0.5, debias=True, backend="tensorized")
    a = xm.float() / xm.sum(1, keepdim=True)
    b = ym.float() / ym.sum(1, keepdim=True)
    xp = x[:, None].expand(B, B, N, x.shape[-1]).reshape(B * B, N, -1)  # pair (i, j) -> row i * B + j
    yp = y[None].expand(B, B, M, y.shape[-1]).reshape(B * B, M, -1)
    ap = a[:, None].expand(B, B, N).reshape(B * B, N)
    bp = b[None].expand(B, B, M).reshape(B * B, M)
    return loss(ap, xp, bp, yp).view(B, B)


def _run(fn, x, xm, y, ym, w):
    """One forward + backward; returns (seconds, S, grad x, grad y)."""
    x, y = x.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    s = fn(x, xm, y, ym, w)
    (s * w).sum().backward()
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, s.detach(), x.grad, y.grad


def _median_run(fn, repeats: int, *inputs, warm_up: bool = True):
    if warm_up:  # allocator, MKL/oneDNN kernels; the loop's B*B calls warm themselves up
        _run(fn, *inputs)
    runs = [_run(fn, *inputs) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), runs[-1][1:]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def _write_section(name: str, title: str, body: str, command: str) -> None:
    """`report.write_section`, into ``$SPEECHLLM_BENCHMARKS_MD`` instead of BENCHMARKS.md when the GPU check sets it."""
    target = os.environ.get(BENCH_ENV)
    with mock.patch.object(report, "BENCHMARKS_MD", Path(target)) if target else contextlib.nullcontext():
        report.write_section(name, title, body, command)


def test_sinkhorn_similarity_speed():
    rows, checks, goals = [], [], []
    for d in DIMS:
        inputs = _inputs(d)
        t_ours, (s, gx, gy) = _median_run(_ours, REPEATS["ours"], *inputs)
        t_loop, (s_loop, gx_loop, gy_loop) = _median_run(_loop, REPEATS["loop"], *inputs, warm_up=False)
        t_bat, (s_bat, _, _) = _median_run(_batched, REPEATS["batched"], *inputs, warm_up=False)
        t_set, (s_set, gx_set, _) = _median_run(_ours_per_set, REPEATS["ours"], *inputs)
        checks.append((_rel(s_set, s_loop), _rel(gx_set, gx_loop)))
        errs = (_rel(s, s_loop), _rel(gx, gx_loop), _rel(gy, gy_loop))
        checks.append(errs)
        kernel, t_k = "needs a GPU | - | -", None
        # the CPU interpreter is for correctness, not speed: timed on CUDA, only run in the check's tiny CPU run
        if (DEVICE.type == "cuda" or TINY) and triton_available():
            t_k, (s_k, gx_k, _) = _median_run(_kernel, REPEATS["ours"], *inputs)
            checks.append((_rel(s_k, s_loop), _rel(gx_k, gx_loop)))
            kernel = f"{1e3 * t_k:.0f} | **{t_loop / t_k:.0f}x** | {t_bat / t_k:.1f}x"
            if d == max(DIMS):
                goals.append(f"loop / kernel {t_loop / t_k:.0f}x (goal >= {GOALS['loop']:.0f}x: "
                             f"{'met' if t_loop / t_k >= GOALS['loop'] else 'not met'}), batched geomloss / kernel "
                             f"{t_bat / t_k:.1f}x (goal >= {GOALS['batched']:.0f}x: "
                             f"{'met' if t_bat / t_k >= GOALS['batched'] else 'not met'})")
        record("sinkhorn", "row", d=d, device=str(DEVICE), ours_ms=round(1e3 * t_ours, 2),
               loop_ms=round(1e3 * t_loop, 2), batched_ms=round(1e3 * t_bat, 2), per_set_ms=round(1e3 * t_set, 2),
               kernel_ms=round(1e3 * t_k, 2) if t_k else None, loop_over_ours=round(t_loop / t_ours, 2),
               loop_over_kernel=round(t_loop / t_k, 1) if t_k else None,
               batched_over_kernel=round(t_bat / t_k, 2) if t_k else None,
               rel_err_ours_vs_loop=[float(f"{e:.2e}") for e in errs])
        rows.append(f"| {d} | {1e3 * t_ours:.0f} | {1e3 * t_loop:.0f} | {1e3 * t_bat:.0f} | "
                    f"**{t_loop / t_ours:.1f}x** | {t_bat / t_ours:.1f}x | {1e3 * t_set:.0f} | "
                    f"**{t_loop / t_set:.1f}x** | {_rel(s_set, s_loop):.1e} | {kernel} | {errs[0]:.1e} / "
                    f"{errs[1]:.1e} / {errs[2]:.1e} | {_rel(s_bat, s_loop):.1e} |")
        print(rows[-1])
    where = torch.cuda.get_device_name() if DEVICE.type == "cuda" else "cpu"
    body = (
        f"All B*B = {B * B} (speech, text) pairs, B={B}, speech sets of {N // 3}-{N} tokens, text sets of "
        f"{M // 3}-{M} tokens (ragged), L2-normalised random float32 tokens, blur {BLUR}, scaling 0.5, debiased; "
        f"forward + backward of sum(W * S), median of {REPEATS['ours']} (ours) / {REPEATS['loop']} (loop, batched) "
        f"runs (after one warm-up run for ours), on {where}.\n\n"
        "- **ours**: `model.sinkhorn.sinkhorn_divergence_matrix` (per-pair diameters and eps schedules, batched).\n"
        "- **loop**: the paper's public code: geomloss `SamplesLoss(\"sinkhorn\", p=2, blur, scaling=0.5)` called on "
        "each pair's un-padded tokens (each set un-padded once, as that code does), all pairs timed (no "
        "extrapolation).\n"
        "- **batched geomloss**: one `SamplesLoss` call on [B*B, N, D] / [B*B, M, D] expanded pair tensors, zero "
        "weights on padding. geomloss then takes one diameter for the whole batch (bounding box of all points of "
        "all sets, padding included), so every pair runs the schedule of that largest diameter and its values "
        "differ from per-pair semantics (last column).\n"
        "- **ours, self terms per set**: `self_schedule=\"set\"`: the debiasing problems OT(x_i, x_i), "
        "OT(y_j, y_j) solved once per set (B instead of B^2) with the longest schedule of the set's pairs; not "
        "geomloss' exact per-pair annealing, so its error against the loop is shown.\n"
        "- **kernel**: ours with `backend=\"triton\"`: the eps-scaling loop's softmins in the fused Triton kernel "
        "(`model/kernels/softmin.py`); GPU only (on CPU its interpreter checks correctness in the tests).\n\n"
        "| D | ours ms | loop ms | batched geomloss ms | loop / ours | batched / ours | per-set ms | loop / per-set | "
        "per-set vs loop: rel. err. S | kernel ms | loop / kernel | batched / kernel | ours vs loop: rel. err. S / "
        "dS/dx / dS/dy | batched vs loop: rel. err. S |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\nRelative error = max |a - b| / max |b| over the matrix (or gradient). ")
    if DEVICE.type == "cuda":
        body += (f"Goals of the kernel issue at D={max(DIMS)}: " + ("; ".join(goals) or "kernel not run (no triton)")
                 + ". Times are synchronised wall clock of one forward + backward; geomloss' loop and batched "
                 "calls run its tensorized backend on the same GPU.")
        _write_section("sinkhorn_gpu", "Sinkhorn InfoNCE: Triton kernel vs geomloss (GPU)", body,
                       "make gpu-check  (pytest -m bench tests/bench/test_sinkhorn_bench.py on CUDA)")
    else:
        body += (
        "Where ours gains: one matmul "
        "for all B*N x B*M dot products, self costs C(x_i, x_i) once per set instead of once per pair, no per-call "
        "overhead, no subnormal exps (shifted values below log of the smallest normal float are dropped, which "
        "leaves every sum unchanged). Where it loses: it works on padded blocks, about 2.1x the exps and 2.3x the "
        "cross-cost FLOPs of the un-padded loop at these ragged lengths. At D=4096 on CPU the five D-wide matmuls "
        "(cross costs, self costs, both gradients) are at the machine's GEMM speed and take about 45 % of ours; the "
        "exps of the per-pair self-transport blocks (B*B of [N, N]: each pair anneals with its own schedule) about "
        "15 % (the per-set column removes most of those). Goals of the kernel issue: on CPU >= 9x the loop at "
        "D=4096 (not reached: in a torch.profiler run of this case on this machine the matmuls alone took ~200 ms "
        "against the loop's ~1.7 s, a cap near 8.5x), on a GPU >= 100x the loop and >= 10x batched geomloss (owed "
        "until a GPU is lent). The CPU cores are shared with other jobs, so single runs vary by tens of percent.")
        _write_section("sinkhorn", "Sinkhorn InfoNCE reference vs geomloss", body,
                       "make bench  (pytest -m bench tests/bench/test_sinkhorn_bench.py)")
    record_imports("sinkhorn")
    for errs in checks:
        assert max(errs) <= 1e-4, errs
