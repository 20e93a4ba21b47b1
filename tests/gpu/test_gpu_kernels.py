"""The Triton kernels compiled for the GPU against their torch references, at the loss's real sizes.

tests/model/test_kernels.py checks the same functions on CPU under TRITON_INTERPRET at small odd sizes; what only
a GPU can show is that the compiled kernels (real block sizes, real stride specialisations, bf16 loads on tensor
cores' dtypes) give the same numbers: the soft C-transform `softmin_pairs` over a pair grid and over shared self-cost
blocks, the last step's backward `LastSoftmin` / `softmin_plan_grad` (plans recomputed block by block), the cosine
loss's `masked_mean_pool_fused` with NaN padding, and the whole Sinkhorn divergence with ``backend="triton"`` vs
``"torch"``, each for float32 and bfloat16 inputs. Sizes: B=8 sets of 150 speech / 40 text tokens (the Sinkhorn
bench's N and M), 7 layers of 4096-wide states for the pool; in the check's tiny CPU run, a few tokens.
Each test records its max relative error (`record_property`) for the check's report.
"""

from __future__ import annotations

import pytest
import torch

from model.kernels.softmin import LastSoftmin, softmin_pairs, triton_available
from model.sinkhorn import _LastSoftmin, _softmin, sinkhorn_divergence_matrix

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not triton_available(), reason="triton is not installed")]
DTYPES = [torch.float32, torch.bfloat16]


def _sizes(tiny: bool) -> dict:
    return dict(b=3, n=9, m=5, d=8) if tiny else dict(b=8, n=150, m=40, d=256)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp(min=1e-30)).item()


def _reference(eps, cost, h, dim):
    n, m = cost.shape[-2:]
    buf = torch.empty(*eps.shape, n, m, dtype=torch.float32, device=cost.device)
    return _softmin(buf, eps.float(), cost.float(), h.float(), dim)[0]


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
@pytest.mark.parametrize("shape", ["cross", "self"])
@pytest.mark.parametrize("dim", [-1, -2])
def test_softmin_pairs_compiled_equals_reference(device, tiny, record_property, dtype, shape, dim):
    s = _sizes(tiny)
    g = torch.Generator().manual_seed(0)
    n, m = (s["n"], s["m"]) if shape == "cross" else (s["n"], s["n"])
    cost_shape = (s["b"], s["b"], n, m) if shape == "cross" else (s["b"], 1, n, m)  # self costs: shared over j
    cost = (torch.rand(*cost_shape, generator=g) * 2).to(device, dtype)
    eps = (torch.rand(s["b"], s["b"], generator=g) * 0.5 + 0.01).to(device)
    h = torch.randn(s["b"], s["b"], m if dim == -1 else n, generator=g).to(device)
    h[..., -3:] = float("-inf")  # padding
    got = softmin_pairs(eps, cost, h, dim)
    want = _reference(eps, cost, h, dim)  # same rounded inputs, float32 throughout
    record_property("max_rel_err", f"{_rel(got, want):.1e}")
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
@pytest.mark.parametrize("shape", ["cross", "self_x"])
def test_last_softmin_backward_compiled_equals_autograd(device, tiny, record_property, dtype, shape):
    s = _sizes(tiny)
    g = torch.Generator().manual_seed(1)
    b, n, m = s["b"], s["n"], s["m"]
    cost_shape = (b, b, n, m) if shape == "cross" else (b, 1, n, m)
    cost = (torch.rand(*cost_shape, generator=g) * 2).to(device, dtype)
    eps = (torch.rand(b, b, generator=g) * 0.3 + 0.05).to(device)
    h = torch.randn(b, b, m, generator=g).to(device)
    h[..., -2:] = float("-inf")
    weights = torch.randn(b, b, n, generator=g).to(device)
    out = []
    for fn, c in ((LastSoftmin, cost), (_LastSoftmin, cost.float())):  # reference: float32 on the rounded inputs
        c = c.detach().clone().requires_grad_()
        f = fn.apply(c, h, eps, -1)
        (f.float() * weights).sum().backward()
        out.append((f.detach().float(), c.grad.float()))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-2, atol=1e-2)  # bf16 outputs
    record_property("max_rel_err_f", f"{_rel(out[0][0], out[1][0]):.1e}")
    record_property("max_rel_err_grad", f"{_rel(out[0][1], out[1][1]):.1e}")
    torch.testing.assert_close(out[0][0], out[1][0], **tol)
    torch.testing.assert_close(out[0][1], out[1][1], **tol)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
def test_fused_masked_mean_pool_compiled_equals_reference(device, tiny, record_property, dtype):
    from model.kernels.pooling import masked_mean_pool_fused
    from model.loss_functions import masked_mean_pool

    b, n, d = (3, 7, 16) if tiny else (10, 236, 4096)  # a paper micro-batch: 20 s = 236 speech tokens, Llama width
    g = torch.Generator().manual_seed(2)
    h = torch.randn(b, n, d, generator=g).to(device, dtype)
    lengths = torch.randint(1, n + 1, (b,), generator=g)
    mask = (torch.arange(n)[None] < lengths[:, None]).to(device)
    h[~mask] = float("nan")  # padded LLM states can be NaN
    got_in, want_in = h.clone().requires_grad_(), h.clone().requires_grad_()
    got, want = masked_mean_pool_fused(got_in, mask), masked_mean_pool(want_in, mask)
    w = torch.randn(b, d, generator=g).to(device)
    (got * w).sum().backward()
    (want * w).sum().backward()
    record_property("max_rel_err", f"{_rel(got, want):.1e}")
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(got_in.grad).all()
    torch.testing.assert_close(got_in.grad, want_in.grad.to(got_in.grad.dtype), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
def test_sinkhorn_divergence_triton_equals_torch(device, tiny, record_property, dtype):
    """The whole eps-scaling solver with every softmin in the kernels vs the torch solver: values and gradients."""
    s = _sizes(tiny)
    g = torch.Generator().manual_seed(3)

    def cloud(length: int):
        x = torch.nn.functional.normalize(torch.randn(s["b"], length, s["d"], generator=g), dim=-1)
        lengths = torch.randint(max(1, length // 3), length + 1, (s["b"],), generator=g)
        mask = torch.arange(length)[None] < lengths[:, None]
        return (x * mask[..., None]).to(device, dtype), mask.to(device)

    x, xm = cloud(s["n"])
    y, ym = cloud(s["m"])
    w = torch.randn(s["b"], s["b"], generator=g).to(device)
    out = {}
    for backend in ("torch", "triton"):
        xx, yy = x.clone().requires_grad_(), y.clone().requires_grad_()
        sim = sinkhorn_divergence_matrix(xx, xm, yy, ym, blur=0.05, scaling=0.5, backend=backend)
        (sim.float() * w).sum().backward()
        out[backend] = (sim.detach().float(), xx.grad.float(), yy.grad.float())
    errs = [_rel(a, b) for a, b in zip(out["triton"], out["torch"])]
    record_property("max_rel_err_S_dx_dy", " / ".join(f"{e:.1e}" for e in errs))
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == torch.float32 else dict(rtol=2e-2, atol=1e-3)
    for got, want in zip(out["triton"], out["torch"]):
        torch.testing.assert_close(got, want, **tol)
