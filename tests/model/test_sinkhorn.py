"""model.sinkhorn against geomloss: per-pair values and gradients, padding, schedules, symmetry, errors.

The reference is what the paper's public code does: a Python loop over pairs calling geomloss
``SamplesLoss("sinkhorn", p=2, blur=blur, scaling=0.5, debias=True)`` on each pair's un-padded tokens.
Errors are measured relative to the largest reference magnitude: ``max|ours - ref| / max|ref|``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from geomloss import SamplesLoss
from geomloss._legacy.sinkhorn_divergence import epsilon_schedule

from model.sinkhorn import (
    SinkhornConfig,
    epsilon_schedules,
    pair_diameters,
    sinkhorn_divergence_matrix,
    sinkhorn_divergence_pairs,
)

TOL = {torch.float64: 1e-5, torch.float32: 1e-4}
BX, BY, N, M, D = 5, 5, 30, 12, 16


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


def token_sets(b: int, length: int, dtype: torch.dtype, seed: int, scales: list[float] | None = None,
               pad_value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised random tokens (optionally rescaled per set) with ragged masks; one set is full, one has 1 token."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, D, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=-1, keepdim=True)
    if scales is not None:
        x = x * torch.tensor(scales, dtype=torch.float64)[:, None, None]
    lengths = torch.randint(1, length + 1, (b,), generator=g)
    lengths[0], lengths[-1] = length, 1
    mask = torch.arange(length)[None] < lengths[:, None]
    x = torch.where(mask[..., None], x, torch.full_like(x, pad_value))
    return x.to(dtype), mask


def geomloss_loop(x, x_mask, y, y_mask, blur, weights=None):
    """The public code's way: one SamplesLoss call per pair on un-padded tokens. Returns S and, with weights, grads."""
    loss = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=0.5, debias=True)
    x = x.detach().clone().requires_grad_(weights is not None)
    y = y.detach().clone().requires_grad_(weights is not None)
    rows = [[loss(x[i][x_mask[i]], y[j][y_mask[j]]) for j in range(len(y))] for i in range(len(x))]
    s = torch.stack([torch.stack(r) for r in rows])
    if weights is None:
        return s.detach(), None, None
    (s * weights).sum().backward()
    return s.detach(), x.grad, y.grad


def ours_with_grads(x, x_mask, y, y_mask, blur, weights):
    x = x.detach().clone().requires_grad_()
    y = y.detach().clone().requires_grad_()
    s = sinkhorn_divergence_matrix(x, x_mask, y, y_mask, blur=blur)
    (s * weights).sum().backward()
    return s.detach(), x.grad, y.grad


# ------------------------------------------------------------------------------------------ schedules
def test_epsilon_schedules_equal_geomloss_including_boundaries():
    blur, scaling = 0.05, 0.5
    rng = np.random.default_rng(0)
    diameters = np.concatenate([
        rng.uniform(1e-3, 50, 200),
        blur * scaling ** -np.arange(0, 12.0),  # exactly on a step: the arange length is decided by rounding
        np.nextafter(blur * scaling ** -np.arange(0, 12.0), np.inf),
        np.nextafter(blur * scaling ** -np.arange(0, 12.0), 0),
        [1e-6, blur, 2.0, 1e4],
    ])
    for p, bl in ((2, blur), (2, 0.5), (1, blur)):
        ours = epsilon_schedules(diameters, p, bl, scaling)
        for d, sched in zip(diameters, ours):
            ref = np.asarray(epsilon_schedule(p, float(d), bl, scaling), dtype=np.float64)
            assert len(sched) == len(ref), (p, bl, d)
            np.testing.assert_allclose(sched, ref, rtol=1e-15, atol=0)


def test_pair_diameters_equal_geomloss_max_diameter_on_real_points():
    from geomloss._legacy.sinkhorn_divergence import max_diameter

    x, xm = token_sets(3, N, torch.float64, 1, scales=[1.0, 3.0, 0.2], pad_value=1e6)
    y, ym = token_sets(4, M, torch.float64, 2, scales=[0.5, 1.0, 7.0, 1.0], pad_value=-1e6)
    d = pair_diameters(x, xm, y, ym)
    ref = torch.tensor([[max_diameter(x[i][xm[i]], y[j][ym[j]]) for j in range(4)] for i in range(3)],
                       dtype=torch.float64)
    torch.testing.assert_close(d, ref, rtol=1e-14, atol=0)
    torch.testing.assert_close(pair_diameters(x, xm, y[:3], ym[:3], outer=False), ref.diagonal(), rtol=1e-14, atol=0)


# ------------------------------------------------------------------------------------------ versus geomloss
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("blur", [0.05, 0.5])
def test_matches_geomloss_loop_on_normalised_tokens(dtype, blur):
    x, xm = token_sets(BX, N, dtype, 10)
    y, ym = token_sets(BY, M, dtype, 11)
    w = torch.randn(BX, BY, generator=torch.Generator().manual_seed(3), dtype=torch.float64).to(dtype)
    s, gx, gy = ours_with_grads(x, xm, y, ym, blur, w)
    s_ref, gx_ref, gy_ref = geomloss_loop(x, xm, y, ym, blur, w)
    assert s.dtype == dtype and s.shape == (BX, BY)
    assert rel_err(s, s_ref) <= TOL[dtype]
    assert rel_err(gx, gx_ref) <= TOL[dtype]
    assert rel_err(gy, gy_ref) <= TOL[dtype]
    assert (gx[~xm] == 0).all() and (gy[~ym] == 0).all()


@pytest.mark.parametrize("blur", [0.05, 0.5])
def test_matches_geomloss_loop_with_very_different_scales(blur):
    """Un-normalised sets spanning 3 orders of magnitude: diameters, and so schedule lengths, differ per pair."""
    x, xm = token_sets(BX, N, torch.float64, 20, scales=[0.1, 1.0, 5.0, 0.02, 20.0])
    y, ym = token_sets(BY, M, torch.float64, 21, scales=[30.0, 0.05, 1.0, 2.0, 0.3])
    lengths = {len(s) for s in epsilon_schedules(pair_diameters(x, xm, y, ym).numpy(), 2, blur, 0.5)}
    assert len(lengths) >= 4, lengths  # the end-aligned batching is really exercised
    w = torch.randn(BX, BY, generator=torch.Generator().manual_seed(4), dtype=torch.float64)

    s, gx, gy = ours_with_grads(x, xm, y, ym, blur, w)
    s_ref, gx_ref, gy_ref = geomloss_loop(x, xm, y, ym, blur, w)
    assert rel_err(s, s_ref) <= TOL[torch.float64]
    assert rel_err(gx, gx_ref) <= TOL[torch.float64]
    assert rel_err(gy, gy_ref) <= TOL[torch.float64]
    # The small-scale pairs must be right too, not only the ones that dominate the max.
    torch.testing.assert_close(s, s_ref, rtol=1e-9, atol=0)

    # float32: values to 1e-4. Gradients at scale 20 with eps = blur^2 are ill-conditioned in float32 for any
    # implementation (cost ~ |x|^2 cancels to ~1e-5 absolute, amplified by 1/eps), so there we require ours to be
    # as close to the float64 gradients as geomloss' own float32 gradients are.
    x32, y32, w32 = x.float(), y.float(), w.float()
    s32, gx32, gy32 = ours_with_grads(x32, xm, y32, ym, blur, w32)
    s32_ref, gx32_ref, gy32_ref = geomloss_loop(x32, xm, y32, ym, blur, w32)
    assert rel_err(s32, s32_ref) <= TOL[torch.float32]
    for g32, g32_ref, g64 in ((gx32, gx32_ref, gx_ref), (gy32, gy32_ref, gy_ref)):
        assert rel_err(g32, g64) <= 2 * rel_err(g32_ref, g64) + TOL[torch.float32]


def test_paired_helper_equals_matrix_diagonal_values_and_grads():
    x, xm = token_sets(BX, N, torch.float64, 30, scales=[1.0, 2.0, 0.5, 1.0, 9.0])
    y, ym = token_sets(BX, M, torch.float64, 31)
    xp, yp = x.clone().requires_grad_(), y.clone().requires_grad_()
    pairs = sinkhorn_divergence_pairs(xp, xm, yp, ym)
    pairs.sum().backward()
    s, gx, gy = ours_with_grads(x, xm, y, ym, 0.05, torch.eye(BX, dtype=torch.float64))
    assert pairs.shape == (BX,)
    torch.testing.assert_close(pairs.detach(), s.diagonal(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(xp.grad, gx, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(yp.grad, gy, rtol=1e-10, atol=1e-14)


# ------------------------------------------------------------------------------------------ padding
@pytest.mark.parametrize("pad_value", [1e30, -1e4, float("nan")])
def test_padded_values_have_no_influence(pad_value):
    x, xm = token_sets(BX, N, torch.float64, 40)
    y, ym = token_sets(BY, M, torch.float64, 41)
    w = torch.randn(BX, BY, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    s, gx, gy = ours_with_grads(x, xm, y, ym, 0.05, w)
    x2 = torch.where(xm[..., None], x, torch.full_like(x, pad_value))
    y2 = torch.where(ym[..., None], y, torch.full_like(y, pad_value))
    s2, gx2, gy2 = ours_with_grads(x2, xm, y2, ym, 0.05, w)
    assert torch.equal(s, s2) and torch.equal(gx, gx2) and torch.equal(gy, gy2)
    assert (gx2[~xm] == 0).all() and (gy2[~ym] == 0).all()


def test_extra_padding_columns_change_nothing():
    x, xm = token_sets(BX, N, torch.float64, 42)
    y, ym = token_sets(BY, M, torch.float64, 43)
    s = sinkhorn_divergence_matrix(x, xm, y, ym)
    xw = torch.cat([x, torch.randn(BX, 7, D, dtype=torch.float64)], 1)
    xmw = torch.cat([xm, torch.zeros(BX, 7, dtype=torch.bool)], 1)
    torch.testing.assert_close(sinkhorn_divergence_matrix(xw, xmw, y, ym), s, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------------------------------ properties
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_self_divergence_is_zero_and_divergences_are_nonnegative(dtype):
    x, xm = token_sets(BX, N, dtype, 50, scales=[1.0, 1.0, 3.0, 0.3, 1.0])
    s = sinkhorn_divergence_matrix(x, xm, x, xm)
    scale = s.abs().max().item()
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    assert s.diagonal().abs().max().item() <= tol * scale
    assert s.min().item() >= -tol * scale
    off = s[~torch.eye(BX, dtype=torch.bool)]
    assert off.min().item() > 100 * tol * scale  # distinct sets are really apart


def test_symmetric_when_sets_are_swapped():
    x, xm = token_sets(BX, N, torch.float64, 60, scales=[1.0, 2.0, 0.1, 1.0, 4.0])
    y, ym = token_sets(BY - 1, M, torch.float64, 61)
    torch.testing.assert_close(sinkhorn_divergence_matrix(x, xm, y, ym),
                               sinkhorn_divergence_matrix(y, ym, x, xm).T, rtol=1e-10, atol=1e-14)


def test_coincident_points_give_zero_where_geomloss_would_fail_on_log_zero():
    x = torch.ones(2, 3, D, dtype=torch.float64)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    s = sinkhorn_divergence_matrix(x, mask, x, mask)
    assert torch.isfinite(s).all() and s.abs().max().item() < 1e-12


def test_half_precision_inputs_are_computed_in_float32():
    x, xm = token_sets(3, N, torch.float32, 70)
    y, ym = token_sets(2, M, torch.float32, 71)
    xb = x.bfloat16().requires_grad_()
    s = sinkhorn_divergence_matrix(xb, xm, y.bfloat16(), ym)
    s.sum().backward()
    assert s.dtype == torch.float32 and xb.grad.dtype == torch.bfloat16
    ref = sinkhorn_divergence_matrix(xb.detach().float(), xm, y.bfloat16().float(), ym)
    torch.testing.assert_close(s.detach(), ref, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------------------ errors and config
def test_empty_set_is_rejected_with_its_batch_index():
    x, xm = token_sets(4, N, torch.float32, 80)
    y, ym = token_sets(3, M, torch.float32, 81)
    xm[2] = False
    with pytest.raises(ValueError, match=r"x_mask has no real token at batch index 2"):
        sinkhorn_divergence_matrix(x, xm, y, ym)
    xm[2] = True
    ym[1] = False
    with pytest.raises(ValueError, match=r"y_mask has no real token at batch index 1"):
        sinkhorn_divergence_pairs(x[:3], xm[:3], y, ym)


def test_bad_shapes_and_settings_are_rejected():
    x, xm = token_sets(4, N, torch.float32, 90)
    y, ym = token_sets(3, M, torch.float32, 91)
    with pytest.raises(ValueError, match="feature dim"):
        sinkhorn_divergence_matrix(x, xm, y[..., :-1], ym)
    with pytest.raises(ValueError, match="x_mask has shape"):
        sinkhorn_divergence_matrix(x, xm[:, :-1], y, ym)
    with pytest.raises(ValueError, match="bool"):
        sinkhorn_divergence_matrix(x, xm.float(), y, ym)
    with pytest.raises(ValueError, match=r"\[batch, tokens, dim\]"):
        sinkhorn_divergence_matrix(x[0], xm[0], y, ym)
    with pytest.raises(ValueError, match="same batch size"):
        sinkhorn_divergence_pairs(x, xm, y, ym)
    with pytest.raises(ValueError, match="dtype"):
        sinkhorn_divergence_matrix(x.double(), xm, y, ym)
    with pytest.raises(ValueError, match="non-finite"):
        sinkhorn_divergence_matrix(torch.where(xm[..., None], x.new_tensor(float("inf")), x), xm, y, ym)
    with pytest.raises(ValueError, match="p=2"):
        sinkhorn_divergence_matrix(x, xm, y, ym, p=1)
    with pytest.raises(ValueError, match="blur"):
        sinkhorn_divergence_matrix(x, xm, y, ym, blur=0.0)
    with pytest.raises(ValueError, match="scaling"):
        SinkhornConfig(scaling=1.0)


def test_config_feeds_the_functions():
    cfg = SinkhornConfig(blur=0.5)
    x, xm = token_sets(2, N, torch.float64, 95)
    y, ym = token_sets(2, M, torch.float64, 96)
    s = sinkhorn_divergence_matrix(x, xm, y, ym, **dataclasses.asdict(cfg))
    torch.testing.assert_close(s, geomloss_loop(x, xm, y, ym, 0.5)[0], rtol=1e-10, atol=0)


def test_token_order_and_scattered_padding_do_not_matter():
    """Sets are unordered: permuting tokens (so padding is scattered, not trailing) gives the same divergences."""
    x, xm = token_sets(BX, N, torch.float64, 44)
    y, ym = token_sets(BY, M, torch.float64, 45)
    s = sinkhorn_divergence_matrix(x, xm, y, ym)
    g = torch.Generator().manual_seed(6)
    px = torch.stack([torch.randperm(N, generator=g) for _ in range(BX)])
    py = torch.stack([torch.randperm(M, generator=g) for _ in range(BY)])
    xp, xmp = x.gather(1, px[..., None].expand(-1, -1, D)), xm.gather(1, px)
    yp, ymp = y.gather(1, py[..., None].expand(-1, -1, D)), ym.gather(1, py)
    assert not xmp[:, 0].all()  # some set now starts with padding
    torch.testing.assert_close(sinkhorn_divergence_matrix(xp, xmp, yp, ymp), s, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("blur", [0.05, 0.5])
def test_self_terms_once_per_set_stay_within_tolerance_of_geomloss(blur):
    """self_schedule="set": OT(x_i, x_i) and OT(y_j, y_j) solved once per set (B problems instead of B^2) with
    the longest schedule among the set's pairs. Not geomloss' exact per-pair annealing, so it is held to the
    kernel tolerance (1e-4 relative to the loop, values and gradients) instead of 1e-9, and must really differ."""
    x, xm = token_sets(BX, N, torch.float64, 30, scales=[0.1, 1.0, 5.0, 0.5, 2.0])
    y, ym = token_sets(BY, M, torch.float64, 31, scales=[3.0, 0.2, 1.0, 2.0, 0.3])
    w = torch.randn(BX, BY, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    xx, yy = x.clone().requires_grad_(), y.clone().requires_grad_()
    s = sinkhorn_divergence_matrix(xx, xm, yy, ym, blur=blur, self_schedule="set")
    (s * w).sum().backward()
    s_ref, gx_ref, gy_ref = geomloss_loop(x, xm, y, ym, blur, w)
    assert rel_err(s, s_ref) <= 1e-4 and rel_err(xx.grad, gx_ref) <= 1e-4 and rel_err(yy.grad, gy_ref) <= 1e-4
    assert rel_err(s.detach(), s_ref) > 1e-12  # a different computation, not the per-pair one by accident
    with pytest.raises(ValueError, match="self_schedule"):
        sinkhorn_divergence_matrix(x, xm, y, ym, self_schedule="pairs")
