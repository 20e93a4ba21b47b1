"""Shared by the end-to-end training tests: the word-tone world (shards + tiny models), configs, launches, and one
trained pretraining run that several test modules inspect or start from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from data.prepare import build_from_manifest
from model.tiny import TinyConfig, read_texts, write_tiny_models
from tests.conftest import REPO, make_word_tone_manifest


@pytest.fixture(scope="session")
def tone_world(tmp_path_factory) -> dict:
    """Word-tone training and held-out shard sets and tiny HuBERT + Llama directories."""
    root = tmp_path_factory.mktemp("tone")
    out = {}
    for name, n, seed in (("train", 320, 0), ("heldout", 48, 1)):
        manifest = make_word_tone_manifest(root / name, n, seed=seed)
        build_from_manifest(manifest, root / f"{name}_shards", max_samples=80, workers=1)
        out[name] = root / f"{name}_shards"
    paths = write_tiny_models(root / "tiny", TinyConfig(vocab_size=300), read_texts([root / "train/manifest.jsonl"]))
    return {**out, **paths, "root": root}


def write_config(world: dict, run_dir: Path, **sections) -> Path:
    cfg = {
        "run_dir": str(run_dir), "plots": False, "tensorboard": False,
        "data": {"sources": [{"path": str(world["train"])}], "batch_size": 8, "num_workers": 1,
                 "shuffle_buffer": 64},
        "heldout": {"sources": [{"path": str(world["heldout"])}], "max_samples": 16, "batch_size": 8,
                    "every_steps": 4},
        "encoder": {"name_or_path": str(world["encoder"])},
        "projector": {"kind": "qformer", "hidden": 32, "heads": 2, "layers": 1, "ffn": 64, "dropout": 0.1},
        "llm": {"name_or_path": str(world["llm"]), "dtype": "float32", "position_shift_max": 50},
        "loss": {"objective": "cos"},
        "optim": {"lr": 3.0e-3},
        "engine": {"ds_config": "zero2", "grad_accum": 2},
        "train": {"max_steps": 10, "log_every": 5},
        "checkpoint": {"every_steps": 2, "keep_last": 2},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            cfg.setdefault(section, {}).update(values)
        else:
            cfg[section] = values
    path = run_dir.parent / f"{run_dir.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def command(config: Path, nproc: int) -> list[str]:
    if nproc == 1:
        return [sys.executable, "-m", "train.pretrain", "--config", str(config)]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "train.pretrain", "--config", str(config)]


def run(config: Path, nproc: int = 1, expect: int = 0) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command(config, nproc), cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == expect, log[-6000:]
    return log


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def projector_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "projector" / "projector.safetensors"))


def assert_same_run(a: Path, b: Path) -> None:
    wa, wb = projector_weights(a), projector_weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"projector tensor {k} differs after resume"
    ra, rb = rows(a / "metrics.jsonl"), rows(b / "metrics.jsonl")
    assert [r["step"] for r in rb] == [r["step"] for r in ra] == list(range(1, len(ra) + 1))
    for x, y in zip(ra, rb):
        for k in x:
            if k.startswith(("loss/", "cos/", "wasser/", "contrastive/")) or k in ("lr", "grad_norm", "samples"):
                assert x[k] == y[k], f"step {x['step']}: {k} {x[k]} != {y[k]}"
    ea, eb = rows(a / "eval.jsonl"), rows(b / "eval.jsonl")
    assert [r["step"] for r in ea] == [r["step"] for r in eb]
    assert [r["eval/r@1/mean"] for r in ea] == [r["eval/r@1/mean"] for r in eb]


@pytest.fixture(scope="session")
def trained(tone_world) -> Path:
    run_dir = tone_world["root"] / "learn"
    config = write_config(tone_world, run_dir, plots=True, tensorboard=True,
                          projector={"kind": "mlp", "mlp_hidden": 128, "dropout": 0.0},
                          llm={"position_shift_max": 0}, engine={"ds_config": "zero1", "grad_accum": 1},
                          data={"batch_size": 16},
                          heldout={"max_samples": 48, "batch_size": 16, "every_steps": 40},
                          train={"max_steps": 120, "log_every": 40}, checkpoint={"every_steps": 60})
    (run_dir / "test-output.log").write_text(run(config))
    return run_dir
