"""Optimiser and learning-rate schedule for the projector (paper: AdamW, lr 1e-4, warmup 3 %, cosine, clip 1.0).

We build the torch optimiser and a LambdaLR ourselves and hand both to DeepSpeed (rather than describing them in
the DeepSpeed JSON) so that the schedule is a plain function of the step that tests can check, and so that the
optimiser settings live in one dataclass with the rest of the recipe.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

__all__ = ["OptimConfig", "build_optimizer", "build_scheduler", "lr_factor"]


@dataclass
class OptimConfig:
    lr: float = 1e-4
    """Peak learning rate (paper: 1e-4)."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay on weight matrices (biases, norms and scalars are never decayed)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    eps: float = 1e-8
    """AdamW epsilon."""
    warmup_ratio: float = 0.03
    """Fraction of the total optimizer steps spent warming up linearly from 0 (paper: 0.03)."""
    warmup_steps: int | None = None
    """Warmup length in steps; overrides `warmup_ratio` when set."""
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """Decay after warmup, reaching `min_lr_ratio * lr` when the last step is done."""
    min_lr_ratio: float = 0.0
    """Final learning rate as a fraction of the peak."""
    clip_grad_norm: float = 1.0
    """Clip the global gradient norm to this value (0 disables clipping; paper: 1.0)."""

    def __post_init__(self):
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        self.betas = tuple(float(b) for b in self.betas)
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.schedule not in ("cosine", "linear", "constant"):
            raise ValueError(f"schedule must be cosine, linear or constant, got {self.schedule!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.clip_grad_norm < 0:
            raise ValueError(f"clip_grad_norm must be >= 0 (0 = off), got {self.clip_grad_norm}")

    def warmup_for(self, total_steps: int) -> int:
        """Warmup steps for a run of `total_steps` optimizer steps."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return math.ceil(self.warmup_ratio * total_steps)


def build_optimizer(params: Iterable[nn.Parameter] | Iterable[tuple[str, nn.Parameter]],
                    cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, weight decay only on tensors with >= 2 dimensions.

    Args:
        params: parameters, or (name, parameter) pairs; frozen ones (requires_grad False) are left out.
        cfg: optimiser settings.
    """
    params = [p[1] if isinstance(p, tuple) else p for p in params]
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters to optimise")
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


def lr_factor(step: int, total_steps: int, cfg: OptimConfig) -> float:
    """Multiplier of the peak lr for the update that follows `step` completed optimizer steps."""
    warmup = cfg.warmup_for(total_steps)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if cfg.schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * shape


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig,
                    total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup then cosine/linear/constant; stepped once per optimizer step (DeepSpeed does it)."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, cfg))
