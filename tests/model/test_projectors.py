"""Projectors: Q-Former windows and masks at odd lengths, padding invariance, batch == single, gradients, MLP/linear
frame stacking, the registry, and the paper configuration's parameter count."""

from __future__ import annotations

import pytest
import torch

from model.projectors import (
    PROJECTORS,
    LinearProjector,
    MLPProjector,
    ProjectorConfig,
    WindowQFormer,
    build_projector,
    stack_frames,
)

IN, OUT, RATE = 24, 40, 50.0
LENGTHS = [1, 16, 17, 18, 34, 35]  # around the 17-frame window edges


def tiny(kind: str = "qformer", **kw):
    torch.manual_seed(0)
    cfg = ProjectorConfig(kind=kind, layers=2, heads=4, hidden=32, ffn=64, mlp_hidden=48, **kw)
    return build_projector(cfg, IN, OUT, RATE).eval()


def batch(lengths, seed: int = 0, pad_value: float | None = None):
    g = torch.Generator().manual_seed(seed)
    f = max(lengths)
    feats = torch.randn(len(lengths), f, IN, generator=g) * 3 + 1  # not normalised, like encoder features
    mask = torch.arange(f)[None, :] < torch.tensor(lengths)[:, None]
    if pad_value is not None:
        feats[~mask] = pad_value
    return feats, mask


def test_qformer_windows_and_masks_at_odd_lengths():
    proj = tiny()
    assert isinstance(proj, WindowQFormer) and proj.window == 17
    embeds, mask = proj(*batch(LENGTHS))
    assert embeds.shape == (len(LENGTHS), 3 * 4, OUT) and mask.shape == (len(LENGTHS), 12)
    windows = [1, 1, 1, 2, 2, 3]  # ceil(n / 17)
    assert mask.sum(-1).tolist() == [4 * n for n in windows] == [proj.output_length(n) for n in LENGTHS]
    for row, n in zip(mask, windows):  # real windows first, then masked ones, 4 queries each
        assert row.tolist() == [True] * (4 * n) + [False] * (4 * (3 - n))
    assert (embeds[~mask] == 0).all() and embeds[mask].abs().sum(-1).gt(0).all()
    assert torch.isfinite(embeds).all()
    assert proj.output_length(torch.tensor(LENGTHS)).tolist() == [4 * n for n in windows]


def test_window_from_frame_rate_and_seconds():
    def window(seconds: float = 1 / 3, rate: float = 50.0) -> int:
        cfg = ProjectorConfig(window_seconds=seconds, layers=1, heads=1, hidden=8, ffn=8)
        return build_projector(cfg, 8, 8, rate).window

    assert window() == 17 and window(0.2) == 10 and window(rate=25.0) == 8  # round(seconds * rate)
    with pytest.raises(ValueError, match="less than one frame"):
        window(0.001)


@pytest.mark.parametrize("kind", ["qformer", "mlp", "linear"])
def test_padding_invariance(kind):
    proj = tiny(kind)
    e1, m1 = proj(*batch(LENGTHS, pad_value=0.0))
    e2, m2 = proj(*batch(LENGTHS, pad_value=1e4))
    e3, m3 = proj(*batch(LENGTHS, pad_value=float("nan")))
    assert torch.equal(m1, m2) and torch.equal(m1, m3)
    torch.testing.assert_close(e1, e2, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(e1, e3, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("kind", ["qformer", "mlp", "linear"])
def test_batch_equals_single(kind):
    proj = tiny(kind)
    feats, mask = batch(LENGTHS)
    embeds, out_mask = proj(feats, mask)
    for i, n in enumerate(LENGTHS):
        single, single_mask = proj(feats[i : i + 1, :n], mask[i : i + 1, :n])
        assert single_mask.all() and single.shape[1] == proj.output_length(n) == int(out_mask[i].sum())
        torch.testing.assert_close(embeds[i, : single.shape[1]], single[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["qformer", "mlp", "linear"])
def test_gradients_reach_all_parameters(kind):
    proj = tiny(kind, **({"dropout": 0.1} if kind == "qformer" else {})).train()
    feats, mask = batch(LENGTHS, pad_value=float("nan"))
    embeds, out_mask = proj(feats, mask)
    (embeds[out_mask] ** 2).mean().backward()
    for name, p in proj.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_stack_frames_shapes_and_masks():
    feats, mask = batch([1, 4, 5, 6, 11])  # k = 5: not all divisible
    feats[~mask] = 7.0
    x, m = stack_frames(feats, mask, 5)
    assert x.shape == (5, 3, 5 * IN)
    assert m.sum(-1).tolist() == [1, 1, 1, 2, 3]
    # a partly real group keeps its real frames in order and zeros for the padded ones
    torch.testing.assert_close(x[1, 0, : 4 * IN], feats[1, :4].reshape(-1))
    assert (x[1, 0, 4 * IN :] == 0).all() and (x[0, 0, IN:] == 0).all()
    torch.testing.assert_close(x[4, 1], feats[4, 5:10].reshape(-1))


@pytest.mark.parametrize("kind,cls", [("mlp", MLPProjector), ("linear", LinearProjector)])
def test_mlp_and_linear_shapes(kind, cls):
    proj = tiny(kind, downsample=5)
    assert isinstance(proj, cls)
    lengths = [1, 4, 5, 6, 11, 13]
    embeds, mask = proj(*batch(lengths))
    assert embeds.shape == (len(lengths), 3, OUT)
    assert mask.sum(-1).tolist() == [1, 1, 1, 2, 3, 3] == [proj.output_length(n) for n in lengths]
    assert (embeds[~mask] == 0).all()
    assert proj.tokens_per_second == pytest.approx(10.0)
    in_features = 5 * IN
    first = proj.proj if kind == "linear" else proj.proj[0]
    assert first.in_features == in_features


def test_input_cast_to_projector_dtype():
    proj = tiny()
    feats, mask = batch([20, 30])
    ref, _ = proj(feats.bfloat16().float(), mask)
    out, _ = proj(feats.bfloat16(), mask)  # a bf16 encoder feeding a float32 projector
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref)
    with pytest.raises(ValueError, match="expects features"):
        proj(torch.zeros(2, 30, IN + 1), mask)


def test_registry_and_validation():
    assert set(PROJECTORS) == {"qformer", "mlp", "linear"}
    with pytest.raises(ValueError, match="kind"):
        ProjectorConfig(kind="transformer")
    cfg = ProjectorConfig()
    cfg.kind = "perceiver"  # mutated after validation
    with pytest.raises(ValueError, match="unknown projector kind 'perceiver'"):
        build_projector(cfg, 8, 8, 50.0)
    with pytest.raises(ValueError, match="divisible"):
        ProjectorConfig(hidden=100, heads=12)
    with pytest.raises(ValueError, match="window_seconds"):
        ProjectorConfig(window_seconds=0)
    with pytest.raises(ValueError, match="downsample"):
        ProjectorConfig(downsample=0)
    with pytest.raises(ValueError, match="dropout"):
        ProjectorConfig(dropout=1.0)
    with pytest.raises(ValueError, match="frame_rate"):
        build_projector(ProjectorConfig(), 8, 8, 0.0)


def test_paper_config_parameter_count():
    """HuBERT-large (1024) -> Llama-3.1-8B (4096), BERT-base Q-Former with 4 layers: the paper reports ~42.5M."""
    proj = build_projector(ProjectorConfig(), in_dim=1024, out_dim=4096, frame_rate=50.0)
    n = proj.num_parameters()
    print(f"\npaper Q-Former: {proj.describe()} ({n:,} parameters; paper ~42.5M)")
    assert abs(n - 42.5e6) / 42.5e6 < 0.01
    assert proj.num_parameters(trainable_only=True) == n
    assert "42.54M parameters" in proj.describe() and proj.window == 17
    assert proj.tokens_per_second == pytest.approx(50 / 17 * 4)
