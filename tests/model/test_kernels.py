"""Fused kernels (model/kernels/) against the plain-torch reference: values and gradients, masks, odd sizes, shared
(broadcast) cost blocks, float32 and bfloat16 inputs. On CPU the Triton kernels run under TRITON_INTERPRET=1
(tests/conftest.py); on a GPU machine the same tests run the compiled kernels."""

from __future__ import annotations

import pytest
import torch

from model.kernels.softmin import softmin_pairs, triton_available
from model.sinkhorn import _softmin, sinkhorn_divergence_matrix, sinkhorn_divergence_pairs

pytestmark = pytest.mark.skipif(not triton_available(), reason="triton is not installed")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _reference(eps, cost, h, dim):
    pairs = eps.shape
    n, m = cost.shape[-2:]
    buf = torch.empty(*pairs, n, m, dtype=torch.float32, device=cost.device)
    f, _ = _softmin(buf, eps.float(), cost.float(), h.float(), dim)
    return f


@pytest.mark.parametrize("dim", [-1, -2])
@pytest.mark.parametrize(("bx", "by", "n", "m"), [(3, 2, 7, 5), (2, 3, 33, 130), (1, 2, 300, 260), (1, 1, 1, 1)])
def test_softmin_over_pair_grid_equals_reference(dim, bx, by, n, m):
    g = torch.Generator().manual_seed(n * m)
    cost = torch.rand(bx, by, n, m, generator=g).to(DEVICE) * 2
    eps = (torch.rand(bx, by, generator=g) * 0.5 + 0.01).to(DEVICE)
    h_len = m if dim == -1 else n
    h = torch.randn(bx, by, h_len, generator=g).to(DEVICE)
    h[..., max(1, h_len - 3):] = float("-inf")  # padding: log-weight -inf
    torch.testing.assert_close(softmin_pairs(eps, cost, h, dim), _reference(eps, cost, h, dim), rtol=1e-5, atol=1e-5)


def test_shared_self_costs_are_read_in_place():
    """A [Bx, 1, N, N] self cost and [1, By, M] log-weights broadcast over the pair grid, never copied."""
    g = torch.Generator().manual_seed(0)
    c_xx = torch.rand(4, 1, 9, 9, generator=g).to(DEVICE)
    h = torch.randn(1, 3, 9, generator=g).to(DEVICE)
    eps = (torch.rand(4, 3, generator=g) + 0.05).to(DEVICE)
    torch.testing.assert_close(softmin_pairs(eps, c_xx, h, -1), _reference(eps, c_xx, h, -1), rtol=1e-5, atol=1e-5)


def test_paired_mode_and_bfloat16_costs():
    g = torch.Generator().manual_seed(1)
    cost = torch.rand(5, 6, 4, generator=g).to(DEVICE)
    eps, h = (torch.rand(5, generator=g) + 0.1).to(DEVICE), torch.randn(5, 4, generator=g).to(DEVICE)
    torch.testing.assert_close(softmin_pairs(eps, cost, h, -1), _reference(eps, cost, h, -1), rtol=1e-5, atol=1e-5)
    half = cost.bfloat16()  # bf16 storage, fp32 accumulation: equals the reference on the same rounded inputs
    torch.testing.assert_close(softmin_pairs(eps, half, h, -1), _reference(eps, half.float(), h, -1), rtol=1e-5,
                               atol=1e-5)


def _clouds(b, n, d, seed, lengths):
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.normalize(torch.randn(b, n, d, generator=g), dim=-1)
    mask = torch.zeros(b, n, dtype=torch.bool)
    for i, k in enumerate(lengths):
        mask[i, :k] = True
    return x.to(DEVICE), mask.to(DEVICE)


@pytest.mark.parametrize("blur", [0.05, 0.5])
def test_sinkhorn_with_the_kernel_equals_the_torch_solver(blur):
    x, xm = _clouds(3, 11, 16, 0, [11, 4, 7])
    y, ym = _clouds(4, 6, 16, 1, [6, 1, 3, 5])
    grads = {}
    for backend in ("torch", "triton"):
        xx, yy = x.clone().requires_grad_(), y.clone().requires_grad_()
        s = sinkhorn_divergence_matrix(xx, xm, yy, ym, blur=blur, backend=backend)
        w = torch.arange(s.numel(), dtype=s.dtype, device=s.device).view_as(s) / s.numel()
        (s * w).sum().backward()
        grads[backend] = (s.detach(), xx.grad, yy.grad)
    for got, want in zip(grads["triton"], grads["torch"]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    paired = sinkhorn_divergence_pairs(x[:3], xm[:3], y[:3], ym[:3], blur=blur, backend="triton")
    torch.testing.assert_close(paired, grads["torch"][0].diagonal()[:3], rtol=1e-4, atol=1e-6)


def test_wasserstein_infonce_with_kernels_equals_torch():
    from model.losses import ContrastiveLoss, LossConfig

    x, xm = _clouds(4, 9, 12, 2, [9, 3, 5, 7])
    y, ym = _clouds(4, 5, 12, 3, [5, 2, 4, 1])
    out = {}
    for kernels in ("torch", "triton"):
        xx = x.clone().requires_grad_()
        loss, _ = ContrastiveLoss(LossConfig(objective="wasser", blur=0.5, kernels=kernels))({3: xx}, xm, {3: y}, ym)
        loss.backward()
        out[kernels] = (loss.detach(), xx.grad)
    for got, want in zip(out["triton"], out["torch"]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dim", [-1, -2])
@pytest.mark.parametrize("shape", ["cross", "self_x", "self_y", "paired"])
def test_last_step_gradient_from_recomputed_plans_equals_reference(dim, shape):
    """dL/dC of the last softmin, the plans recomputed block by block and summed over the pairs that share a
    block, equals autograd through the torch reference (which keeps every pair's plan)."""
    from model.kernels.softmin import LastSoftmin
    from model.sinkhorn import _LastSoftmin

    g = torch.Generator().manual_seed(7)
    bx, by, n, m = 3, 4, 9, 70
    cost_shape, eps_shape = {"cross": ((bx, by, n, m), (bx, by)), "self_x": ((bx, 1, n, m), (bx, by)),
                             "self_y": ((1, by, n, m), (bx, by)), "paired": ((bx, n, m), (bx,))}[shape]
    cost = (torch.rand(*cost_shape, generator=g) * 2).to(DEVICE)
    eps = (torch.rand(*eps_shape, generator=g) * 0.3 + 0.05).to(DEVICE)
    h = torch.randn(*eps_shape, m if dim == -1 else n, generator=g).to(DEVICE)
    h[..., -2:] = float("-inf")
    weights = torch.randn(*eps_shape, n if dim == -1 else m, generator=g).to(DEVICE)
    grads = []
    for fn in (LastSoftmin, _LastSoftmin):
        c = cost.clone().requires_grad_()
        f = fn.apply(c, h, eps, dim)
        (f * weights).sum().backward()
        grads.append((f.detach(), c.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_masked_mean_pool_equals_reference_and_ignores_nan_padding(dtype):
    from model.kernels.pooling import masked_mean_pool_fused
    from model.loss_functions import masked_mean_pool

    g = torch.Generator().manual_seed(4)
    h = torch.randn(3, 45, 300, generator=g).to(DEVICE, dtype)
    mask = torch.zeros(3, 45, dtype=torch.bool, device=DEVICE)
    mask[0, :45], mask[1, :7], mask[2, 3:20] = True, True, True
    h[1, 7:] = float("nan")  # padded states may be NaN (fully masked attention rows)
    got_in, want_in = h.clone().requires_grad_(), h.clone().requires_grad_()
    got, want = masked_mean_pool_fused(got_in, mask), masked_mean_pool(want_in, mask)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    w = torch.randn(3, 300, generator=g).to(DEVICE)
    (got * w).sum().backward()
    (want * w).sum().backward()
    torch.testing.assert_close(got_in.grad, want_in.grad, rtol=1e-5, atol=1e-6)


def test_cosine_infonce_with_kernels_equals_torch():
    from model.losses import ContrastiveLoss, LossConfig

    g = torch.Generator().manual_seed(5)
    states = {l: torch.randn(6, 11, 24, generator=g).to(DEVICE) for l in (0, 5, 7)}
    text = {l: torch.randn(6, 4, 24, generator=g).to(DEVICE) for l in (0, 5, 7)}
    sm, tm = torch.rand(6, 11, generator=g) > 0.3, torch.rand(6, 4, generator=g) > 0.3
    sm[:, 0], tm[:, 0] = True, True
    out = {}
    for kernels in ("torch", "triton"):
        s = {l: v.clone().requires_grad_() for l, v in states.items()}
        loss, metrics = ContrastiveLoss(LossConfig(objective="cos", direction="sym", kernels=kernels))(
            s, sm.to(DEVICE), text, tm.to(DEVICE))
        loss.backward()
        out[kernels] = (loss.detach(), [s[l].grad for l in (0, 5, 7)])
    torch.testing.assert_close(out["triton"][0], out["torch"][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(out["triton"][1], out["torch"][1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_kernel_path_with_self_terms_once_per_set_equals_torch():
    x, xm = _clouds(3, 11, 16, 8, [11, 4, 7])
    y, ym = _clouds(4, 6, 16, 9, [6, 1, 3, 5])
    out = {}
    for backend in ("torch", "triton"):
        xx = x.clone().requires_grad_()
        s = sinkhorn_divergence_matrix(xx, xm, y, ym, blur=0.05, backend=backend, self_schedule="set")
        s.sum().backward()
        out[backend] = (s.detach(), xx.grad)
    for got, want in zip(out["triton"], out["torch"]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
