"""The listening world of the evaluation tests: mixed ASR / ST / SQA word-tone shards, a tiny LLM taught to read
them (model/tiny_reader.py), and a projector finetuned through `python -m train.finetune` to feed it speech."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from data.prepare import build_from_manifest
from model.tiny import TinyConfig, read_texts, write_tiny_models
from model.tiny_reader import ReadingConfig, read_lessons
from tests.conftest import REPO, make_mixed_task_manifest

FINETUNE_STEPS = 200


def launch(args: list[str], nproc: int = 1, expect: int = 0) -> str:
    """Runs ``python -m <args>`` (under torchrun for nproc > 1) from the repository root; returns its output."""
    prefix = [sys.executable, "-m"] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m"]
    proc = subprocess.run(prefix + args, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == expect, out[-6000:]
    return out


@pytest.fixture(scope="session")
def reader_world(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("reader")
    shards = {}
    for name, n, seed in (("train", 480, 0), ("test", 48, 1)):
        manifest = make_mixed_task_manifest(root / name, n, seed=seed)
        build_from_manifest(manifest, root / f"{name}_shards", max_samples=80, workers=1)
        shards[name] = root / f"{name}_shards"
    manifests = [root / "train" / "manifest.jsonl"]
    # 4 layers: reading is learnt in a minute on CPU; the pretraining tests keep the 11-layer LLM for "all" layers
    models = write_tiny_models(root / "tiny", TinyConfig(vocab_size=300, llm_layers=4,
                                                         reading=ReadingConfig(steps=500)),
                               read_texts(manifests), read_lessons(manifests))
    finetune = root / "finetune"
    config = root / "finetune.yaml"
    config.write_text(yaml.safe_dump({
        "run_dir": str(finetune), "plots": False, "tensorboard": False,
        "data": {"sources": [{"path": str(shards["train"])}], "batch_size": 16, "num_workers": 0,
                 "shuffle_buffer": 64},
        "tasks": {"st_targets": ["de"]},
        "encoder": {"name_or_path": str(models["encoder"])}, "projector": {"kind": "mlp", "mlp_hidden": 256},
        "llm": {"name_or_path": str(models["llm"]), "dtype": "float32"},
        "optim": {"lr": 3.0e-3}, "engine": {"ds_config": "zero1", "grad_accum": 1},
        "train": {"max_steps": FINETUNE_STEPS, "log_every": 50}, "checkpoint": {"every_steps": 100}}))
    launch(["train.finetune", "--config", str(config)])
    evaluation = root / "eval.yaml"
    evaluation.write_text(yaml.safe_dump({
        "test": [{"path": str(shards["test"])}], "tasks": {"st_test_targets": ["de"]},
        "generate": {"batch_size": 16, "max_new_tokens": 12}, "scoring": {"wer_normalizer": "basic"},
        "projector": {"kind": "mlp", "mlp_hidden": 256},
        "contrastive": {"sources": [{"path": str(shards["test"])}], "max_samples": 48, "batch_size": 16}}))
    return {**shards, **models, "root": root, "finetune": finetune, "eval_config": evaluation}


def model_overrides(world: dict) -> list[str]:
    """encoder/llm for runs that have no training config to take them from (a fresh projector)."""
    return [f"encoder.name_or_path={world['encoder']}", f"llm.name_or_path={world['llm']}", "llm.dtype=float32"]


def results_of(out_dir: Path) -> dict:
    from eval.report import load_results

    return load_results(out_dir)


__all__ = ["launch", "reader_world", "model_overrides", "results_of", "FINETUNE_STEPS"]
