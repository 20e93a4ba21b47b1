"""DeepSpeed engine over the projector: the JSON files in ds_configs/ plus the numbers the dataclasses own.

``ds_configs/*.json`` hold only what DeepSpeed alone decides (ZeRO stage, offload, precision). Micro-batch size,
gradient accumulation, clipping and the world size are written in by `deepspeed_config`, so a recipe's batch size
is stated once (``data.batch_size``) and cannot disagree with the engine's. The optimiser and the schedule are
ours (train/optim.py) and are handed to DeepSpeed as objects.

The whole training module (encoder, projector, LLM, objective) goes into the engine, but only the trainable
parameters go to the optimiser: at ZeRO-1/2 the frozen weights simply sit on the device, at ZeRO-3 DeepSpeed
partitions them too (an LLM that does not fit one GPU), and the checkpoint excludes them either way.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

__all__ = ["EngineConfig", "resolve_grad_accum", "deepspeed_config", "resolve_ds_config_path", "build_engine",
           "DS_CONFIG_DIR"]

log = logging.getLogger(__name__)

DS_CONFIG_DIR = Path(__file__).resolve().parents[1] / "ds_configs"
# Keys that belong to the training dataclasses; a JSON that sets them would be a second source of truth.
_OWNED_KEYS = ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
               "gradient_clipping", "optimizer", "scheduler")
_PRECISIONS = ("auto", "bf16", "fp16", "fp32")


@dataclass
class EngineConfig:
    ds_config: str = "zero2"
    """DeepSpeed JSON: a name in ds_configs/ (zero1, zero2, zero3, zero2_offload, zero3_offload) or a path."""
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """Compute precision of the engine: auto = the JSON's setting (bf16) on GPU and fp32 on CPU, where bf16 matmuls
    are slow and the tests compare against fp32 references. bf16 runs on DeepSpeed's CPU accelerator as well (force
    it with "bf16" to check a GPU recipe's precision on CPU; ZeRO-2/3 with exact resume: tests/train/test_bf16.py)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step (paper: 2). Derived from `global_batch_size` when that is set."""
    global_batch_size: int = 0
    """Samples per optimizer step over all ranks, which with `loss.grad_cache` is also the number of contrastive
    candidates each sample competes with, independent of what fits in memory: grad_accum becomes
    global_batch_size / (data.batch_size x ranks), which must be a whole number. 0: data.batch_size x grad_accum x
    ranks."""
    collective_timeout_minutes: float = 30.0
    """How long a rank waits in a collective before failing: a hung or stopped rank then ends the job with a
    "timed out" error instead of holding every GPU until the wall-clock limit. Keep it above the longest pause
    between collectives (checkpoint writes, held-out evaluation)."""

    def __post_init__(self):
        if self.collective_timeout_minutes <= 0:
            raise ValueError(f"collective_timeout_minutes must be > 0, got {self.collective_timeout_minutes}")
        if self.precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {_PRECISIONS}, got {self.precision!r}")
        if self.grad_accum < 1:
            raise ValueError(f"grad_accum must be >= 1, got {self.grad_accum}")
        if self.global_batch_size < 0:
            raise ValueError(f"global_batch_size must be >= 0, got {self.global_batch_size}")
        resolve_ds_config_path(self.ds_config)  # fail at config time, not after the models are loaded


def resolve_grad_accum(cfg: EngineConfig, micro_batch_size: int, world_size: int) -> int:
    """Sets ``cfg.grad_accum`` from ``cfg.global_batch_size`` (when set) for this world size and returns it.

    Raises:
        ValueError: the global batch is not a whole number of micro-batches on every rank.
    """
    if cfg.global_batch_size:
        per_step = micro_batch_size * world_size
        if cfg.global_batch_size % per_step:
            below = cfg.global_batch_size // per_step
            fits = [per_step * k for k in (below, below + 1) if k > 0]
            raise ValueError(f"engine.global_batch_size={cfg.global_batch_size} is not a multiple of data.batch_size "
                             f"x ranks = {micro_batch_size} x {world_size} = {per_step}: use e.g. "
                             f"{' or '.join(map(str, fits))}, or change data.batch_size")
        cfg.grad_accum = cfg.global_batch_size // per_step
    return cfg.grad_accum


def resolve_ds_config_path(name_or_path: str) -> Path:
    """A ds_configs/ name (with or without .json) or an existing path."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.is_file():
        return path
    if len(path.parts) > 1:  # a path, not a bundled name: never fall back to a bundled file of the same name
        raise ValueError(f"DeepSpeed config file {name_or_path!r} does not exist")
    bundled = DS_CONFIG_DIR / (path.name if path.suffix == ".json" else f"{name_or_path}.json")
    if bundled.is_file():
        return bundled
    names = sorted(p.stem for p in DS_CONFIG_DIR.glob("*.json"))
    raise ValueError(f"DeepSpeed config {name_or_path!r} is neither a file nor one of ds_configs/: {names}")


def deepspeed_config(cfg: EngineConfig, micro_batch_size: int, clip_grad_norm: float, world_size: int,
                     cuda: bool | None = None) -> dict:
    """The full DeepSpeed config: the JSON's ZeRO/offload/precision plus batch, accumulation and clipping.

    Args:
        cfg: engine settings (which JSON, precision override, accumulation).
        micro_batch_size: samples per rank per forward (the data config's batch_size).
        clip_grad_norm: global gradient-norm clip (0 = off).
        world_size: number of ranks.
        cuda: whether training runs on GPUs; default: ``torch.cuda.is_available()``.

    Raises:
        ValueError: the JSON sets a key the dataclasses own, or is not valid JSON.
    """
    path = resolve_ds_config_path(cfg.ds_config)
    try:
        base = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    if owned := [k for k in _OWNED_KEYS if k in base]:
        raise ValueError(f"{path} sets {owned}: batch size, accumulation, clipping, optimiser and schedule come "
                         f"from the training config (data.batch_size, engine.grad_accum, optim.*); remove them")
    ds = copy.deepcopy(base)
    cuda = torch.cuda.is_available() if cuda is None else cuda
    precision = cfg.precision
    if precision == "auto":
        json_precision = "bf16" if ds.get("bf16", {}).get("enabled") else (
            "fp16" if ds.get("fp16", {}).get("enabled") else "fp32")
        precision = json_precision if cuda else "fp32"
    ds["bf16"] = {"enabled": precision == "bf16"}
    ds["fp16"] = {"enabled": precision == "fp16", **({"initial_scale_power": 16} if precision == "fp16" else {})}
    if not cuda:  # pinned host memory needs a CUDA driver
        for key in ("offload_optimizer", "offload_param"):
            if key in ds.get("zero_optimization", {}):
                ds["zero_optimization"][key]["pin_memory"] = False
    ds.update(train_micro_batch_size_per_gpu=micro_batch_size, gradient_accumulation_steps=cfg.grad_accum,
              train_batch_size=micro_batch_size * cfg.grad_accum * world_size, gradient_clipping=clip_grad_norm,
              zero_allow_untested_optimizer=True, steps_per_print=10**9, wall_clock_breakdown=False)
    return ds


def zero_stage(ds: dict) -> int:
    return int(ds.get("zero_optimization", {}).get("stage", 0))


def build_engine(module: nn.Module, optimizer: torch.optim.Optimizer, scheduler, ds: dict):
    """Wraps `module` in a DeepSpeed engine that steps `optimizer` (over the trainable parameters only).

    Call after `train.distributed.setup()`. Returns the engine; ``engine.module`` is `module`.
    """
    import deepspeed

    trainable = [p for group in optimizer.param_groups for p in group["params"]]
    engine, *_ = deepspeed.initialize(model=module, optimizer=optimizer, lr_scheduler=scheduler,
                                      model_parameters=trainable, config=ds, dist_init_required=False)
    _exclude_tied_frozen_weights(engine)
    n_train = sum(p.ds_numel if hasattr(p, "ds_numel") else p.numel() for p in trainable)
    log.info("DeepSpeed engine: ZeRO-%d, %s, %d trainable parameters, micro-batch %d x accumulation %d x %d ranks",
             zero_stage(ds), "bf16" if ds["bf16"]["enabled"] else "fp16" if ds["fp16"]["enabled"] else "fp32",
             n_train, ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"],
             ds["train_batch_size"] // (ds["train_micro_batch_size_per_gpu"] * ds["gradient_accumulation_steps"]))
    return engine


def _exclude_tied_frozen_weights(engine) -> None:
    """Make ``save_checkpoint(exclude_frozen_parameters=True)`` leave out tied frozen weights too.

    DeepSpeed drops the frozen names it gets from ``named_parameters()``, which lists a tied tensor once; the
    state dict lists it under every name. A frozen LLM with tied embeddings (Gemma 3: ``lm_head.weight`` is
    ``embed_tokens.weight``) thus put its whole vocabulary matrix into every checkpoint: 671 MB for Gemma 3 270M,
    1.3 GB for Gemma 3 4B, against a few MB of projector.
    """
    module_state_dict = engine.module_state_dict

    def without_frozen(*args, exclude_frozen_parameters: bool = False, **kwargs):
        state = module_state_dict(*args, exclude_frozen_parameters=exclude_frozen_parameters, **kwargs)
        if exclude_frozen_parameters and state is not None:
            prefix = kwargs.get("prefix", "")
            for name, param in engine.module.named_parameters(remove_duplicate=False):
                if not param.requires_grad:
                    state.pop(prefix + name, None)
        return state

    engine.module_state_dict = without_frozen

