"""Process faults: a rank that hangs (SIGSTOP: alive, silent) in a real two-rank pretraining run. With
`engine.collective_timeout_minutes` the other rank's next collective times out, the job exits non-zero within
about that time and the launcher names the rank that failed, instead of holding every GPU until the wall-clock limit.
(A rank that dies outright is tests/slurm/test_slurm.py::test_a_killed_rank_fails_the_job_fast_and_is_named.)"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import REPO, training_rank_pid
from tests.train.conftest import tone_world, write_config  # noqa: F401  (fixture)

TIMEOUT_MINUTES = 0.25


@pytest.mark.distributed
def test_a_hung_rank_times_out_the_job_and_is_reported(tone_world):  # noqa: F811
    run_dir = tone_world["root"] / "hung"
    config = write_config(tone_world, run_dir, engine={"ds_config": "zero2", "grad_accum": 1,
                                                       "collective_timeout_minutes": TIMEOUT_MINUTES},
                          train={"max_steps": 200, "log_every": 1}, checkpoint={"every_steps": 0})
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "train.pretrain", "--config", str(config)], cwd=REPO,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    stopping, timed_out = threading.Event(), threading.Event()

    def read_output():
        for line in proc.stdout:
            lines.append(line)
            if stopping.is_set() and "timed out" in line.lower():  # the config dump names the timeout setting too
                timed_out.set()

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    metrics = run_dir / "metrics.jsonl"
    stopped = None
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if metrics.is_file() and any(json.loads(x)["step"] >= 2 for x in metrics.read_text().splitlines()
                                         if x.endswith("}")):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "".join(lines)[-4000:]
        stopped = training_rank_pid(run_dir, rank=1)
        stopping.set()
        os.kill(stopped, signal.SIGSTOP)
        # A job that hangs instead of failing ends the test here.
        assert timed_out.wait(timeout=240), "no collective timed out:\n" + "".join(lines)[-4000:]
        # The hang is detected. Let the stopped rank run again so it takes torchrun's SIGTERM now, instead of
        # torchrun waiting out its 30 s grace before SIGKILL: that wait is the launcher's, not what is tested.
        os.kill(stopped, signal.SIGCONT)
        proc.wait(timeout=120)
        reader.join(timeout=30)
    finally:
        if stopped is not None:
            for sig in (signal.SIGKILL, signal.SIGCONT):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(stopped, sig)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = "".join(lines)
    assert proc.returncode != 0
    assert "rank 0" in log or "rank 1" in log, log[-4000:]
