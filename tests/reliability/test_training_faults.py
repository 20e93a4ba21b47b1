"""Training faults: a finite loss with non-finite gradients skips the update (weights unchanged), is counted and
named, and stops the run after `train.max_consecutive_skips` in a row - on a real DeepSpeed engine, ZeRO 1-3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("nan_grad_probe.py")


def _probe(zero: str, poisoned: list[int], steps: int, clip: float = 1.0) -> tuple[dict, str]:
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(PROBE), zero, str(clip), json.dumps(poisoned), str(steps)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.mark.parametrize("zero", ["zero1", "zero2", "zero3"])
def test_a_nan_gradient_skips_the_update_and_names_the_batch(zero):
    out, log = _probe(zero, poisoned=[3], steps=5)
    weights = [out["initial"]] + [r["weight"] for r in out["rows"]]
    assert out["error"] is None and out["skipped_updates"] == 1 == out["engine_skipped"]
    assert weights[3] == weights[2], "the poisoned step changed the weights"
    assert all(weights[i] != weights[i - 1] for i in (1, 2, 4, 5)), "a healthy step did not train"
    assert [r["skipped_updates"] for r in out["rows"]] == [0, 0, 1, 1, 1]
    assert "non-finite gradient at step 3 (batch ['s3-a', 's3-b']...)" in log


def test_non_finite_gradients_in_a_row_stop_the_run_with_a_message():
    out, _ = _probe("zero2", poisoned=list(range(1, 20)), steps=10)
    assert out["error"].startswith("3 optimizer updates in a row were skipped for non-finite gradients")
    assert all(r["weight"] == out["initial"] for r in out["rows"])  # nothing was applied before it stopped


TOY = Path(__file__).with_name("toy_run.py")


def _toy(run_dir: Path, *extra: str) -> tuple[dict, str]:
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(TOY), str(run_dir), *extra], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_a_non_finite_loss_skips_the_micro_batch_names_it_and_stops_after_too_many(tmp_path):
    """The loop's side of loss.nonfinite=skip (the module returns no loss): the micro-batch is skipped, counted and
    named, the step is made up from the next batch; `max_consecutive_skips` in a row stop the run."""
    out, log = _toy(tmp_path / "one", "--steps", "4", "--nan-loss", "2")
    assert out["status"] == "finished" and out["step"] == 4 and out["skipped_micro_batches"] == 1
    assert "non-finite loss at step 2 (batch ['s2-0', 's2-1']...)" in log
    out, _ = _toy(tmp_path / "many", "--steps", "10", "--nan-loss", "2,3,4,5")
    assert out["status"].startswith("FloatingPointError: 3 micro-batches in a row had a non-finite loss")
