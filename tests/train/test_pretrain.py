"""The main job end to end: `python -m train.pretrain` on real shards with tiny real-architecture models.

* learning: on the word-tone language (tests/conftest.py) the training loss falls and held-out speech->text R@1
  rises far above chance, with metrics, TensorBoard, plots, checkpoints and the projector export in place;
* checkpoints hold the trainable parameters only;
* exact resume: a 2-process run under ZeRO-1/2/3 that is killed with SIGKILL mid-run and restarted in a fresh
  process ends with the same projector weights and the same per-step losses as an uninterrupted run (under ZeRO-2/3
  with activation checkpointing in the killed run only, so it also shows that checkpointing changes nothing); a SIGTERM
  (preemption) checkpoints at the next step and exits 75.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import REPO
from tests.train.conftest import assert_same_run, command, projector_weights, rows, run, write_config

EXIT_PREEMPTED = 75


# ------------------------------------------------------------------------------------------------ learning
def test_loss_falls_and_heldout_retrieval_rises_far_above_chance(trained):
    steps = rows(trained / "metrics.jsonl")
    assert len(steps) == 120
    first, last = (sum(r["loss/total"] for r in part) / 10 for part in (steps[:10], steps[-10:]))
    assert last < 0.5 * first, (first, last)
    evals = rows(trained / "eval.jsonl")
    assert [r["step"] for r in evals] == [0, 40, 80, 120]
    chance = evals[0]["eval/chance_r@1"]
    assert chance == pytest.approx(1 / 48)
    assert evals[0]["eval/r@1/mean"] <= 4 * chance  # an untrained projector retrieves at chance
    assert evals[-1]["eval/r@1/mean"] >= max(0.35, 15 * chance), evals[-1]  # it learned the words
    for layer in (0, 5, 10, 11):
        assert evals[-1][f"eval/cos/layer_{layer}"] < evals[0][f"eval/cos/layer_{layer}"]
        assert f"eval/wasser/layer_{layer}" in evals[-1] and f"eval/r@5/layer_{layer}" in evals[-1]


def test_metrics_tensorboard_plots_and_export(trained):
    row = rows(trained / "metrics.jsonl")[-1]
    for key in ("loss/total", "cos/layer_0", "cos/layer_11", "grad_norm", "lr", "audio_hours_per_s", "tokens_per_s",
                "step_time_s", "samples", "audio_hours", "epoch", "time/encoder_s", "time/llm_speech_s",
                "time/backward_s", "time/data_wait_s"):
        assert key in row and row[key] is not None, key
    assert row["samples"] == 120 * 16 and row["lr"] < 1e-5  # cosine decayed to ~0 at the end
    assert list((trained / "tensorboard").glob("events.out.tfevents.*"))
    for png in ("losses.png", "retrieval.png", "embedding_map.png"):
        assert (trained / "plots" / png).stat().st_size > 10_000
    assert sorted(p.name for p in (trained / "eval").glob("*.npz"))[0] == "embeddings_step_00000000.npz"
    from train.export import load_projector

    projector, meta = load_projector(trained / "projector")
    assert meta["step"] == 120 and meta["projector"]["kind"] == "mlp"
    assert (trained / "config.yaml").is_file()
    log = (trained / "test-output.log").read_text()
    curve = log[log.index("learning curve"):].splitlines()[1:6]
    assert curve[0].split()[:3] == ["step", "train", "loss"] and [c.split()[0] for c in curve[1:]] == \
        ["0", "40", "80", "120"]
    assert "step 120/120 | loss" in log and "eval @ step 120" in log  # progress lines


def test_checkpoint_holds_no_frozen_weights(trained, tone_world):
    ckpts = sorted((trained / "checkpoints").glob("step_*"))
    assert [c.name for c in ckpts] == ["step_00000060", "step_00000120"]
    assert (trained / "checkpoints" / "latest").read_text() == "step_00000120"
    state = torch.load(ckpts[-1] / "mp_rank_00_model_states.pt", weights_only=False)
    saved = state["module"]
    assert saved and all(k.startswith("speech_llm.projector.") for k in saved), sorted(saved)[:5]
    exported = load_file(str(ckpts[-1] / "projector.safetensors"))
    assert sum(v.numel() for v in saved.values()) == sum(v.numel() for v in exported.values())
    frozen_bytes = sum(f.stat().st_size for d in ("encoder", "llm") for f in tone_world[d].glob("*.safetensors"))
    ckpt_bytes = sum(f.stat().st_size for f in ckpts[-1].rglob("*") if f.is_file())
    trainable_bytes = 4 * sum(v.numel() for v in exported.values())
    # weights + Adam moments + exported copy + metadata: a few times the projector, far below the frozen models
    assert ckpt_bytes < 6 * trainable_bytes + 200_000 and ckpt_bytes < frozen_bytes / 2, (ckpt_bytes, frozen_bytes)


# ------------------------------------------------------------------------------------------------ exact resume
def _kill_mid_run(config: Path, run_dir: Path, nproc: int, after_step: int) -> None:
    """Starts a run and SIGKILLs its whole process group once metrics.jsonl shows `after_step`."""
    proc = subprocess.Popen(command(config, nproc), cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if metrics.is_file() and any(json.loads(x)["step"] >= after_step
                                         for x in metrics.read_text().splitlines()[-2:] if x.endswith("}")):
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"run ended before the kill: {proc.stderr.read()[-3000:]}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()


@pytest.mark.distributed
@pytest.mark.parametrize("stage,loss", [(1, {"objective": "cos"}),
                                        (2, {"objective": "wasser+asr", "contrastive_weight": 0.5, "blur": 0.5,
                                             "learn_temperature": True}),
                                        (3, {"objective": "cos"})])
def test_two_process_zero_run_killed_and_resumed_is_exact(tone_world, stage, loss):
    root = tone_world["root"] / f"zero{stage}"
    straight, killed = root / "straight", root / "killed"
    root.mkdir()
    sections = {"engine": {"ds_config": f"zero{stage}", "grad_accum": 2}, "loss": loss}
    run(write_config(tone_world, straight, **sections), nproc=2)
    # The killed run recomputes the frozen LLM layers in the backward (ZeRO-3: their partitioned weights gathered
    # again; ZeRO-2: with the ASR term's full forward): the same weights and losses are expected bit for bit.
    checkpointing = {"llm": {"activation_checkpointing": stage > 1}}
    config = write_config(tone_world, killed, **sections, **checkpointing)
    _kill_mid_run(config, killed, nproc=2, after_step=5)
    done = sorted(p.name for p in (killed / "checkpoints").glob("step_*") if (p / "train_state.json").exists())
    assert done and "step_00000010" not in done, done  # killed mid-run, after at least one checkpoint
    log = run(config, nproc=2)
    assert "resumed from" in log
    assert_same_run(straight, killed)
    state = json.loads((killed / "checkpoints/step_00000010/train_state.json").read_text())
    assert len(state["ranks"]) == 2 and state["ranks"][0]["data"]["rank"] == 0
    for states in (killed / "checkpoints/step_00000010").glob("*model_states.pt"):  # ZeRO-3: one per rank
        module = torch.load(states, weights_only=False)["module"]
        assert not [k for k in module if k.startswith(("speech_llm.llm.", "speech_llm.encoder."))], states


def test_sigterm_checkpoints_at_the_next_step_and_resume_is_exact(tone_world):
    root = tone_world["root"] / "preempt"
    straight, stopped = root / "straight", root / "stopped"
    root.mkdir()
    sections = {"checkpoint": {"every_steps": 0}, "train": {"max_steps": 8}}
    run(write_config(tone_world, straight, **sections))
    config = write_config(tone_world, stopped, **sections)
    proc = subprocess.Popen(command(config, 1), cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = stopped / "metrics.jsonl"
    while proc.poll() is None and not (metrics.is_file() and metrics.read_text().count("\n") >= 3):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_PREEMPTED, err[-3000:]
    ckpts = [p.name for p in (stopped / "checkpoints").glob("step_*")]
    assert len(ckpts) == 1 and ckpts[0] != "step_00000008", ckpts
    run(config)
    assert_same_run(straight, stopped)


def test_slurm_script_runs_without_slurm(tone_world):
    """`bash slurm/pretrain.sh CONFIG key=value` outside Slurm: a single-node launch of the same job."""
    run_dir = tone_world["root"] / "script"
    config = write_config(tone_world, run_dir, heldout={"sources": []}, train={"max_steps": 2},
                          checkpoint={"every_steps": 0})
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    proc = subprocess.run(["bash", "slurm/pretrain.sh", str(config), "optim.lr=1e-3"], cwd=REPO, capture_output=True,
                          text=True, env={**env, "PYTHON": sys.executable, "NPROC_PER_NODE": "1"}, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "no Slurm; one process" in proc.stdout
    assert len(rows(run_dir / "metrics.jsonl")) == 2 and rows(run_dir / "metrics.jsonl")[0]["lr"] > 0
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["optim"]["lr"] == 1e-3


@pytest.mark.parametrize("ds_config", ["zero2_offload", "zero3_offload"])
def test_offload_run_resumed_from_an_explicit_checkpoint_is_exact(tone_world, ds_config):
    """CPU-offload variants train, and `checkpoint.resume=PATH` continues another run's checkpoint exactly."""
    root = tone_world["root"] / ds_config
    straight, branch = root / "straight", root / "branch"
    root.mkdir()
    sections = {"engine": {"ds_config": ds_config, "grad_accum": 1}, "train": {"max_steps": 6},
                "checkpoint": {"every_steps": 3, "keep_last": 0}, "heldout": {"every_steps": 3}}
    run(write_config(tone_world, straight, **sections))
    start = straight / "checkpoints" / "step_00000003"
    log = run(write_config(tone_world, branch, **{**sections, "checkpoint": {"every_steps": 3, "resume": str(start)}}))
    assert f"resumed from {start}" in log
    assert "settings differ from the checkpoint's run" in log and "'checkpoint.resume'" in log
    wa, wb = projector_weights(straight), projector_weights(branch)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    later = [r for r in rows(straight / "metrics.jsonl") if r["step"] > 3]
    assert [(r["step"], r["loss/total"]) for r in rows(branch / "metrics.jsonl")] == \
        [(r["step"], r["loss/total"]) for r in later]
