"""Cross-rank gather for contrastive negatives: the one place in ``model/`` that touches ``torch.distributed``.

``model/`` knows nothing of launchers, DeepSpeed or Slurm (rank discovery from the environment lives in
``train/distributed.py``); the loss only needs to see every rank's speech and text representations so that each
positive competes against the global batch. This module reads the already-initialised default process group and
does nothing (identity, rank 0 of 1) when there is none, so single-process code and tests need no special casing.

Gradient semantics (why a custom autograd function instead of ``all_gather`` + "replace my slot"): the backward
pass *sums* the gradients that every rank's loss sends to a rank's shard, so each rank receives the full gradient
of the sum of all ranks' losses with respect to its own inputs. With DDP/DeepSpeed averaging the parameter gradients
over ranks, this reproduces single-process gradients exactly for both open_clip loss modes (see
``model/losses.py`` for the rule). The open_clip trick without a gradient-carrying gather drops the terms that other
ranks' losses contribute and is exact only for ``local_loss=False``, up to a factor of the world size.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

__all__ = ["rank_and_world", "gather_with_grad"]

_MAX_DIMS = 8  # length of the shape record exchanged before a gather


def rank_and_world(group: dist.ProcessGroup | None = None) -> tuple[int, int]:
    """Rank and world size of ``group`` (default: the world), or ``(0, 1)`` without an initialised process group.

    Args:
        group: A process group; None means the default (world) group.

    Returns:
        ``(rank, world_size)``.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


class _AllGatherSum(torch.autograd.Function):
    """All-gathers equal-shaped tensors into ``[world, *shape]``; backward sums every rank's gradient of a shard.

    Backward uses ``all_reduce`` (every backend has it; gloo has no reduce-scatter) and keeps this rank's slice:
    twice the traffic of a reduce-scatter, negligible next to the Sinkhorn work it feeds.
    """

    @staticmethod
    def forward(ctx, t: Tensor, group: dist.ProcessGroup | None) -> Tensor:
        ctx.group = group
        ctx.rank = dist.get_rank(group)
        out = [torch.empty_like(t) for _ in range(dist.get_world_size(group))]
        dist.all_gather(out, t, group=group)
        return torch.stack(out)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad[ctx.rank], None


def gather_with_grad(t: Tensor, group: dist.ProcessGroup | None = None) -> Tensor:
    """Concatenates ``t`` from every rank along dim 0, differentiably; ranks may hold different shapes.

    Shapes are exchanged first: every dimension except 0 is zero-padded at the end to the largest size over the
    ranks (so a ``[B, L, D]`` state tensor and its ``[B, L]`` bool mask gathered separately stay aligned, padded
    tokens masked out), and each rank contributes exactly its own ``t.shape[0]`` rows in rank order. Gather
    ``torch.tensor([B_local])`` to learn every rank's batch size (and hence this rank's row offset).

    Floating-point inputs keep their autograd graph: this rank's rows of the result are differentiable views of
    ``t``, and in backward every rank's gradient for those rows is summed into ``t.grad`` (see the module docstring).
    Other dtypes (bool masks, int sizes) are gathered without gradient; bools travel as uint8 because not every
    backend reduces or gathers bool.

    Args:
        t: Tensor of at least one dimension on the device the backend expects (CPU for gloo, CUDA for NCCL).
        group: A process group; None means the default (world) group.

    Returns:
        ``[sum of ranks' t.shape[0], *max shape over ranks]``; ``t`` itself when there is no process group or a
        single rank.

    Raises:
        ValueError: Ranks disagree on the number of dimensions (a programming error; raising beats a hang).
    """
    rank, world = rank_and_world(group)
    if world == 1:
        return t
    if t.dim() == 0:
        raise ValueError("gather_with_grad needs a tensor with a batch dimension, got a scalar")
    if t.dim() > _MAX_DIMS:
        raise ValueError(f"gather_with_grad supports up to {_MAX_DIMS} dimensions, got {t.dim()}")
    # Shapes first: one small collective so that ranks with shorter sequences or smaller batches can take part.
    # Fixed length, so that ranks disagreeing on the number of dimensions get an error instead of a hang.
    shape = torch.tensor([t.dim(), *t.shape, *[-1] * (_MAX_DIMS - t.dim())], device=t.device, dtype=torch.long)
    shapes = [torch.empty_like(shape) for _ in range(world)]
    dist.all_gather(shapes, shape, group=group)
    shapes_t = torch.stack(shapes).cpu()
    if (shapes_t[:, 0] != t.dim()).any():
        raise ValueError(f"rank {rank}: ranks gather tensors of different ranks (dims {shapes_t[:, 0].tolist()})")
    sizes = shapes_t[:, 1:1 + t.dim()]
    target = sizes.max(dim=0).values.tolist()

    is_bool = t.dtype == torch.bool
    x = t.to(torch.uint8) if is_bool else t
    # F.pad takes (last_left, last_right, second_last_left, ...); only pad at the end of every dimension.
    pad: list[int] = []
    for have, want in zip(reversed(x.shape), reversed(target)):
        pad += [0, want - have]
    if any(pad):
        x = F.pad(x, pad)
    x = x.contiguous()
    if x.is_floating_point() or x.is_complex():
        stacked = _AllGatherSum.apply(x, group)
    else:
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x, group=group)
        stacked = torch.stack(parts)
    out = torch.cat([stacked[r, : int(sizes[r, 0])] for r in range(world)])
    return out.bool() if is_bool else out
