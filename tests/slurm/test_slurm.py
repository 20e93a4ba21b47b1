"""`sbatch slurm/pretrain.sh` on a real local Slurm (2 fake nodes x 1 CPU rank, tiny models, gloo): a full run, a
preemption signal -> checkpoint -> requeue -> exact resume, and a killed rank that ends the job fast and is named.

The cluster is Debian's slurm-wlm + munge started by tests/slurm/local_slurm.sh (root only; CI runs as root).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, training_rank_pid
from tests.train.conftest import assert_same_run, rows, tone_world, write_config  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
STEPS = 60
SBATCH = ["--nodes=2", "--ntasks-per-node=1", "--gpus-per-node=0", "--cpus-per-task=1", "--time=15"]


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("starting a local Slurm needs root (munge and slurmd run as root)")
    script = REPO / "tests" / "slurm" / "local_slurm.sh"
    proc = subprocess.run(["bash", str(script), "start", "2"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield
    subprocess.run(["scancel", "--user=root"], capture_output=True)
    subprocess.run(["bash", str(script), "stop"], capture_output=True, timeout=120)


def _config(world: dict, run_dir: Path, steps: int) -> Path:
    return write_config(world, run_dir, heldout={"sources": []}, projector={"kind": "mlp", "mlp_hidden": 64},
                        engine={"ds_config": "zero2", "grad_accum": 1}, data={"batch_size": 8, "num_workers": 0},
                        train={"max_steps": steps, "log_every": 4}, checkpoint={"every_steps": 100, "keep_last": 2})


def _sbatch(config: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "LOG_DIR": str(out.parent / "ranks")}
    args = ["sbatch", *SBATCH, f"--output={out}", *extra, "slurm/pretrain.sh", str(config)]
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def _job_id(proc: subprocess.CompletedProcess) -> str:
    match = re.search(r"Submitted batch job (\d+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    return match.group(1)


def _in_queue(job: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout
    return bool(out.strip())


def _wait(predicate, timeout: float, what: str, log: Path | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(1)
    tail = log.read_text()[-4000:] if log is not None and log.is_file() else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")


def _steps(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


@pytest.fixture(scope="module")
def straight(cluster, tone_world) -> Path:  # noqa: F811
    """An uninterrupted 2-node run: what the preempted run must equal."""
    run_dir = tone_world["root"] / "slurm-straight"
    out = run_dir.parent / "slurm-straight.out"
    proc = _sbatch(_config(tone_world, run_dir, STEPS), out, "--wait")
    assert proc.returncode == 0, out.read_text()[-6000:] if out.is_file() else proc.stderr
    return run_dir


def test_sbatch_wait_runs_on_two_nodes(straight):
    log = (straight.parent / "slurm-straight.out").read_text()
    assert "2 node(s) x 1 rank(s)" in log and "rendezvous 127.0.0.1:" in log
    assert [r["step"] for r in rows(straight / "metrics.jsonl")] == list(range(1, STEPS + 1))
    assert (straight / "projector" / "projector.safetensors").is_file()
    assert sorted(p.name for p in (straight / "checkpoints").glob("step_*")) == [f"step_{STEPS:08d}"]
    # torchrun's per-rank logs: one stdout per rank under the per-job log directory
    assert len(list((straight.parent / "ranks").rglob("stdout.log"))) >= 2


def test_preemption_signal_checkpoints_requeues_and_resumes_exactly(straight, tone_world):  # noqa: F811
    run_dir = tone_world["root"] / "slurm-preempted"
    out = run_dir.parent / "slurm-preempted.out"
    job = _job_id(_sbatch(_config(tone_world, run_dir, STEPS), out))
    _wait(lambda: _steps(run_dir) >= 4, 300, "the first steps", out)
    # what Slurm does before the time limit with --signal=B:USR1@600: signal the batch shell
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], check=True)
    _wait(lambda: "requeueing job" in out.read_text(), 180, "the preemption checkpoint and requeue", out)
    _wait(lambda: not _in_queue(job), 600, "the requeued job to finish", out)
    log = out.read_text()
    assert "USR1 received" in log and f"job {job} (restart 1)" in log, log[-6000:]
    resumed = [int(m) for m in re.findall(r"resumed from \S+step_(\d+)", log)]
    assert len(resumed) == 1 and 4 <= resumed[0] < STEPS, log[-6000:]
    assert_same_run(straight, run_dir)  # weights, losses, lr, grad norms: identical to the uninterrupted run


def test_a_killed_rank_fails_the_job_fast_and_is_named(cluster, tone_world):  # noqa: F811
    run_dir = tone_world["root"] / "slurm-killed"
    out = run_dir.parent / "slurm-killed.out"
    job = _job_id(_sbatch(_config(tone_world, run_dir, 100_000), out))
    _wait(lambda: _steps(run_dir) >= 2, 300, "the first steps", out)
    victim = training_rank_pid(run_dir, rank=1)
    os.kill(victim, 9)
    killed_at = time.monotonic()
    _wait(lambda: not _in_queue(job), 120, "the job to fail after a rank was killed", out)
    assert time.monotonic() - killed_at < 120
    log = out.read_text()
    named = r"train\.launch: rank 1 \(local rank 0 on n[12]\) was killed by signal 9 \(SIGKILL\)"
    assert re.search(named, log), log[-6000:]
    assert "job step failed" in log and "requeueing" not in log


def test_scancel_without_requeue_leaves_a_complete_checkpoint(cluster, tone_world):  # noqa: F811
    """`scancel` sends SIGTERM to every process of the job: the ranks checkpoint at the next step and stop, within
    Slurm's KillWait, and nothing requeues."""
    run_dir = tone_world["root"] / "slurm-cancelled"
    out = run_dir.parent / "slurm-cancelled.out"
    job = _job_id(_sbatch(_config(tone_world, run_dir, 100_000), out))
    _wait(lambda: _steps(run_dir) >= 3, 300, "the first steps", out)
    subprocess.run(["scancel", job], check=True)
    _wait(lambda: not _in_queue(job), 120, "the cancelled job to end", out)
    complete = [p for p in (run_dir / "checkpoints").glob("step_*") if (p / "train_state.json").is_file()]
    assert len(complete) == 1 and int(complete[0].name.split("_")[1]) >= 3, out.read_text()[-6000:]
    assert "requeueing" not in out.read_text()


def test_without_slurm_the_script_runs_torchrun_over_local_processes(tone_world):  # noqa: F811
    run_dir = tone_world["root"] / "local-two"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(PYTHON=sys.executable, NPROC_PER_NODE="2", OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", "slurm/pretrain.sh", str(_config(tone_world, run_dir, 4))], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    assert "no Slurm; 2 processes on this machine" in proc.stdout
    assert [r["step"] for r in rows(run_dir / "metrics.jsonl")] == [1, 2, 3, 4]
    state = json.loads((run_dir / "checkpoints" / "step_00000004" / "train_state.json").read_text())
    assert state["world_size"] == 2


def test_prepare_array_builds_one_shard_set_per_task_and_skips_finished_ones(cluster, tmp_path):
    from tests.conftest import make_manifest

    parts = tmp_path / "parts.txt"
    lines = ["# manifest  out"]
    for i in range(2):
        manifest = make_manifest(tmp_path / f"corpus{i}", 6, seed=i, prefix=f"p{i}")
        lines.append(f"{manifest} {tmp_path / f'shards{i}'}")
    parts.write_text("\n".join(lines) + "\n\n")
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(["sbatch", "--wait", "--array=0-1", "--cpus-per-task=1", f"--output={tmp_path}/%A_%a.out",
                           "slurm/prepare.sh", str(parts)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    logs = "".join(p.read_text() for p in tmp_path.glob("*.out"))
    assert proc.returncode == 0, logs[-4000:] + proc.stderr
    for i in range(2):
        index = json.loads((tmp_path / f"shards{i}" / "index.json").read_text())
        assert index["samples"] == 6
    env = {k: v for k, v in env.items() if not k.startswith("SLURM_")}
    again = subprocess.run(["bash", "slurm/prepare.sh", str(parts)], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("is complete (index.json), skipped") == 2, again.stdout


def test_prepare_array_tasks_share_one_corpus_and_the_last_writes_the_index(cluster, tmp_path):
    """`sbatch --array=0-2 slurm/prepare.sh kaldi ...`: three tasks write every third shard of one corpus."""
    import numpy as np
    import soundfile as sf

    data = tmp_path / "kaldi"
    data.mkdir()
    scp, text = [], []
    for i in range(9):
        sf.write(data / f"r{i}.wav", np.full(8000, 0.1, np.float32), 16_000, subtype="PCM_16")
        scp.append(f"r{i} {data / f'r{i}.wav'}")
        text.append(f"r{i} utterance number {i}")
    (data / "wav.scp").write_text("\n".join(scp) + "\n")
    (data / "text").write_text("\n".join(text) + "\n")
    out = tmp_path / "shards"
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(["sbatch", "--wait", "--array=0-2", "--cpus-per-task=1", f"--output={tmp_path}/%A_%a.out",
                           "slurm/prepare.sh", "kaldi", "--root", str(data), "--out", str(out),
                           "--utts-per-shard", "2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    logs = {p.name: p.read_text() for p in sorted(tmp_path.glob("*.out"))}
    assert proc.returncode == 0, "".join(logs.values())[-4000:] + proc.stderr
    index = json.loads((out / "index.json").read_text())
    assert index["samples"] == 9 and len(index["shards"]) == 5
    tasks = sorted(int(m) for log in logs.values() for m in re.findall(r"task (\d)/3 writes", log))
    assert tasks == [0, 1, 2], logs  # each array task planned the same 5 parts and wrote its own share
    report = json.loads((out / "report.json").read_text())
    assert report["samples"] == 9 and report["dropped"] == {}


def test_finetune_then_eval_scripts_on_two_nodes(straight, tone_world):  # noqa: F811
    """slurm/finetune.sh from the pretrained projector, then slurm/eval.sh generating over both nodes' ranks."""
    run_dir = tone_world["root"] / "slurm-finetune"
    config = run_dir.parent / "slurm-finetune.yaml"
    config.write_text(json.dumps({
        "run_dir": str(run_dir), "plots": False, "tensorboard": False,
        "data": {"sources": [{"path": str(tone_world["train"])}], "batch_size": 8, "num_workers": 0},
        "encoder": {"name_or_path": str(tone_world["encoder"])},
        "llm": {"name_or_path": str(tone_world["llm"]), "dtype": "float32"},
        "engine": {"ds_config": "zero2", "grad_accum": 1}, "train": {"max_steps": 4, "log_every": 2},
        "checkpoint": {"every_steps": 100}}))
    out = run_dir.parent / "slurm-finetune.out"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "LOG_DIR": str(out.parent / "ranks"),
           "OVERRIDES": f"init_projector={straight / 'projector'}"}
    proc = subprocess.run(["sbatch", "--wait", *SBATCH, f"--output={out}", "slurm/finetune.sh", str(config)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, out.read_text()[-6000:] if out.is_file() else proc.stderr
    assert f"projector initialised from {straight / 'projector'}" in out.read_text()
    evaluation = run_dir.parent / "slurm-eval.yaml"
    evaluation.write_text(json.dumps({"test": [{"path": str(tone_world["heldout"])}],
                                      "generate": {"batch_size": 8, "max_new_tokens": 4},
                                      "scoring": {"wer_normalizer": "basic"}}))
    out = run_dir.parent / "slurm-eval.out"
    proc = subprocess.run(["sbatch", "--wait", *SBATCH, f"--output={out}", "slurm/eval.sh", str(evaluation),
                           f"checkpoint={run_dir}"], cwd=REPO, env={**env, "OVERRIDES": ""}, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, out.read_text()[-6000:] if out.is_file() else proc.stderr
    results = json.loads((run_dir / "results" / "results.json").read_text())
    assert results["metrics"]["asr/n"] == 48 and "| Model |" in out.read_text()


def test_cache_text_array_splits_the_shards_over_tasks(cluster, tone_world):  # noqa: F811
    """slurm/cache_text.sh as a 2-task job array: each task writes its half of the shard files, together all."""
    run_dir = tone_world["root"] / "slurm-cache"
    config = write_config(tone_world, run_dir, llm={"position_shift_max": 0})
    cache = tone_world["root"] / "text-cache"
    out = tone_world["root"] / "cache-%A_%a.out"
    proc = subprocess.run(["sbatch", "--wait", "--array=0-1", "--gpus-per-node=0", "--cpus-per-task=1",
                           f"--output={out}", "slurm/cache_text.sh", str(config), f"data.text_cache={cache}"],
                          cwd=REPO, env={**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=600)
    logs = "".join(p.read_text() for p in tone_world["root"].glob("cache-*.out"))
    assert proc.returncode == 0, logs[-4000:] + proc.stderr
    assert "part 0 of 2" in logs and "part 1 of 2" in logs
    shards = json.loads((tone_world["train"] / "index.json").read_text())["shards"]
    assert len(list(cache.rglob("*.safetensors"))) == len(shards) == 4
