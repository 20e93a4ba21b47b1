#!/usr/bin/env bash
# Stage 1: contrastive pretraining of the projector (python -m train.pretrain).
#
#   sbatch slurm/pretrain.sh train/configs/contr-cos-all.yaml [key=value ...]          # from the repository root
#   sbatch --nodes=4 --time=2-00:00:00 --partition=gpu slurm/pretrain.sh CONFIG          # header defaults overridden
#   CONFIG=train/configs/contr-wasser-all.yaml RUN_DIR=runs/w1 OVERRIDES="optim.lr=2e-4" sbatch slurm/pretrain.sh
#   bash slurm/pretrain.sh train/configs/demo.yaml                                       # no Slurm: local GPUs or CPU
#
# Environment: CONFIG, RUN_DIR, OVERRIDES, VENV, PYTHON, NPROC_PER_NODE, MASTER_PORT, LOG_DIR (see slurm/lib.sh).
# Ten minutes before the time limit Slurm signals this script (--signal=B:USR1@600); every rank checkpoints at the
# next step boundary, the job requeues itself and resumes from that checkpoint at the exact data position.
#SBATCH --job-name=speechllm-pretrain
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=24:00:00
#SBATCH --signal=B:USR1@600
#SBATCH --requeue
##SBATCH --partition=gpu          # your cluster's partition: remove one "#" (or pass --partition=...)
##SBATCH --account=my-project     # where jobs are billed, if your cluster needs it
#SBATCH --open-mode=append
#SBATCH --output=%x-%j.out
set -euo pipefail
SPEECHLLM_SCRIPT=${BASH_SOURCE[0]}
REPO=${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$SPEECHLLM_SCRIPT")/.." && pwd)}
# shellcheck source=slurm/lib.sh
source "$REPO/slurm/lib.sh" 2>/dev/null || { echo "pretrain.sh: $REPO/slurm/lib.sh missing: sbatch from the repository root" >&2; exit 2; }
speechllm_setup pretrain.sh "$@"
[[ -n ${CONFIG:-} ]] || { echo "pretrain.sh: give a config: sbatch slurm/pretrain.sh CONFIG [key=value ...]" >&2; exit 2; }
speechllm_launch train.pretrain
