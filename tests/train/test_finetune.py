"""`python -m train.finetune` end to end: from a pretrained projector or from scratch, on mixed ASR/ST/SQA shards."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
import yaml
from safetensors.torch import load_file

from data.prepare import build_from_manifest
from tests.conftest import REPO, make_mixed_task_manifest
from tests.train.conftest import rows


def _config(world: dict, run_dir, sources, **extra) -> list[str]:
    cfg = {"run_dir": str(run_dir), "plots": False, "tensorboard": False,
           "data": {"sources": [{"path": str(s)} for s in sources], "batch_size": 8, "num_workers": 0,
                    "shuffle_buffer": 32},
           "encoder": {"name_or_path": str(world["encoder"])},
           "projector": {"kind": "mlp", "mlp_hidden": 64},
           "llm": {"name_or_path": str(world["llm"]), "dtype": "float32"},
           "optim": {"lr": 3.0e-3}, "engine": {"ds_config": "zero2", "grad_accum": 1},
           "train": {"max_steps": 4, "log_every": 2}, "checkpoint": {"every_steps": 2}}
    for k, v in extra.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and k in cfg else v
    path = run_dir.parent / f"{run_dir.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return [sys.executable, "-m", "train.finetune", "--config", str(path)]


def _run(args) -> str:
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return proc.stdout + proc.stderr


def test_finetune_starts_from_the_pretrained_projector(trained, tone_world):
    run_dir = tone_world["root"] / "finetune-pretrained"
    # the projector section says qformer on purpose: the pretrained projector's own shape (mlp) must win
    log = _run(_config(tone_world, run_dir, [tone_world["train"]], init_projector=str(trained / "projector"),
                       projector={"kind": "qformer"}, data={"subset_fraction": 0.5}))
    assert f"projector initialised from {trained / 'projector'}" in log and "projector settings taken from" in log
    steps = rows(run_dir / "metrics.jsonl")
    assert [r["step"] for r in steps] == [1, 2, 3, 4] and all(r["loss/answer"] > 0 for r in steps)
    before = load_file(str(trained / "projector" / "projector.safetensors"))
    after = load_file(str(run_dir / "projector" / "projector.safetensors"))
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)
    meta = json.loads((run_dir / "projector" / "projector.json").read_text())
    assert meta["projector"]["kind"] == "mlp" and meta["objective"] == "finetune"
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["data"]["subset_fraction"] == 0.5 and saved["projector"]["kind"] == "mlp"


def test_finetune_from_scratch_on_mixed_tasks(tone_world, tmp_path):
    """ST and SQA samples (task fields in their manifests) train together with ASR, from a fresh projector."""
    manifest = make_mixed_task_manifest(tmp_path / "mixed", 24, seed=5)
    build_from_manifest(manifest, tmp_path / "mixed_shards", workers=1)
    run_dir = tmp_path / "scratch"
    log = _run(_config(tone_world, run_dir, [tmp_path / "mixed_shards"], tasks={"st_targets": ["de"]},
                       train={"max_steps": 3}))
    assert "from scratch (no pretraining)" in log
    assert len(rows(run_dir / "metrics.jsonl")) == 3


def test_missing_init_projector_is_a_clear_error(tone_world, tmp_path):
    args = _config(tone_world, tmp_path / "bad", [tone_world["train"]], init_projector=str(tmp_path / "nowhere"))
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "holds no projector.json" in proc.stderr


def test_lora_finetune_checkpoints_resumes_exactly_and_evaluates(tone_world, tmp_path):
    """lora.r > 0: adapters train with the projector, travel in its export, resume exactly from a checkpoint (a
    fresh run started from the step-2 checkpoint ends equal to the uninterrupted 4-step run) and eval.run loads them."""
    from model.lora import EXPORT_PREFIX
    from train.export import load_projector

    lora = {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    full = tmp_path / "lora"
    log = _run(_config(tone_world, full, [tone_world["train"]], lora=lora, checkpoint={"keep_last": 3}))
    assert "LoRA r=4 alpha=8 on q_proj,v_proj" in log
    meta = json.loads((full / "projector" / "projector.json").read_text())
    assert meta["lora"]["r"] == 4 and meta["lora"]["target_modules"] == ["q_proj", "v_proj"]
    final = load_file(str(full / "projector" / "projector.safetensors"))
    adapters = {k: v for k, v in final.items() if k.startswith(EXPORT_PREFIX)}
    layers = yaml.safe_load((tone_world["llm"] / "config.json").read_text())["num_hidden_layers"]
    assert len(adapters) == 2 * 2 * layers
    assert any(k.endswith("lora_B.default.weight") and v.abs().sum() > 0 for k, v in adapters.items())  # B moved
    load_projector(full / "projector")  # the projector alone still loads (adapter keys set aside)

    resumed = tmp_path / "lora-resumed"
    log = _run(_config(tone_world, resumed, [tone_world["train"]], lora=lora,
                       checkpoint={"resume": str(full / "checkpoints" / "step_00000002")}))
    assert "resumed from" in log
    again = load_file(str(resumed / "projector" / "projector.safetensors"))
    assert final.keys() == again.keys() and all(torch.equal(final[k], again[k]) for k in final)

    eval_cfg = tmp_path / "eval.yaml"
    eval_cfg.write_text(yaml.safe_dump({"test": [{"path": str(tone_world["heldout"])}],
                                        "generate": {"batch_size": 4, "max_new_tokens": 6, "max_samples": 4}}))
    proc = subprocess.run([sys.executable, "-m", "eval.run", "--config", str(eval_cfg), "--checkpoint", str(full)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    assert f"LoRA adapters from {full / 'projector'}: {len(adapters)} tensors" in proc.stdout + proc.stderr
    results = json.loads((full / "results" / "results.json").read_text())
    assert results["metrics"]["asr/wer"] is not None
