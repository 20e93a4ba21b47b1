"""The pretraining loop: micro-batches -> DeepSpeed steps -> metrics, held-out evaluation, checkpoints.

Step boundaries are the only places where the loop evaluates, checkpoints or stops, so a checkpoint always holds
a whole number of optimizer steps, and N steps + resume + N steps replays exactly the same batches, dropout masks
and position shifts as 2N uninterrupted steps (the data position and every RNG are in the checkpoint).

A preemption signal (SIGTERM, SIGUSR1: what Slurm sends before a time limit or requeue) only sets a flag; the
ranks agree on it at the next boundary (one all-reduce), save a checkpoint and return "preempted".
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections import defaultdict
from dataclasses import dataclass

import torch
from tqdm import tqdm

from train import distributed as tdist
from train.checkpoint import Checkpointer, rng_state, set_rng_state
from train.grad_cache import GradCacheStep

__all__ = ["LoopConfig", "Trainer", "STOP_SIGNALS"]

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


@dataclass
class LoopConfig:
    max_steps: int = 0
    """Optimizer steps to train (0: derive from `epochs`)."""
    epochs: float = 5.0
    """Passes over the training data when max_steps is 0 (paper: 5)."""
    log_every: int = 10
    """Print a progress line every N steps (metrics.jsonl and TensorBoard get every step)."""
    profile: bool = False
    """Synchronise the GPU around each stage so the per-stage timings in the metrics are exact."""
    max_consecutive_skips: int = 20
    """With loss.nonfinite=skip: stop when this many micro-batches in a row had a non-finite loss."""

    def __post_init__(self):
        if self.max_steps < 0 or self.epochs < 0:
            raise ValueError(f"max_steps and epochs must be >= 0, got {self.max_steps}, {self.epochs}")
        if self.max_steps == 0 and self.epochs == 0:
            raise ValueError("set train.max_steps or train.epochs (how long to train)")
        if self.log_every < 1 or self.max_consecutive_skips < 1:
            raise ValueError("log_every and max_consecutive_skips must be >= 1")

    def total_steps(self, batches_per_epoch: int, grad_accum: int) -> int:
        if self.max_steps:
            return self.max_steps
        return max(1, math.ceil(self.epochs * batches_per_epoch / grad_accum))


class Trainer:
    """Runs the loop on every rank. All collaborators are built by `train.pretrain`; see `run`."""

    def __init__(self, cfg: LoopConfig, engine, module, loader, total_steps: int, checkpointer: Checkpointer,
                 checkpoint_every: int, logger, evaluator=None, eval_every: int = 0, eval_at_start: bool = True,
                 shared_state: dict | None = None, projector_meta: dict | None = None):
        self.cfg, self.engine, self.module, self.loader = cfg, engine, module, loader
        self.total_steps, self.checkpointer, self.checkpoint_every = total_steps, checkpointer, checkpoint_every
        self.logger, self.evaluator, self.eval_every, self.eval_at_start = logger, evaluator, eval_every, eval_at_start
        self.shared = dict(shared_state or {})
        self.projector_meta = projector_meta or {}
        self.step, self.samples, self.audio_seconds, self.tokens, self.skipped = 0, 0, 0.0, 0, 0
        self.skipped_updates, self._updates_skipped_in_row = 0, 0
        self._engine_skips = int(getattr(engine, "skipped_steps", 0))
        self.last_eval: dict[str, float] = {}
        self._stop = False
        self._rng: dict | None = None
        self.sample_rate = loader.cfg.sample_rate
        objective = getattr(module, "objective", None)
        self.grad_cache = None
        if (engine.gradient_accumulation_steps() > 1 and objective is not None and objective.contrastive is not None
                and objective.cfg.grad_cache):
            self.grad_cache = GradCacheStep(engine, module)

    # ------------------------------------------------------------------------------------------ state
    def state(self) -> tuple[dict, dict]:
        shared = {**self.shared, "samples": self.samples, "audio_hours": self.audio_seconds / 3600,
                  "tokens": self.tokens, "skipped_micro_batches": self.skipped, "skipped_updates": self.skipped_updates,
                  "total_steps": self.total_steps}
        return shared, {"data": self.loader.state_dict(), "rng": rng_state()}

    def restore(self, shared: dict, local: dict) -> None:
        """Counters and data position from a checkpoint; the RNG state is applied in `run`, once the data iterator
        exists."""
        self.step = int(shared["step"])
        self.samples, self.tokens = int(shared["samples"]), int(shared["tokens"])
        self.audio_seconds, self.skipped = float(shared["audio_hours"]) * 3600, int(shared["skipped_micro_batches"])
        self.skipped_updates = int(shared.get("skipped_updates", 0))  # absent in checkpoints of older versions
        self.loader.load_state_dict(local["data"])
        self._rng = local["rng"]

    def save(self) -> None:
        shared, local = self.state()
        self.checkpointer.save(self.engine, self.module, self.step, shared, local,
                               {**self.projector_meta, "step": self.step})

    # ------------------------------------------------------------------------------------------ loop
    def _on_signal(self, signum, _frame) -> None:
        log.warning("received %s: checkpointing at the next step boundary", signal.Signals(signum).name)
        self._stop = True

    def run(self) -> str:
        """Trains to `total_steps`; returns "finished" or "preempted" (checkpoint saved either way)."""
        previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
        try:
            return self._run()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _run(self) -> str:
        self._engine_skips = int(getattr(self.engine, "skipped_steps", 0))  # DeepSpeed restores its own count
        it = iter(self.loader)  # draws nothing from the global RNG (the loader has its own generator)
        if self._rng is not None:  # a resumed run continues the exact stream of dropout masks and position shifts
            set_rng_state(self._rng)
        self.module.train()
        if self.evaluator is not None and self.step == 0 and self.eval_at_start:
            self._evaluate()
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not tdist.is_main(),
                   desc=getattr(self.module, "stage", "train"),
                   unit="step", dynamic_ncols=True, mininterval=2.0)
        saved_at = self.step
        try:
            while self.step < self.total_steps:
                if tdist.all_reduce_max(float(self._stop)):
                    log.warning("stopping at step %d for preemption", self.step)
                    if saved_at != self.step:
                        self.save()
                    return "preempted"
                row = self._train_step(it)
                self.step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss/total']:.3f}", refresh=False)
                self.logger.log_step(self.step, row)
                if self.step % self.cfg.log_every == 0 or self.step == self.total_steps:
                    self._print(row)
                due = self.eval_every and self.step % self.eval_every == 0
                if self.evaluator is not None and (due or self.step == self.total_steps):
                    self._evaluate()
                if self.step == self.total_steps or (self.checkpoint_every and
                                                     self.step % self.checkpoint_every == 0):
                    self.save()
                    saved_at = self.step
        finally:
            bar.close()
        return "finished"

    def _skip(self, keys: list[str], skipped_in_row: int, micro_batches: int = 1) -> None:
        """Counts skipped micro-batches; stops after `max_consecutive_skips` skips in a row."""
        self.skipped += micro_batches
        what = "micro-batch" if micro_batches == 1 else f"global batch ({micro_batches} micro-batches)"
        log.warning("non-finite loss at step %d (batch %s...): %s skipped (%d micro-batches so far)", self.step + 1,
                    keys[:3], what, self.skipped)
        if skipped_in_row >= self.cfg.max_consecutive_skips:
            what = "micro-batches" if micro_batches == 1 else "global batches"
            raise FloatingPointError(f"{skipped_in_row} {what} in a row had a non-finite loss: lower optim.lr, "
                                     f"check the data named above, or use loss.nonfinite=raise to stop at the "
                                     f"first one")

    def _check_update(self, keys: list[str]) -> None:
        """Notices an optimizer update that DeepSpeed skipped: a non-finite gradient norm behind a finite loss (ZeRO
        1-3 check the norm when gradients are clipped, bf16 and fp16 check for overflow; fp16's dynamic loss scaling
        also skips while it finds its scale). The weights are unchanged; counted, logged with the batch's keys, and
        the run stops after `max_consecutive_skips` in a row."""
        now = int(getattr(self.engine, "skipped_steps", 0))
        if now == self._engine_skips:
            self._updates_skipped_in_row = 0
            return
        self._engine_skips = now
        self.skipped_updates += 1
        self._updates_skipped_in_row += 1
        log.warning("non-finite gradient at step %d (batch %s...): the optimizer update was skipped, weights unchanged "
                    "(%d skipped updates so far)", self.step + 1, keys[:3], self.skipped_updates)
        if self._updates_skipped_in_row >= self.cfg.max_consecutive_skips:
            raise FloatingPointError(f"{self._updates_skipped_in_row} optimizer updates in a row were skipped for "
                                     f"non-finite gradients: lower optim.lr or optim.clip_grad_norm, or check the "
                                     f"data named above")

    def _train_step(self, it) -> dict:
        if self.grad_cache is not None:
            return self._global_batch_step(it)
        start = time.perf_counter()
        accum = self.engine.gradient_accumulation_steps()
        lr = self.engine.optimizer.param_groups[0]["lr"]
        sums: dict[str, float] = defaultdict(float)
        counts = torch.zeros(4, dtype=torch.float64)  # samples, audio seconds, speech tokens, text tokens
        waits = backward = optim = 0.0
        done = skipped_in_row = 0
        step_keys: list[str] = []
        while done < accum:
            t = time.perf_counter()
            batch = next(it)
            waits += time.perf_counter() - t
            total, metrics = self.engine(batch)
            if tdist.all_reduce_max(float(total is None)):  # every rank skips together or none does
                skipped_in_row += 1
                self._skip(batch["keys"], skipped_in_row)
                continue
            t = time.perf_counter()
            self.engine.backward(total)
            backward += time.perf_counter() - t
            t = time.perf_counter()
            self.engine.step()
            optim += time.perf_counter() - t
            done += 1
            for k, v in metrics.items():
                if not k.startswith("count/"):
                    sums[k] += float(v) / accum
            counts += self._counts([batch], metrics)
            step_keys += batch["keys"]
        self._check_update(step_keys)
        timings = {"data_wait": waits, "backward": backward, "optimizer": optim}
        return self._step_row(sums, counts, start, lr, timings)

    def _global_batch_step(self, it) -> dict:
        """A step whose micro-batches contrast against each other too (`train.grad_cache`)."""
        start = time.perf_counter()
        lr = self.engine.optimizer.param_groups[0]["lr"]
        waits, skipped_in_row = 0.0, 0
        while True:
            t = time.perf_counter()
            batches = [next(it) for _ in range(self.engine.gradient_accumulation_steps())]
            waits += time.perf_counter() - t
            metrics, timings = self.grad_cache(batches)
            if metrics is not None:
                break
            skipped_in_row += 1
            self._skip([k for b in batches for k in b["keys"]], skipped_in_row, len(batches))
        self._check_update([k for b in batches for k in b["keys"]])
        sums = {k: float(v) for k, v in metrics.items() if not k.startswith("count/")}
        return self._step_row(sums, self._counts(batches, metrics), start, lr, {"data_wait": waits, **timings})

    def _counts(self, batches: list[dict], metrics: dict) -> torch.Tensor:
        """samples, audio seconds, speech tokens, text tokens"""
        return torch.tensor([sum(b["size"] for b in batches),
                             sum(float(b["audio_lengths"].sum()) for b in batches) / self.sample_rate,
                             float(metrics.get("count/speech_tokens", 0)), float(metrics.get("count/text_tokens", 0))],
                            dtype=torch.float64)

    def _step_row(self, sums: dict[str, float], counts: torch.Tensor, start: float, lr: float,
                  timings: dict[str, float]) -> dict:
        """Averages the step's metrics over ranks, adds throughput and timings, updates the counters."""
        keys = sorted(sums)
        packed = torch.cat([torch.tensor([sums[k] for k in keys], dtype=torch.float64), counts])
        packed = tdist.all_reduce_sum(packed)
        world = tdist.discover().world_size
        means = dict(zip(keys, (packed[: len(keys)] / world).tolist()))
        samples, seconds, speech_tokens, text_tokens = packed[len(keys):].tolist()
        self.samples += int(samples)
        self.audio_seconds += seconds
        self.tokens += int(speech_tokens + text_tokens)
        elapsed = time.perf_counter() - start
        grad_norm = self.engine.get_global_grad_norm()
        row = {**means, "lr": lr, "grad_norm": float(grad_norm) if grad_norm is not None else float("nan"),
               "epoch": self.loader.epoch, "samples": self.samples, "audio_hours": self.audio_seconds / 3600,
               "step_time_s": elapsed, "audio_hours_per_s": seconds / 3600 / elapsed,
               "tokens_per_s": (speech_tokens + text_tokens) / elapsed, "skipped_micro_batches": self.skipped,
               "skipped_updates": self.skipped_updates}
        timings = {**timings, **self.module.pop_timings()}
        row.update({f"time/{k}_s": v for k, v in timings.items()})
        return row

    def _print(self, row: dict) -> None:
        if not tdist.is_main():
            return
        layers = _by_layer(row, ("cos/layer_", "wasser/layer_"))
        layers = f" [{layers}]" if layers else ""
        tqdm.write(f"step {self.step}/{self.total_steps} | loss {row['loss/total']:.4f}{layers} | "
                   f"lr {row['lr']:.2e} | grad {row['grad_norm']:.3f} | {row['step_time_s']:.2f} s/step | "
                   f"{row['audio_hours_per_s'] * 3600:.1f} audio s/s ({row['audio_hours_per_s']:.4f} h/s) | "
                   f"{row['tokens_per_s']:.0f} tok/s | data wait {row['time/data_wait_s']:.2f} s")

    def _evaluate(self) -> None:
        metrics = self.evaluator.evaluate(self.module, self.step)
        self.last_eval = metrics
        self.logger.log_eval(self.step, metrics)
        if tdist.is_main():
            r1 = _by_layer(metrics, ("eval/r@1/layer_",))
            kind = "cos" if any(k.startswith("eval/cos/") for k in metrics) else "wasser"
            loss = sum(v for k, v in metrics.items() if k.startswith(f"eval/{kind}/layer_"))
            tqdm.write(f"eval @ step {self.step}: {int(metrics['eval/samples'])} held-out samples | R@1 [{r1}] "
                       f"mean {metrics['eval/r@1/mean']:.3f} (chance {metrics['eval/chance_r@1']:.3f}) | "
                       f"R@5 mean {metrics['eval/r@5/mean']:.3f} | test {kind} loss (sum over layers) {loss:.3f}")


def _by_layer(values: dict, prefixes: tuple[str, ...]) -> str:
    """``L0=.. L5=.. L10=..`` for the keys with one of `prefixes`, in layer order."""
    items = sorted((int(k.rsplit("_", 1)[1]), v) for k, v in values.items() if k.startswith(prefixes))
    return " ".join(f"L{layer}={v:.3f}" for layer, v in items)
