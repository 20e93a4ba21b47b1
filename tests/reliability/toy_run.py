"""A real training run in miniature, for fault injection: train.loop.Trainer + train.checkpoint.Checkpointer over a
real DeepSpeed engine (one gloo rank, DS_ACCELERATOR=cpu) on a toy regression whose batches are a pure function of
the step, so an interrupted and resumed run must end with exactly the weights of an uninterrupted one.

    python toy_run.py RUN_DIR --steps N [--every K] [--zero zero2] [--poison 3,4] [--nan-loss 5] [--step-sleep S]
        [--save-delay S]

Prints one JSON line at the end: status ("finished", "preempted" or the error), the final weights' sha256, the step
resumed from, and the skipped-update count. --save-delay holds each checkpoint between DeepSpeed's files and
train_state.json (a slow filesystem; every save after the first), so a test can kill the process mid-save;
--step-sleep slows steps down so a signal lands mid-run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
from train import distributed as tdist  # noqa: E402
from train.checkpoint import CheckpointConfig, Checkpointer  # noqa: E402
from train.engine import EngineConfig, build_engine, deepspeed_config  # noqa: E402
from train.loop import LoopConfig, Trainer  # noqa: E402


class NanGrad(torch.autograd.Function):
    """Identity forward, NaN backward: a finite loss whose gradient is not."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float("nan"))


class Toy(nn.Module):
    stage = "toy"

    def __init__(self, width: int, poisoned: set[int], nan_loss: set[int], step_sleep: float):
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(width, width)
        self.poisoned, self.nan_loss, self.step_sleep = poisoned, nan_loss, step_sleep

    def forward(self, batch):
        time.sleep(self.step_sleep)
        out = self.layer(batch["x"])
        if batch["step"] in self.poisoned:
            out = NanGrad.apply(out)
        loss = (out - batch["y"]).pow(2).mean()
        if batch["step"] in self.nan_loss:  # what PretrainModule returns for a non-finite loss with nonfinite=skip
            return None, {"loss/total": torch.tensor(float("nan"))}
        return loss, {"loss/total": loss.detach()}

    def pop_timings(self):
        return {}


class StepLoader:
    """Batch s is drawn from a generator seeded with s: the data position is the step, restored from the state."""

    def __init__(self, width: int):
        self.width, self.epoch, self.position = width, 0, 0
        self.cfg = type("Cfg", (), {"sample_rate": 16_000})()

    def __iter__(self):
        while True:
            self.position += 1
            g = torch.Generator().manual_seed(self.position)
            yield {"keys": [f"s{self.position}-{i}" for i in range(2)], "size": 2, "step": self.position,
                   "audio_lengths": torch.tensor([16_000, 16_000]), "x": torch.randn(2, self.width, generator=g),
                   "y": torch.randn(2, self.width, generator=g)}

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = state["position"]


class NoLogger:
    def log_step(self, step, row):
        pass

    def log_eval(self, step, metrics):
        pass


def weights_sha256(model: nn.Module) -> str:
    """Hash of the trainable weights, gathered first under ZeRO-3."""
    params = [p for p in model.parameters()]
    if hasattr(params[0], "ds_id"):
        import deepspeed

        with deepspeed.zero.GatheredParameters(params):
            return weights_sha256_plain(params)
    return weights_sha256_plain(params)


def weights_sha256_plain(params) -> str:
    digest = hashlib.sha256()
    for p in params:
        digest.update(p.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--every", type=int, default=0)
    p.add_argument("--keep-last", type=int, default=0)
    p.add_argument("--zero", default="zero2")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--poison", default="", help="comma list of steps with NaN gradients")
    p.add_argument("--nan-loss", default="", help="comma list of steps whose loss is non-finite (skipped)")
    p.add_argument("--max-skips", type=int, default=3)
    p.add_argument("--step-sleep", type=float, default=0.0)
    p.add_argument("--save-delay", type=float, default=0.0)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    tdist.setup()
    steps_of = lambda text: {int(s) for s in text.split(",") if s}  # noqa: E731
    model = Toy(args.width, steps_of(args.poison), steps_of(args.nan_loss), args.step_sleep)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ds = deepspeed_config(EngineConfig(ds_config=args.zero), micro_batch_size=2, clip_grad_norm=1.0, world_size=1)
    engine = build_engine(model, optimizer, None, ds)
    if args.save_delay:
        save = engine.save_checkpoint

        saves = []

        def slow_save(*a, **kw):
            save(*a, **kw)
            print("saving", flush=True)  # the DeepSpeed files are on disk, train_state.json is not
            if saves:  # the first checkpoint completes normally: there is always an earlier one to fall back to
                time.sleep(args.save_delay)
            saves.append(1)

        engine.save_checkpoint = slow_save
    checkpointer = Checkpointer(args.run_dir, CheckpointConfig(every_steps=args.every, keep_last=args.keep_last))
    loader = StepLoader(args.width)
    trainer = Trainer(LoopConfig(max_steps=args.steps, log_every=1, max_consecutive_skips=args.max_skips), engine,
                      model, loader, args.steps, checkpointer, args.every, NoLogger())
    resumed_from = None
    if (point := checkpointer.find_resume_point()) is not None:
        shared, local = checkpointer.load(engine, point)
        trainer.restore(shared, local)
        resumed_from = trainer.step
    try:
        status = trainer.run()
    except (FloatingPointError, RuntimeError) as exc:
        status = f"{type(exc).__name__}: {exc}"
    print(json.dumps({"status": status, "step": trainer.step, "resumed_from": resumed_from,
                      "weights": weights_sha256(model), "skipped_updates": trainer.skipped_updates,
                      "skipped_micro_batches": trainer.skipped}), flush=True)
    tdist.teardown()


if __name__ == "__main__":
    main()
