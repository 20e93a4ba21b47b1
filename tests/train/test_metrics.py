"""Tests for train/metrics.py: truncating JSONL on resume (torn last line included), fresh vs resumed runs,
non-finite values, the disabled logger of ranks != 0, and TensorBoard event files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from train.metrics import MetricsLogger, truncate_jsonl


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write_rows(path: Path, steps, torn: str | None = None) -> None:
    text = "".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in steps)
    path.write_text(text + (torn or ""))


def test_truncate_keeps_rows_up_to_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _write_rows(path, range(1, 11))
    assert truncate_jsonl(path, 6) == 4
    assert [r["step"] for r in _rows(path)] == [1, 2, 3, 4, 5, 6]
    assert path.read_text().endswith("\n")
    assert truncate_jsonl(path, 6) == 0  # idempotent
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]  # no temp file left


def test_truncate_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _write_rows(path, [1, 2, 3], torn='{"step": 4, "lo')  # killed mid-write
    assert truncate_jsonl(path, 100) == 1
    assert [r["step"] for r in _rows(path)] == [1, 2, 3]


def test_truncate_missing_file_and_rows_without_step(tmp_path):
    assert truncate_jsonl(tmp_path / "absent.jsonl", 5) == 0
    assert not (tmp_path / "absent.jsonl").exists()
    path = tmp_path / "eval.jsonl"
    path.write_text('{"note": "header"}\n{"step": 9}\n')
    assert truncate_jsonl(path, 5) == 1
    assert _rows(path) == [{"note": "header"}]


def test_fresh_run_removes_old_files(tmp_path):
    _write_rows(tmp_path / "metrics.jsonl", [1, 2, 3])
    _write_rows(tmp_path / "eval.jsonl", [2])
    log = MetricsLogger(tmp_path, enabled=True, tensorboard=False)
    log.log_step(1, {"loss": 2.5})
    log.close()
    assert _rows(tmp_path / "metrics.jsonl") == [{"step": 1, "loss": 2.5}]
    assert (tmp_path / "eval.jsonl").read_text() == ""


def test_resume_keeps_rows_up_to_resume_step_then_appends(tmp_path):
    _write_rows(tmp_path / "metrics.jsonl", range(1, 9), torn='{"step": 9')
    (tmp_path / "eval.jsonl").write_text('{"step": 4, "eval/r1": 0.1}\n{"step": 8, "eval/r1": 0.2}\n')
    log = MetricsLogger(tmp_path, enabled=True, resume_step=5, tensorboard=False)
    for step in (6, 7):
        log.log_step(step, {"loss": 0.5, "lr": 1e-4})
    log.log_eval(7, {"eval/r1": 0.3})
    log.close()
    rows = _rows(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6, 7]  # each step once, the continued run's values
    assert rows[-1] == {"step": 7, "loss": 0.5, "lr": 1e-4}
    assert _rows(tmp_path / "eval.jsonl") == [{"step": 4, "eval/r1": 0.1}, {"step": 7, "eval/r1": 0.3}]


def test_values_are_cleaned(tmp_path):
    log = MetricsLogger(tmp_path / "run", enabled=True, tensorboard=False)  # creates the run directory
    log.log_step(1, {"loss": float("nan"), "grad_norm": math.inf, "neg": -math.inf, "lr": torch.tensor(3e-4),
                     "samples": np.int64(8), "source": "librispeech"})
    log.close()
    text = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON, readable by any parser
    row = json.loads(text)
    assert row["loss"] is None and row["grad_norm"] is None and row["neg"] is None
    assert row["lr"] == pytest.approx(3e-4) and row["samples"] == 8.0 and row["source"] == "librispeech"


def test_disabled_logger_writes_nothing(tmp_path):
    run = tmp_path / "run"
    log = MetricsLogger(run, enabled=False, resume_step=3)
    log.log_step(1, {"loss": 1.0})
    log.log_eval(1, {"eval/r1": 0.5})
    log.close()
    assert not run.exists()
    _write_rows(tmp_path / "metrics.jsonl", [1, 2, 3, 4, 5])  # rank 1 must not touch rank 0's files
    MetricsLogger(tmp_path, enabled=False).close()
    MetricsLogger(tmp_path, enabled=False, resume_step=2).close()
    assert len(_rows(tmp_path / "metrics.jsonl")) == 5


def test_tensorboard_event_files(tmp_path):
    log = MetricsLogger(tmp_path, enabled=True, tensorboard=True)
    log.log_step(1, {"loss": 1.5, "lr": 1e-4, "source": "x"})
    log.log_eval(1, {"eval/r1": 0.25})
    log.close()
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == {"train/loss", "train/lr", "eval/r1"}
    assert acc.Scalars("train/loss")[0].value == pytest.approx(1.5)
