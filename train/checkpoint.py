"""Checkpoints: DeepSpeed state without frozen weights, train_state.json, atomic "latest", keep-last-K, resume.

Layout of ``run_dir/checkpoints/``::

    step_00001200/                  DeepSpeed files (trainable parameters, optimiser, scheduler; per-rank shards)
        projector.safetensors       the projector alone (+ projector.json): finetuning starts from this
        train_state.json            written last: step, samples, audio hours, per-rank data-stream and RNG state,
                                    the resolved config, and the size and sha256 of every other file. A step
                                    directory without it is incomplete.
    latest                          name of the newest complete step directory, replaced atomically

A job killed at any instant leaves either the previous complete checkpoint or the new one; `find_resume_point`
ignores (and the next save removes) an incomplete directory. Writing train_state.json only after a barrier means
every rank's DeepSpeed shard is on disk before the checkpoint counts as complete. A complete checkpoint damaged later
(a truncated or altered file) fails verification against its recorded checksums and resume falls back to the newest
one that verifies. A save that fails (a full disk) removes its partial directory and stops with a message; the
previous checkpoint is untouched, since older checkpoints are only pruned after a newer one is complete.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.errors import UserError
from model.pretrained import sha256_file
from train import distributed as tdist
from train.export import export_projector

__all__ = ["CheckpointConfig", "Checkpointer", "ResumeError", "NoIntactCheckpointError", "rng_state", "set_rng_state",
           "write_atomic", "verify", "STATE_FILE"]

log = logging.getLogger(__name__)

STATE_FILE = "train_state.json"
LATEST = "latest"
_STEP_DIR = re.compile(r"^step_(\d{8})$")


# Refused resumes are expected errors (core.errors: one ERROR line, exit 2). The other two, a checkpoint.resume that
# is no complete checkpoint and checkpoints under run_dir with resume=never, stay FileNotFoundError/FileExistsError,
# which count as expected already.
class ResumeError(UserError, ValueError):
    """checkpoint.resume names a damaged checkpoint, or the checkpoint was written by another number of ranks."""


class NoIntactCheckpointError(UserError, RuntimeError):
    """Every checkpoint under run_dir fails verification."""


@dataclass
class CheckpointConfig:
    every_steps: int = 500
    """Save every N optimizer steps (0 = only at the end and on preemption)."""
    keep_last: int = 3
    """Complete checkpoints to keep (older ones are deleted after a newer one is complete); 0 keeps all."""
    resume: str = "auto"
    """"auto": continue from the newest complete checkpoint in run_dir if there is one; "never": refuse to start
    over an existing checkpoint; or a path to a step directory to resume from."""

    def __post_init__(self):
        if self.every_steps < 0 or self.keep_last < 0:
            raise ValueError(f"every_steps and keep_last must be >= 0, got {self.every_steps}, {self.keep_last}")
        if not self.resume:
            raise ValueError('resume must be "auto", "never" or a checkpoint directory')


def write_atomic(path: Path, text: str) -> None:
    """Write, fsync, rename: readers see the old file or the new one, never a partial one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def rng_state() -> dict:
    """Every RNG the training step can touch (dropout, position shifts), JSON-serialisable."""
    state = {"torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode(),
             "numpy": _jsonable(np.random.get_state()), "python": _jsonable(random.getstate())}
    if torch.cuda.is_available():
        state["cuda"] = [base64.b64encode(s.numpy().tobytes()).decode() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(state["torch"])), dtype=torch.uint8))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8)
                                      for s in state["cuda"]])


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, tuple | list):
        return [_jsonable(v) for v in x]
    return x


def step_of(path: Path) -> int | None:
    m = _STEP_DIR.match(path.name)
    return int(m.group(1)) if m else None


class Checkpointer:
    """Saves and finds checkpoints under ``run_dir/checkpoints``; every rank calls `save` and `load`."""

    def __init__(self, run_dir: str | Path, cfg: CheckpointConfig):
        self.cfg = cfg
        self.root = Path(run_dir) / "checkpoints"

    def complete(self) -> list[Path]:
        """Complete step directories, oldest first."""
        if not self.root.is_dir():
            return []
        dirs = [p for p in self.root.iterdir() if step_of(p) is not None and (p / STATE_FILE).is_file()]
        return sorted(dirs, key=step_of)

    def find_resume_point(self) -> Path | None:
        """The checkpoint to resume from under `cfg.resume` (None: start fresh)."""
        if self.cfg.resume not in ("auto", "never"):
            path = Path(self.cfg.resume)
            if not (path / STATE_FILE).is_file():
                raise FileNotFoundError(f"checkpoint.resume={path} is not a complete checkpoint (no {STATE_FILE}); "
                                        f"point it at a step_XXXXXXXX directory or use resume=auto")
            if problem := verify(path):
                raise ResumeError(f"checkpoint.resume={path} is damaged: {problem}; point it at another checkpoint "
                                  f"or use resume=auto (the newest one that verifies)")
            return path
        done = self.complete()
        if not done:
            return None
        if self.cfg.resume == "never":
            raise FileExistsError(f"{self.root} already holds checkpoints (newest {done[-1].name}) and "
                                  f"checkpoint.resume=never: pick a new run_dir or set checkpoint.resume=auto")
        latest = self.root / LATEST
        named = self.root / latest.read_text().strip() if latest.is_file() else None
        # `latest` can only lag (killed between train_state.json and its update): the newest complete one wins.
        if named is not None and named != done[-1]:
            log.warning("checkpoint %s is newer than %s named by %s; resuming from the newer one", done[-1].name,
                        named.name, latest)
        damaged = []
        for path in reversed(done):
            if not (problem := verify(path)):
                return path
            log.error("checkpoint %s is damaged (%s); trying the one before it", path, problem)
            damaged.append(path.name)
        raise NoIntactCheckpointError(f"every checkpoint under {self.root} is damaged ({', '.join(damaged)}; see the "
                                      f"errors above): restore one from a backup, or set checkpoint.resume to a "
                                      f"directory elsewhere")

    def save(self, engine, module, step: int, shared: dict, local: dict, projector_meta: dict) -> Path:
        """Writes checkpoint `step` (all ranks call this; collective).

        Args:
            engine: the DeepSpeed engine.
            module: the PretrainModule (for the projector export).
            step: optimizer steps done.
            shared: rank-independent state (step, samples, hours, config).
            local: this rank's state (data stream position, RNG); saved per rank.
            projector_meta: written to projector.json beside the exported projector.
        """
        tag = f"step_{step:08d}"
        path = self.root / tag
        if tdist.is_main():
            self.root.mkdir(parents=True, exist_ok=True)
            if path.exists():  # left by a run killed while writing it
                shutil.rmtree(path)
        tdist.barrier()
        try:
            engine.save_checkpoint(str(self.root), tag=tag, save_latest=False, exclude_frozen_parameters=True)
            export_projector(module, path, projector_meta)  # collective under ZeRO-3
        except Exception as exc:  # a full disk surfaces as OSError, or as torch.save's RuntimeError
            shutil.rmtree(path, ignore_errors=True)  # a partial directory must not keep the space
            done = self.complete()
            kept = f"the previous checkpoint {done[-1].name} is intact" if done else "there is no earlier checkpoint"
            free = shutil.disk_usage(self.root).free / 1e6
            raise RuntimeError(f"could not write checkpoint {path} ({type(exc).__name__}: {exc}); {free:.0f} MB are "
                               f"free there - a full disk? {kept}; make room and rerun to resume") from exc
        locals_ = tdist.all_gather_object(local)
        tdist.barrier()  # every rank's shard is on disk
        if tdist.is_main():
            state = {**shared, "step": step, "ranks": locals_, "files": _file_manifest(path)}
            write_atomic(path / STATE_FILE, json.dumps(state))
            write_atomic(self.root / LATEST, tag)
            self._prune()
            log.info("checkpoint %s saved (%.1f MB)", path, _size(path) / 1e6)
        tdist.barrier()
        return path

    def _prune(self) -> None:
        done = self.complete()
        if self.cfg.keep_last:
            for old in done[:-self.cfg.keep_last]:
                shutil.rmtree(old, ignore_errors=True)
        newest = step_of(done[-1]) if done else -1
        for p in self.root.iterdir():  # incomplete leftovers older than the newest complete checkpoint
            s = step_of(p)
            if s is not None and s < newest and not (p / STATE_FILE).is_file():
                shutil.rmtree(p, ignore_errors=True)

    def load(self, engine, path: Path) -> tuple[dict, dict]:
        """Restores engine state from `path`; returns ``(shared state, this rank's local state)``."""
        state = json.loads((path / STATE_FILE).read_text())
        here, saved = tdist.discover(), len(state["ranks"])
        if saved != here.world_size:
            raise ResumeError(f"{path} was written by {saved} ranks, this job has {here.world_size}: exact resume "
                             f"needs the same number of ranks (the data order is split per rank)")
        load_path, _ = engine.load_checkpoint(str(path.parent), tag=path.name, load_module_strict=False,
                                              load_optimizer_states=True, load_lr_scheduler_states=True)
        if load_path is None:
            raise RuntimeError(f"DeepSpeed could not load the checkpoint in {path}")
        return state, state["ranks"][here.rank]


def _file_manifest(path: Path) -> dict[str, list]:
    """``{relative name: [bytes, sha256]}`` of every file of a step directory but train_state.json."""
    return {str(f.relative_to(path)): [f.stat().st_size, sha256_file(f)]
            for f in sorted(path.rglob("*")) if f.is_file() and f.name != STATE_FILE}


def verify(path: Path) -> str | None:
    """None when every file recorded in ``path``'s train_state.json is there with its size and sha256, else what is
    wrong. Checkpoints written before the manifest existed have nothing to check against and pass."""
    try:
        files = json.loads((path / STATE_FILE).read_text()).get("files")
    except (OSError, ValueError) as exc:
        return f"{STATE_FILE} is unreadable ({exc})"
    for name, (size, sha) in (files or {}).items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != size:
            return f"{name} has {file.stat().st_size} bytes, {size} were written"
        if sha256_file(file) != sha:
            return f"{name} does not match its sha256"
    return None


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
