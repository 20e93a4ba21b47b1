#!/usr/bin/env bash
# The frozen-encoder feature cache (python -m train.cache_encoder), one job-array task per part of the shards.
#
#   sbatch --array=0-15 slurm/cache_encoder.sh train/configs/contr-cos-all.yaml data.encoder_cache=/cache/hubert-must-c
#   bash slurm/cache_encoder.sh train/configs/demo.yaml data.encoder_cache=demo_out/encoder_cache   # no Slurm: all shards
#
# Give the training config and the cache directory; train afterwards with the same config and data.encoder_cache.
# Task i of an n-task array builds the shards at positions i, i+n, ...; finished shard files are kept, so a requeued
# or resubmitted array only computes what is missing. Extra options for train.cache_encoder go in CACHE_ARGS
# (e.g. "--dtype bfloat16 --batch-size 32"). Environment: CONFIG, OVERRIDES, VENV, PYTHON (see slurm/lib.sh).
#SBATCH --job-name=speechllm-cache-encoder
#SBATCH --ntasks=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --requeue
##SBATCH --partition=gpu          # your cluster's partition: remove one "#" (or pass --partition=...)
#SBATCH --open-mode=append
#SBATCH --output=%x-%A_%a.out
set -euo pipefail
SPEECHLLM_SCRIPT=${BASH_SOURCE[0]}
REPO=${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$SPEECHLLM_SCRIPT")/.." && pwd)}
# shellcheck source=slurm/lib.sh
source "$REPO/slurm/lib.sh" 2>/dev/null || { echo "cache_encoder.sh: $REPO/slurm/lib.sh missing: sbatch from the repository root" >&2; exit 2; }
speechllm_setup cache_encoder.sh "$@"
[[ -n ${CONFIG:-} ]] || { echo "cache_encoder.sh: give the training config: sbatch --array=0-N slurm/cache_encoder.sh CONFIG data.encoder_cache=DIR" >&2; exit 2; }
part=$(( ${SLURM_ARRAY_TASK_ID:-0} - ${SLURM_ARRAY_TASK_MIN:-0} ))
parts=${SLURM_ARRAY_TASK_COUNT:-1}
echo "cache_encoder.sh: part $part of $parts"
# shellcheck disable=SC2086  # CACHE_ARGS is a space-separated option list on purpose
exec "$PYTHON" -m train.cache_encoder "${SPEECHLLM_ARGS[@]}" --part "$part" --parts "$parts" ${CACHE_ARGS:-}
