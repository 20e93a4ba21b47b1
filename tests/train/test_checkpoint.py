"""Tests for train/checkpoint.py without DeepSpeed: atomic writes, the RNG state round trip through JSON, finding
the checkpoint to resume from among complete/incomplete step directories, keep-last-K pruning, and `save`/`load`
driven by a stand-in engine that writes and reads a file the way DeepSpeed's save/load_checkpoint would."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from train.checkpoint import (
    STATE_FILE,
    CheckpointConfig,
    Checkpointer,
    rng_state,
    set_rng_state,
    verify,
    write_atomic,
)


def _step_dir(run_dir: Path, step: int, complete: bool = True) -> Path:
    path = run_dir / "checkpoints" / f"step_{step:08d}"
    path.mkdir(parents=True)
    (path / "mp_rank_00_model_states.pt").write_bytes(b"weights")
    if complete:
        (path / STATE_FILE).write_text(json.dumps({"step": step}))
    return path


def _names(ckpt: Checkpointer) -> list[str]:
    return sorted(p.name for p in ckpt.root.iterdir() if p.is_dir())


# ---------------------------------------------------------------------------------------------------- small pieces

def test_write_atomic(tmp_path):
    path = tmp_path / "latest"
    write_atomic(path, "step_00000100")
    assert path.read_text() == "step_00000100"
    write_atomic(path, "step_00000200")  # replaces
    assert path.read_text() == "step_00000200"
    assert [p.name for p in tmp_path.iterdir()] == ["latest"]  # no temp file left behind


def _draws() -> tuple:
    return (torch.rand(4).tolist(), torch.randint(0, 1000, (3,)).tolist(), np.random.rand(3).tolist(),
            float(np.random.standard_normal()), random.random(), random.gauss(0, 1))


def test_rng_state_round_trips_through_json():
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.standard_normal()  # leaves a cached Gaussian in the numpy state
    random.gauss(0, 1)  # and in Python's (gauss_next)
    state = json.loads(json.dumps(rng_state()))  # what train_state.json stores
    expected = _draws()
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    assert _draws() != expected
    set_rng_state(state)
    assert _draws() == expected
    set_rng_state(state)  # restoring twice gives the same draws again
    assert _draws() == expected


def test_checkpoint_config_validation():
    with pytest.raises(ValueError, match="every_steps"):
        CheckpointConfig(every_steps=-1)
    with pytest.raises(ValueError, match="keep_last"):
        CheckpointConfig(keep_last=-1)
    with pytest.raises(ValueError, match="resume"):
        CheckpointConfig(resume="")
    assert CheckpointConfig(every_steps=0, keep_last=0, resume="/some/step_00000100").keep_last == 0


# ---------------------------------------------------------------------------------------------- finding checkpoints

def test_complete_ignores_incomplete_and_foreign_entries(tmp_path):
    ckpt = Checkpointer(tmp_path, CheckpointConfig())
    assert ckpt.complete() == []  # no checkpoints/ directory yet
    _step_dir(tmp_path, 1200)
    _step_dir(tmp_path, 300)
    _step_dir(tmp_path, 1500, complete=False)  # killed while writing
    (ckpt.root / "step_12").mkdir()  # not the 8-digit pattern
    (ckpt.root / "step_12" / STATE_FILE).write_text("{}")
    (ckpt.root / "latest").write_text("step_00001200")
    (ckpt.root / "notes").mkdir()
    assert [p.name for p in ckpt.complete()] == ["step_00000300", "step_00001200"]  # by step, oldest first


def test_auto_resume_picks_newest_complete(tmp_path, caplog):
    ckpt = Checkpointer(tmp_path, CheckpointConfig())
    assert ckpt.find_resume_point() is None
    _step_dir(tmp_path, 100)
    _step_dir(tmp_path, 200)
    _step_dir(tmp_path, 300, complete=False)
    (ckpt.root / "latest").write_text("step_00000200\n")
    assert ckpt.find_resume_point() == ckpt.root / "step_00000200"
    newest = _step_dir(tmp_path, 250)  # complete, but the run died before updating `latest`
    with caplog.at_level(logging.WARNING, logger="train.checkpoint"):
        assert ckpt.find_resume_point() == newest
    assert "step_00000250 is newer than step_00000200" in caplog.text


def test_auto_resume_without_latest_file(tmp_path):
    _step_dir(tmp_path, 7)
    assert Checkpointer(tmp_path, CheckpointConfig()).find_resume_point().name == "step_00000007"


def test_only_incomplete_checkpoints_start_fresh(tmp_path):
    _step_dir(tmp_path, 100, complete=False)
    assert Checkpointer(tmp_path, CheckpointConfig()).find_resume_point() is None
    assert Checkpointer(tmp_path, CheckpointConfig(resume="never")).find_resume_point() is None


def test_resume_never(tmp_path):
    ckpt = Checkpointer(tmp_path, CheckpointConfig(resume="never"))
    assert ckpt.find_resume_point() is None
    _step_dir(tmp_path, 100)
    with pytest.raises(FileExistsError, match="step_00000100.*resume=never"):
        ckpt.find_resume_point()


def test_explicit_resume_path(tmp_path):
    other = tmp_path / "other_run"
    good = _step_dir(other, 40)
    assert Checkpointer(tmp_path, CheckpointConfig(resume=str(good))).find_resume_point() == good
    bad = _step_dir(other, 50, complete=False)
    with pytest.raises(FileNotFoundError, match=f"no {STATE_FILE}"):
        Checkpointer(tmp_path, CheckpointConfig(resume=str(bad))).find_resume_point()
    with pytest.raises(FileNotFoundError):
        Checkpointer(tmp_path, CheckpointConfig(resume=str(tmp_path / "missing"))).find_resume_point()


# ---------------------------------------------------------------------------------------------------------- pruning

def test_prune_keeps_last_k_and_removes_stale_incomplete(tmp_path):
    ckpt = Checkpointer(tmp_path, CheckpointConfig(keep_last=2))
    for step in (100, 200, 300, 400):
        _step_dir(tmp_path, step)
    _step_dir(tmp_path, 150, complete=False)  # stale: older than the newest complete one
    _step_dir(tmp_path, 500, complete=False)  # newer: may still be being written, left alone
    (ckpt.root / "latest").write_text("step_00000400")
    ckpt._prune()
    assert _names(ckpt) == ["step_00000300", "step_00000400", "step_00000500"]
    assert (ckpt.root / "latest").read_text() == "step_00000400"


def test_prune_keep_all(tmp_path):
    ckpt = Checkpointer(tmp_path, CheckpointConfig(keep_last=0))
    for step in (1, 2, 3, 4, 5):
        _step_dir(tmp_path, step)
    _step_dir(tmp_path, 0, complete=False)
    ckpt._prune()
    assert _names(ckpt) == [f"step_{s:08d}" for s in (1, 2, 3, 4, 5)]


def test_prune_without_complete_checkpoints_removes_nothing(tmp_path):
    ckpt = Checkpointer(tmp_path, CheckpointConfig(keep_last=1))
    _step_dir(tmp_path, 10, complete=False)
    ckpt._prune()
    assert _names(ckpt) == ["step_00000010"]


# -------------------------------------------------------------------------------------- save / load, single process

class _FakeEngine:
    """Writes and reads one file per tag, with the keyword arguments DeepSpeed's engine takes."""

    def __init__(self, value: float = 0.0):
        self.value = value
        self.saved_kwargs: dict = {}

    def save_checkpoint(self, save_dir: str, tag: str, **kw) -> None:
        self.saved_kwargs = kw
        (Path(save_dir) / tag).mkdir(parents=True, exist_ok=True)
        (Path(save_dir) / tag / "engine.json").write_text(json.dumps({"value": self.value}))

    def load_checkpoint(self, load_dir: str, tag: str, **kw):
        path = Path(load_dir) / tag / "engine.json"
        if not path.is_file():
            return None, None
        self.value = json.loads(path.read_text())["value"]
        return str(path.parent), {}


class _Module(nn.Module):
    def __init__(self):
        super().__init__()
        self.projector = nn.Linear(3, 2)
        self.frozen = nn.Linear(2, 2).requires_grad_(False)


@pytest.fixture
def single_process(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)


def test_save_writes_state_latest_and_prunes(tmp_path, single_process):
    ckpt = Checkpointer(tmp_path, CheckpointConfig(keep_last=2))
    engine, module = _FakeEngine(), _Module()
    stale = _step_dir(tmp_path, 30, complete=False)  # a leftover of a killed run at the step we are about to save
    (stale / "junk").write_text("x")
    for step in (10, 20, 30):
        engine.value = float(step)
        path = ckpt.save(engine, module, step, shared={"samples": step * 4, "config": {"a": 1}},
                         local={"stream": step}, projector_meta={"step": step})
        assert path == ckpt.root / f"step_{step:08d}"
        assert (ckpt.root / "latest").read_text() == path.name
    assert engine.saved_kwargs == {"save_latest": False, "exclude_frozen_parameters": True}
    assert _names(ckpt) == ["step_00000020", "step_00000030"]
    assert not (ckpt.root / "step_00000030" / "junk").exists()  # the leftover was cleared before writing
    state = json.loads((path / STATE_FILE).read_text())
    files = state.pop("files")
    assert state == {"samples": 120, "config": {"a": 1}, "step": 30, "ranks": [{"stream": 30}]}
    assert set(files) == {"engine.json", "projector.safetensors", "projector.json"}
    assert files["engine.json"][0] == (path / "engine.json").stat().st_size and len(files["engine.json"][1]) == 64
    assert {"projector.safetensors", "projector.json", "engine.json", STATE_FILE} <= {p.name for p in path.iterdir()}
    assert not [p for p in ckpt.root.rglob(".*")]  # no temp files

    fresh = _FakeEngine()
    shared, local = ckpt.load(fresh, ckpt.find_resume_point())
    assert fresh.value == 30.0 and shared["step"] == 30 and local == {"stream": 30}


def test_load_refuses_a_different_world_size(tmp_path, single_process):
    path = _step_dir(tmp_path, 5)
    (path / STATE_FILE).write_text(json.dumps({"step": 5, "ranks": [{}, {}]}))
    with pytest.raises(ValueError, match="written by 2 ranks, this job has 1"):
        Checkpointer(tmp_path, CheckpointConfig()).load(_FakeEngine(), path)


def test_load_reports_a_failed_deepspeed_load(tmp_path, single_process):
    path = _step_dir(tmp_path, 5)
    (path / STATE_FILE).write_text(json.dumps({"step": 5, "ranks": [{}]}))
    with pytest.raises(RuntimeError, match="could not load"):
        Checkpointer(tmp_path, CheckpointConfig()).load(_FakeEngine(), path)  # no engine.json there


def test_resume_falls_back_past_damaged_checkpoints(tmp_path, single_process, caplog):
    ckpt = Checkpointer(tmp_path, CheckpointConfig(keep_last=0))
    engine, module = _FakeEngine(), _Module()
    for step in (10, 20, 30):
        engine.value = float(step)
        ckpt.save(engine, module, step, shared={}, local={}, projector_meta={})
    assert verify(ckpt.root / "step_00000030") is None
    newest = ckpt.root / "step_00000030" / "engine.json"
    newest.write_text(newest.read_text().replace("30", "31"))  # same size, other bytes
    middle = ckpt.root / "step_00000020" / "projector.safetensors"
    middle.write_bytes(middle.read_bytes()[:-10])  # truncated
    with caplog.at_level("ERROR"):
        assert ckpt.find_resume_point() == ckpt.root / "step_00000010"
    assert "step_00000030 is damaged (engine.json does not match its sha256)" in caplog.text
    assert "projector.safetensors has" in caplog.text and "were written" in caplog.text
    with pytest.raises(ValueError, match="is damaged: engine.json does not match"):
        Checkpointer(tmp_path, CheckpointConfig(resume=str(ckpt.root / "step_00000030"))).find_resume_point()
    (ckpt.root / "step_00000010" / "engine.json").unlink()
    with pytest.raises(RuntimeError, match="every checkpoint under .* is damaged"):
        ckpt.find_resume_point()
