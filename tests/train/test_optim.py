"""Tests for train/optim.py: OptimConfig validation, the warmup/decay schedule as a function of the step, the
LambdaLR built on it, and the decay / no-decay parameter groups."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from train.optim import OptimConfig, build_optimizer, build_scheduler, lr_factor


@pytest.mark.parametrize(("kw", "match"), [
    ({"lr": 0.0}, "lr must be > 0"),
    ({"lr": -1e-4}, "lr must be > 0"),
    ({"lr": float("nan")}, "lr must be > 0"),
    ({"lr": float("inf")}, "lr must be > 0"),
    ({"weight_decay": -0.1}, "weight_decay"),
    ({"betas": (0.9, 1.0)}, "betas"),
    ({"betas": (-0.1, 0.9)}, "betas"),
    ({"betas": (0.9, 0.99, 0.999)}, "betas"),
    ({"warmup_ratio": 1.0}, "warmup_ratio"),
    ({"warmup_ratio": -0.01}, "warmup_ratio"),
    ({"warmup_steps": -1}, "warmup_steps"),
    ({"schedule": "exponential"}, "schedule"),
    ({"min_lr_ratio": 1.5}, "min_lr_ratio"),
    ({"min_lr_ratio": -0.1}, "min_lr_ratio"),
    ({"clip_grad_norm": -1.0}, "clip_grad_norm"),
])
def test_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        OptimConfig(**kw)


def test_config_defaults_are_the_paper_recipe():
    cfg = OptimConfig(betas=[0.9, 0.95])  # a YAML list becomes a tuple of floats
    assert cfg.betas == (0.9, 0.95) and isinstance(cfg.betas, tuple)
    d = OptimConfig()
    assert (d.lr, d.warmup_ratio, d.schedule, d.clip_grad_norm) == (1e-4, 0.03, "cosine", 1.0)


def test_warmup_length():
    assert OptimConfig().warmup_for(1000) == 30  # 3 % of the run
    assert OptimConfig().warmup_for(10) == 1  # rounded up: a short run still warms up
    assert OptimConfig(warmup_ratio=0.0).warmup_for(1000) == 0
    assert OptimConfig(warmup_ratio=0.5, warmup_steps=7).warmup_for(1000) == 7  # steps override the ratio
    assert OptimConfig(warmup_steps=0).warmup_for(1000) == 0


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
def test_warmup_rises_linearly_from_above_zero_to_one(schedule):
    cfg, total = OptimConfig(schedule=schedule), 1000
    warmup = cfg.warmup_for(total)
    f = [lr_factor(s, total, cfg) for s in range(warmup + 1)]
    assert 0 < f[0] < 0.05  # the first update already moves, but gently
    steps = [b - a for a, b in zip(f, f[1:])]
    assert all(d > 0 for d in steps)
    assert max(steps) - min(steps) < 1e-12  # constant increments, up to and including the first post-warmup step
    assert f[warmup] == pytest.approx(1.0) and f[warmup - 1] == pytest.approx(warmup / (warmup + 1))


def test_no_warmup_starts_at_peak():
    cfg = OptimConfig(warmup_steps=0)
    assert lr_factor(0, 100, cfg) == 1.0


@pytest.mark.parametrize("min_lr_ratio", [0.0, 0.1])
def test_cosine_decays_monotonically_to_min_lr(min_lr_ratio):
    cfg, total = OptimConfig(min_lr_ratio=min_lr_ratio), 200
    warmup = cfg.warmup_for(total)
    f = [lr_factor(s, total, cfg) for s in range(warmup, total + 1)]
    assert f[0] == pytest.approx(1.0)
    assert all(b <= a for a, b in zip(f, f[1:]))
    assert f[-1] == pytest.approx(min_lr_ratio)
    mid = warmup + (total - warmup) // 2  # cosine: half-way down at half the decay span
    assert lr_factor(mid, total, cfg) == pytest.approx(min_lr_ratio + (1 - min_lr_ratio) * 0.5, abs=1e-9)
    assert lr_factor(total + 50, total, cfg) == pytest.approx(min_lr_ratio)  # past the end: stays at the floor


def test_cosine_shape():
    cfg, total = OptimConfig(warmup_steps=0), 100
    for s in (0, 13, 50, 77, 100):
        assert lr_factor(s, total, cfg) == pytest.approx(0.5 * (1 + math.cos(math.pi * s / total)))


def test_linear_schedule():
    cfg, total = OptimConfig(schedule="linear", warmup_steps=10, min_lr_ratio=0.2), 110
    assert lr_factor(10, total, cfg) == pytest.approx(1.0)
    assert lr_factor(60, total, cfg) == pytest.approx(0.2 + 0.8 * 0.5)
    assert lr_factor(110, total, cfg) == pytest.approx(0.2)
    f = [lr_factor(s, total, cfg) for s in range(10, total + 1)]
    diffs = [a - b for a, b in zip(f, f[1:])]
    assert all(d == pytest.approx(0.8 / 100) for d in diffs)


def test_constant_schedule():
    cfg, total = OptimConfig(schedule="constant", warmup_steps=5, min_lr_ratio=0.3), 50
    assert [lr_factor(s, total, cfg) for s in range(5)] == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6])
    assert all(lr_factor(s, total, cfg) == 1.0 for s in range(5, 60))  # min_lr_ratio does not apply


def test_warmup_longer_than_the_run():
    cfg = OptimConfig(warmup_steps=20)
    f = [lr_factor(s, 10, cfg) for s in range(10)]
    assert f == pytest.approx([(s + 1) / 21 for s in range(10)])


def _model() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 3))
    m.temperature = nn.Parameter(torch.tensor(0.07))  # a 0-d scalar, like a learned logit scale
    return m


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
def test_scheduler_follows_lr_factor(schedule):
    cfg, total = OptimConfig(lr=3e-4, warmup_steps=4, schedule=schedule, min_lr_ratio=0.05), 20
    model = _model()
    opt = build_optimizer(model.parameters(), cfg)
    sched = build_scheduler(opt, cfg, total)
    seen = []
    for step in range(total + 1):
        lrs = {g["lr"] for g in opt.param_groups}
        assert len(lrs) == 1  # every group follows the same schedule
        seen.append(lrs.pop())
        assert seen[-1] == pytest.approx(3e-4 * lr_factor(step, total, cfg), rel=1e-12)
        model(torch.randn(2, 4)).sum().backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    assert seen[4] == pytest.approx(3e-4)  # peak right after warmup


def test_scheduler_rejects_empty_run():
    opt = build_optimizer(_model().parameters(), OptimConfig())
    with pytest.raises(ValueError, match="total_steps"):
        build_scheduler(opt, OptimConfig(), 0)


def test_optimizer_groups_decay_matrices_only():
    model = _model()
    cfg = OptimConfig(lr=2e-4, weight_decay=0.1, betas=(0.8, 0.9), eps=1e-6)
    opt = build_optimizer(model.named_parameters(), cfg)  # (name, param) pairs work too
    assert isinstance(opt, torch.optim.AdamW)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(decay["params"]) == ids([model[0].weight, model[2].weight])
    assert ids(no_decay["params"]) == ids([model[0].bias, model[1].weight, model[1].bias, model[2].bias,
                                           model.temperature])
    for g in opt.param_groups:
        assert (g["lr"], g["betas"], g["eps"]) == (2e-4, (0.8, 0.9), 1e-6)


def test_optimizer_skips_frozen_parameters():
    model = _model()
    model[0].requires_grad_(False)
    opt = build_optimizer(model.parameters(), OptimConfig(weight_decay=0.1))
    params = {id(p) for g in opt.param_groups for p in g["params"]}
    assert params == {id(p) for p in model.parameters() if p.requires_grad}
    assert id(model[0].weight) not in params and id(model[0].bias) not in params


def test_optimizer_drops_empty_group():
    vec = nn.Parameter(torch.zeros(5))
    opt = build_optimizer([vec], OptimConfig(weight_decay=0.1))
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["weight_decay"] == 0.0


def test_optimizer_without_trainable_parameters_raises():
    model = _model().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(model.parameters(), OptimConfig())
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer([], OptimConfig())
