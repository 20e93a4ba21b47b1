"""Rank/world discovery and process-group setup: the one place that knows about launchers.

Three ways a process can start, all mapped onto torch.distributed's env:// variables:

* ``torchrun`` / ``deepspeed`` launcher: RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT are already set.
* plain ``srun python -m ...`` (one task per GPU): SLURM_PROCID, SLURM_LOCALID, SLURM_NTASKS; the master is the first
  host of SLURM_JOB_NODELIST (MASTER_ADDR/MASTER_PORT win when present). The batch scripts in slurm/ run torchrun
  per node instead (train/launch.py), which lands in the case above.
* plain ``python -m train.pretrain``: a world of one on localhost with a free port.

Without a GPU, DeepSpeed runs with ``DS_ACCELERATOR=cpu`` and gloo; that variable must be set before DeepSpeed is
first imported, so `setup` sets it before importing it.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

__all__ = ["DistEnv", "discover", "setup", "teardown", "barrier", "all_gather_object", "broadcast_object",
           "all_reduce_max", "all_reduce_sum", "is_main"]


@dataclass(frozen=True)
class DistEnv:
    rank: int
    local_rank: int
    world_size: int
    master_addr: str
    master_port: int
    launcher: str
    """"torchrun", "slurm" or "single"."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _first_slurm_host(env: Mapping[str, str]) -> str:
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        return "127.0.0.1"
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True)
        return out.stdout.split()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        # No scontrol (e.g. inside a container): expand the first entry, "node[01-04,07],gpu5" -> "node01".
        m = re.match(r"([^,\[]*)(?:\[([^,\-\]]*)[^\]]*\]([^,\[]*))?", nodelist)
        return m.group(1) + (m.group(2) or "") + (m.group(3) or "")


def discover(env: dict[str, str] | None = None) -> DistEnv:
    """Reads rank and world from the launcher's environment (see the module docstring)."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistEnv(int(env["RANK"]), int(env.get("LOCAL_RANK", 0)), int(env["WORLD_SIZE"]),
                       env.get("MASTER_ADDR", "127.0.0.1"), int(env.get("MASTER_PORT", 29500)), "torchrun")
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", 1)) > 1:
        port = int(env.get("MASTER_PORT", 20000 + int(env.get("SLURM_JOB_ID", 0)) % 20000))
        return DistEnv(int(env["SLURM_PROCID"]), int(env.get("SLURM_LOCALID", 0)), int(env["SLURM_NTASKS"]),
                       env.get("MASTER_ADDR") or _first_slurm_host(env), port, "slurm")
    return DistEnv(0, 0, 1, "127.0.0.1", int(env.get("MASTER_PORT", 0)) or _free_port(), "single")


def setup(timeout_minutes: float = 30.0) -> DistEnv:
    """Initialises the default process group (NCCL with CUDA, else gloo with ``DS_ACCELERATOR=cpu``).

    Returns:
        The discovered DistEnv; the CUDA device is set to the local rank.
    """
    d = discover()
    cuda = torch.cuda.is_available()
    if not cuda:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.update(RANK=str(d.rank), LOCAL_RANK=str(d.local_rank), WORLD_SIZE=str(d.world_size),
                      MASTER_ADDR=d.master_addr, MASTER_PORT=str(d.master_port))
    if cuda:
        torch.cuda.set_device(d.local_rank % torch.cuda.device_count())
    import deepspeed  # after DS_ACCELERATOR: DeepSpeed picks its accelerator on first import

    if not dist.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo", auto_mpi_discovery=False,
                                   timeout=datetime.timedelta(minutes=timeout_minutes), rank=d.rank,
                                   world_size=d.world_size)
    if d.is_main:
        log.info("distributed: %d rank(s) via %s, master %s:%d, backend %s", d.world_size, d.launcher,
                 d.master_addr, d.master_port, dist.get_backend())
    return d


def teardown() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if _initialized():
        dist.barrier()


def all_gather_object(obj) -> list:
    """Every rank's `obj`, in rank order (a list of one without a process group)."""
    if not _initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, src: int = 0):
    """Rank `src`'s `obj` on every rank."""
    if not _initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_max(value: float) -> float:
    """The maximum of `value` over ranks (used to agree on skipping a step, or on a count)."""
    if not _initialized():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64,
                     device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of a small CPU tensor over ranks (returned on CPU)."""
    if not _initialized():
        return t
    on = t.to("cuda") if dist.get_backend() == "nccl" else t.clone()
    dist.all_reduce(on, op=dist.ReduceOp.SUM)
    return on.cpu()


def is_main() -> bool:
    return not _initialized() or dist.get_rank() == 0
