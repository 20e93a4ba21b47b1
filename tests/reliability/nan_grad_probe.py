"""Run as a script (one gloo rank, DS_ACCELERATOR=cpu): train.loop.Trainer over a real DeepSpeed engine on a toy
module whose chosen micro-batches give a finite loss but NaN gradients. Prints one JSON line: the weights after every
step, the counters, and the error if the run stopped.

    python nan_grad_probe.py ZERO_CONFIG CLIP POISONED_STEPS MAX_STEPS
"""

from __future__ import annotations

import json
import logging
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
from toy_run import NanGrad  # noqa: E402  (this directory is on sys.path when run as a script)

from train import distributed as tdist  # noqa: E402
from train.engine import EngineConfig, build_engine, deepspeed_config  # noqa: E402
from train.loop import LoopConfig, Trainer  # noqa: E402


class Toy(nn.Module):
    stage = "toy"

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(4, 1)

    def forward(self, batch):
        out = self.layer(batch["x"])
        if batch["poison"]:
            out = NanGrad.apply(out)
        loss = (out - 1).pow(2).mean()
        return loss, {"loss/total": loss.detach()}

    def pop_timings(self):
        return {}


class Loader:
    """Batches of 2; step s (1-based) is poisoned when listed."""

    def __init__(self, poisoned):
        self.poisoned, self.epoch = set(poisoned), 0
        self.cfg = type("Cfg", (), {"sample_rate": 16_000})()

    def __iter__(self):
        step = 0
        while True:
            step += 1
            yield {"keys": [f"s{step}-a", f"s{step}-b"], "size": 2, "audio_lengths": torch.tensor([16_000, 16_000]),
                   "x": torch.full((2, 4), 0.5), "poison": step in self.poisoned}

    def state_dict(self):
        return {}


def weights() -> list[float]:
    """The layer's weight, gathered first under ZeRO-3 (which keeps only a partition outside forward)."""
    weight = model.layer.weight
    if not hasattr(weight, "ds_id"):
        return weight.detach().flatten().tolist()
    import deepspeed

    with deepspeed.zero.GatheredParameters([weight]):
        return weight.detach().flatten().tolist()


class Quiet:
    def log_step(self, step, row):
        rows.append({"step": step, "weight": weights(),
                     "skipped_updates": row["skipped_updates"], "grad_norm": row["grad_norm"]})

    def log_eval(self, step, metrics):
        pass


class NoCheckpoints:
    def save(self, *args, **kwargs):
        pass


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    zero, clip, poisoned, steps = sys.argv[1], float(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
    tdist.setup()
    rows: list[dict] = []
    model = Toy()
    initial = model.layer.weight.detach().flatten().tolist()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    ds = deepspeed_config(EngineConfig(ds_config=zero), micro_batch_size=2, clip_grad_norm=clip, world_size=1)
    engine = build_engine(model, optimizer, None, ds)
    trainer = Trainer(LoopConfig(max_steps=steps, log_every=1000, max_consecutive_skips=3), engine, model,
                      Loader(poisoned), steps, NoCheckpoints(), 0, Quiet())
    error = None
    try:
        trainer.run()
    except FloatingPointError as exc:
        error = str(exc)
    print(json.dumps({"initial": initial, "rows": rows, "skipped_updates": trainer.skipped_updates,
                      "engine_skipped": engine.skipped_steps, "error": error}))
    tdist.teardown()
