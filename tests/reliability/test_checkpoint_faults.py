"""Checkpoint and restart faults on a real DeepSpeed engine (tests/reliability/toy_run.py): kill -9 in the middle of
a checkpoint write, a full disk (a small tmpfs), a damaged newest checkpoint, ten preemptions in a row and a burst of
signals. Every case ends with the weights of an uninterrupted run: nothing is lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from train.checkpoint import verify

TOY = Path(__file__).with_name("toy_run.py")
ENV = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
STEPS, EVERY = 8, 2


def _args(run_dir: Path, *extra: str, steps: int = STEPS, every: int = EVERY) -> list[str]:
    return [sys.executable, str(TOY), str(run_dir), "--steps", str(steps), "--every", str(every), *extra]


def _run(run_dir: Path, *extra: str, **kw) -> dict:
    proc = subprocess.run(_args(run_dir, *extra, **kw), env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The uninterrupted run: its final weights and the size of one checkpoint."""
    run_dir = tmp_path_factory.mktemp("reference")
    out = _run(run_dir)
    assert out["status"] == "finished" and out["resumed_from"] is None
    out["checkpoint_bytes"] = sum(f.stat().st_size for f in (run_dir / "checkpoints" / "step_00000002").rglob("*"))
    return out


def _steps(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").glob("step_*"))


def test_kill_9_during_a_checkpoint_write_loses_nothing(tmp_path, reference):
    proc = subprocess.Popen(_args(tmp_path, "--save-delay", "30", "--keep-last", "1"), env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    saves = 0
    for line in proc.stdout:  # "saving": DeepSpeed's files of a checkpoint are on disk, train_state.json is not
        saves += line.strip() == "saving"
        if saves == 2:
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    # step 2 complete; step 4 half-written; retention (keep_last=1) did not touch the only complete one.
    assert _steps(tmp_path) == ["step_00000002", "step_00000004"]
    assert verify(tmp_path / "checkpoints" / "step_00000002") is None
    assert not (tmp_path / "checkpoints" / "step_00000004" / "train_state.json").exists()
    out = _run(tmp_path, "--keep-last", "1")
    assert out["resumed_from"] == 2 and out["status"] == "finished"
    assert out["weights"] == reference["weights"]
    assert _steps(tmp_path) == ["step_00000008"]


def test_a_full_disk_stops_with_a_message_and_the_run_resumes_elsewhere(tmp_path, reference):
    disk = tmp_path / "disk"
    disk.mkdir()
    size_kb = int(2.5 * reference["checkpoint_bytes"] / 1024) + 100  # two checkpoints and DeepSpeed's scripts fit
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); the test needs root")
    try:
        out = _run(disk / "run", "--keep-last", "0")
        assert out["status"].startswith("RuntimeError: could not write checkpoint"), out
        assert "a full disk?" in out["status"] and "the previous checkpoint step_00000004 is intact" in out["status"]
        assert _steps(disk / "run") == ["step_00000002", "step_00000004"]  # the partial step 6 was removed
        assert all(verify(disk / "run" / "checkpoints" / s) is None for s in _steps(disk / "run"))
        shutil.copytree(disk / "run", tmp_path / "moved")  # the user makes room: here, a bigger disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    out = _run(tmp_path / "moved", "--keep-last", "0")
    assert out["resumed_from"] == 4 and out["weights"] == reference["weights"]


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path, reference):
    out = _run(tmp_path, "--keep-last", "0")
    assert out["weights"] == reference["weights"]
    (states,) = (tmp_path / "checkpoints" / "step_00000008").glob("*optim_states.pt")
    states.write_bytes(states.read_bytes()[: states.stat().st_size // 2])  # torn by a failing disk
    out = _run(tmp_path, "--keep-last", "0")
    assert out["resumed_from"] == 6 and out["weights"] == reference["weights"]


def _preempt_once(run_dir: Path, signals: int = 1) -> dict:
    """Start the run, send SIGTERM (`signals` times, back to back) once it trains, return its result."""
    proc = subprocess.Popen(_args(run_dir, "--step-sleep", "0.05", steps=40, every=0), env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("step "):  # a step finished: the loop is running
            for _ in range(signals):
                proc.send_signal(signal.SIGTERM)
            break
    lines += proc.stdout.readlines()
    assert proc.wait(timeout=120) == 0, "".join(lines)[-2000:]
    return json.loads(lines[-1])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    """The 40-step run the preemption tests must match."""
    return _run(tmp_path_factory.mktemp("straight40"), steps=40, every=0)


def test_ten_preemptions_in_a_row_end_with_the_uninterrupted_weights(tmp_path, uninterrupted):
    run_dir = tmp_path / "preempted"
    resumed = []
    for _ in range(10):
        out = _preempt_once(run_dir)
        assert out["status"] == "preempted", out
        resumed.append(out["resumed_from"])
        time.sleep(0.1)
    assert resumed[0] is None and all(b > a for a, b in zip(resumed[1:], resumed[2:]))  # progress every time
    out = _run(run_dir, steps=40, every=0)
    assert out["status"] == "finished" and out["weights"] == uninterrupted["weights"]


def test_a_burst_of_signals_checkpoints_once_and_resumes_exactly(tmp_path, uninterrupted):
    out = _preempt_once(tmp_path / "burst", signals=10)
    assert out["status"] == "preempted"
    assert len(_steps(tmp_path / "burst")) == 1
    out = _run(tmp_path / "burst", steps=40, every=0)
    assert out["weights"] == uninterrupted["weights"]
