"""torchrun for one node of a job, with the signal handling and exit status the batch scripts rely on.

    python -m train.launch --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint HOST:PORT \\
        --rdzv-id JOB -m train.pretrain --config ...        # what slurm/lib.sh runs on every node (one srun task)

The arguments are torchrun's (`torch.distributed.run`). What this wrapper changes:

* **SIGUSR1 reaches the workers, not the agent's death.** Slurm signals every process of a job step, the torchrun
  agent included; SIGUSR1's default action would kill the agent, and with it workers that are writing their
  preemption checkpoint. The agent gets a no-op handler instead (handlers are reset on exec, so the workers start
  with the default disposition and `train.loop` installs its own), waits for the workers, and reports their status.
* **Exit status.** 75 when the failed workers all exited 75 (preempted after a complete checkpoint): the batch
  script requeues the job. Otherwise one line per failed rank naming it, its node and the exit code or signal
  ("rank 1 (local rank 1 on n2) was killed by signal 9 (SIGKILL)"), so the log says at once which rank died, then
  exit 2 when they all exited 2 (an expected error - a setting, file, model or the data - that rank 0 has named in
  its one ERROR line, core.errors), else 1; `srun --kill-on-bad-exit=1` then stops the other nodes.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from core.errors import EXIT_USER_ERROR, entry_point

__all__ = ["main", "EXIT_PREEMPTED"]

EXIT_PREEMPTED = 75


def describe(rank: int, local_rank: int, exitcode: int, host: str) -> str:
    """One log line for a failed worker."""
    how = (f"was killed by signal {-exitcode} ({signal.Signals(-exitcode).name})" if exitcode < 0
           else f"exited with code {exitcode}")
    return f"train.launch: rank {rank} (local rank {local_rank} on {host}) {how}"


def exit_status(failures: dict) -> int:
    """75 if every failed worker was preempted cleanly, 2 if every one stopped on an expected error, else 1
    (``failures``: rank -> ProcessFailure).

    Workers killed by SIGTERM next to workers that exited on their own are left out: once one worker ends,
    torchrun's agent SIGTERMs the rest, so a rank that was a moment slower to exit 2 (or 75) shows up as killed.
    """
    causes = [f for f in failures.values() if f.exitcode != -signal.SIGTERM] or list(failures.values())
    for status in (EXIT_PREEMPTED, EXIT_USER_ERROR):
        if all(f.exitcode == status for f in causes):
            return status
    return 1


@entry_point
def main(argv: list[str] | None = None) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    signal.signal(signal.SIGUSR1, lambda *_: None)  # the workers checkpoint on it; this process only waits
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run(args)
    except ChildFailedError as e:
        status = exit_status(e.failures)
        if status != EXIT_PREEMPTED:
            host = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
            for rank, failure in sorted(e.failures.items()):
                print(describe(rank, failure.local_rank, failure.exitcode, host), file=sys.stderr, flush=True)
        return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
