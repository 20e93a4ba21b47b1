#!/usr/bin/env bash
# Stage 2: multitask finetuning of the projector on ASR, ST and SQA (python -m train.finetune).
#
#   sbatch slurm/finetune.sh train/configs/finetune-demo.yaml [key=value ...]          # from the repository root
#   sbatch --nodes=4 --time=2-00:00:00 --partition=gpu slurm/finetune.sh CONFIG          # header defaults overridden
#   CONFIG=my-finetune.yaml OVERRIDES="init_projector=null data.subset_fraction=0.1" sbatch slurm/finetune.sh
#   bash slurm/finetune.sh train/configs/finetune-demo.yaml                                    # no Slurm: local GPUs or CPU
#
# Environment: CONFIG, RUN_DIR, OVERRIDES, VENV, PYTHON, NPROC_PER_NODE, MASTER_PORT, LOG_DIR (see slurm/lib.sh).
# Ten minutes before the time limit Slurm signals this script (--signal=B:USR1@600); every rank checkpoints at the
# next step boundary, the job requeues itself and resumes from that checkpoint at the exact data position.
#SBATCH --job-name=speechllm-finetune
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=12:00:00
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
source "$REPO/slurm/lib.sh" 2>/dev/null || { echo "finetune.sh: $REPO/slurm/lib.sh missing: sbatch from the repository root" >&2; exit 2; }
speechllm_setup finetune.sh "$@"
[[ -n ${CONFIG:-} ]] || { echo "finetune.sh: give a config: sbatch slurm/finetune.sh CONFIG [key=value ...]" >&2; exit 2; }
speechllm_launch train.finetune
