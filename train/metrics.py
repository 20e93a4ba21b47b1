"""Run metrics: JSONL (one row per optimizer step / evaluation) and TensorBoard scalars, written by rank 0.

``run_dir/metrics.jsonl`` and ``run_dir/eval.jsonl`` are the source of truth that `eval.plots` draws from;
``run_dir/tensorboard/`` mirrors them for live viewing (``tensorboard --logdir run_dir``). On resume from step N,
rows after N (written by the run that was killed) are dropped and TensorBoard purges its events after N, so both
show each step once, with the values of the run that continued.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["MetricsLogger", "truncate_jsonl"]


def truncate_jsonl(path: Path, max_step: int) -> int:
    """Keeps the rows with ``step <= max_step`` (and drops a torn last line); returns the rows dropped."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            dropped += 1
            continue
        if row.get("step", 0) <= max_step:
            kept.append(line)
        else:
            dropped += 1
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{line}\n" for line in kept))
    os.replace(tmp, path)
    return dropped


def _clean(value):
    value = float(value)
    return value if math.isfinite(value) else None


class MetricsLogger:
    """Appends metric rows; a no-op on ranks other than 0.

    Args:
        run_dir: the run directory.
        enabled: True on rank 0.
        resume_step: the step training continues from (rows after it are dropped); None for a fresh run.
        tensorboard: also write TensorBoard event files.
    """

    def __init__(self, run_dir: str | Path, enabled: bool, resume_step: int | None = None, tensorboard: bool = True):
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self.writer = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name in ("metrics.jsonl", "eval.jsonl"):
            path = self.run_dir / name
            if resume_step is None:
                path.unlink(missing_ok=True)
            elif dropped := truncate_jsonl(path, resume_step):
                log.info("%s: dropped %d rows after step %d (written after the checkpoint we resume from)",
                         name, dropped, resume_step)
        self._files = {name: open(self.run_dir / name, "a") for name in ("metrics.jsonl", "eval.jsonl")}
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"),
                                        purge_step=None if resume_step is None else resume_step + 1)

    def _write(self, name: str, step: int, values: dict) -> None:
        if not self.enabled:
            return
        row = {"step": step}
        row.update({k: (v if isinstance(v, str) else _clean(v)) for k, v in values.items()})
        f = self._files[name]
        f.write(json.dumps(row) + "\n")
        f.flush()
        if self.writer is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, float):
                    self.writer.add_scalar(k if "/" in k else f"train/{k}", v, step)

    def log_step(self, step: int, values: dict) -> None:
        """One optimizer step's metrics."""
        self._write("metrics.jsonl", step, values)

    def log_eval(self, step: int, values: dict) -> None:
        """One held-out evaluation's metrics (keys already prefixed ``eval/``)."""
        self._write("eval.jsonl", step, values)
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        for f in self._files.values():
            f.close()
        if self.writer is not None:
            self.writer.close()
