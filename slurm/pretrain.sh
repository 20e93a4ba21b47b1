#!/usr/bin/env bash
# Stage 1 pretraining of the projector.
#
#   sbatch slurm/pretrain.sh train/configs/contr-cos-all.yaml [key.sub=value ...]     # on a Slurm cluster
#   bash   slurm/pretrain.sh train/configs/demo.yaml [key.sub=value ...]              # one machine, no Slurm
#
# Under Slurm every task is one rank (one GPU): srun starts them all and train/distributed.py reads SLURM_PROCID,
# SLURM_LOCALID and SLURM_NTASKS; the first node is the rendezvous host. Slurm sends SIGUSR1 five minutes before the
# time limit (--signal); the ranks checkpoint at the next step and exit 75, and this script requeues the job, which
# resumes from that checkpoint. Without Slurm: torchrun over the local GPUs (NPROC=n to choose), or one CPU process.
# Environment: PYTHON (default .venv/bin/python if present), NPROC, MASTER_PORT.
#SBATCH --job-name=speechllm-pretrain
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --signal=USR1@300
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=%x-%j.out
set -euo pipefail

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  exit $([[ $# -lt 1 ]] && echo 2 || echo 0)
fi
REPO=${SLURM_SUBMIT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$REPO"
if [[ -z ${PYTHON:-} ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
CONFIG=$1
shift
[[ -f $CONFIG ]] || { echo "pretrain.sh: config file $CONFIG not found (run from the repository root)" >&2; exit 2; }
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-$(nproc)}}
export TOKENIZERS_PARALLELISM=false

status=0
if [[ -n ${SLURM_JOB_ID:-} ]]; then
  export MASTER_ADDR=${MASTER_ADDR:-$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)}
  export MASTER_PORT=${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 20000))}
  echo "pretrain.sh: job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}), $SLURM_NTASKS ranks on" \
       "$SLURM_JOB_NUM_NODES node(s), master $MASTER_ADDR:$MASTER_PORT"
  srun --kill-on-bad-exit=1 "$PYTHON" -m train.pretrain --config "$CONFIG" "$@" || status=$?
  if [[ $status -eq 75 ]]; then
    echo "pretrain.sh: preempted after a checkpoint; requeueing job $SLURM_JOB_ID"
    scontrol requeue "$SLURM_JOB_ID"
    exit 0
  fi
  exit $status
fi

if [[ -z ${NPROC:-} ]]; then
  NPROC=$("$PYTHON" -c "import torch; print(max(1, torch.cuda.device_count()))")
fi
if [[ $NPROC -eq 1 ]]; then
  echo "pretrain.sh: no Slurm; one process ($PYTHON -m train.pretrain)"
  exec "$PYTHON" -m train.pretrain --config "$CONFIG" "$@"
fi
echo "pretrain.sh: no Slurm; torchrun with $NPROC processes on this machine"
exec "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m train.pretrain --config "$CONFIG" "$@"
