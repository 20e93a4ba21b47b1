#!/usr/bin/env bash
# Evaluation of a checkpoint on the ASR / ST / SQA test sets (python -m eval.run): generation split over every
# rank, results.json + hypotheses + the paper-style table on rank 0.
#
#   sbatch slurm/eval.sh train/configs/eval-demo.yaml checkpoint=runs/finetune [name="contr-cos-all 10%"]
#   CONFIG=eval.yaml OVERRIDES="checkpoint=runs/asr-ft cascade=asr" sbatch slurm/eval.sh   # cascaded baseline
#   bash slurm/eval.sh train/configs/eval-demo.yaml checkpoint=demo_out/runs/finetune     # no Slurm
#
# Environment: CONFIG, RUN_DIR (unused), OVERRIDES, VENV, PYTHON, NPROC_PER_NODE, MASTER_PORT, LOG_DIR
# (see slurm/lib.sh). Evaluation writes no checkpoints: a preempted evaluation is requeued and runs again.
#SBATCH --job-name=speechllm-eval
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=04:00:00
#SBATCH --requeue
##SBATCH --partition=gpu          # your cluster's partition: remove one "#" (or pass --partition=...)
##SBATCH --account=my-project     # where jobs are billed, if your cluster needs it
#SBATCH --open-mode=append
#SBATCH --output=%x-%j.out
set -euo pipefail
SPEECHLLM_SCRIPT=${BASH_SOURCE[0]}
REPO=${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$SPEECHLLM_SCRIPT")/.." && pwd)}
# shellcheck source=slurm/lib.sh
source "$REPO/slurm/lib.sh" 2>/dev/null || { echo "eval.sh: $REPO/slurm/lib.sh missing: sbatch from the repository root" >&2; exit 2; }
speechllm_setup eval.sh "$@"
[[ -n ${CONFIG:-} ]] || { echo "eval.sh: give a config: sbatch slurm/eval.sh CONFIG checkpoint=... [key=value ...]" >&2; exit 2; }
speechllm_launch eval.run
