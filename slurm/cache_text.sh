#!/usr/bin/env bash
# The frozen-LLM text hidden-state cache (python -m train.cache_text), one job-array task per part of the shards.
#
#   sbatch --array=0-15 slurm/cache_text.sh train/configs/contr-cos-all.yaml data.text_cache=/cache/contr-cos-all
#   bash slurm/cache_text.sh train/configs/demo.yaml data.text_cache=demo_out/text_cache    # no Slurm: all shards
#
# Give the training config and the cache directory; train afterwards with the same config and data.text_cache.
# Task i of an n-task array builds the shards at positions i, i+n, ...; finished shard files are kept, so a requeued
# or resubmitted array only computes what is missing. Extra options for train.cache_text go in CACHE_ARGS
# (e.g. "--dtype float16 --batch-size 64"). Environment: CONFIG, OVERRIDES, VENV, PYTHON (see slurm/lib.sh).
#SBATCH --job-name=speechllm-cache-text
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
source "$REPO/slurm/lib.sh" 2>/dev/null || { echo "cache_text.sh: $REPO/slurm/lib.sh missing: sbatch from the repository root" >&2; exit 2; }
speechllm_setup cache_text.sh "$@"
[[ -n ${CONFIG:-} ]] || { echo "cache_text.sh: give the training config: sbatch --array=0-N slurm/cache_text.sh CONFIG data.text_cache=DIR" >&2; exit 2; }
part=$(( ${SLURM_ARRAY_TASK_ID:-0} - ${SLURM_ARRAY_TASK_MIN:-0} ))
parts=${SLURM_ARRAY_TASK_COUNT:-1}
echo "cache_text.sh: part $part of $parts"
# shellcheck disable=SC2086  # CACHE_ARGS is a space-separated option list on purpose
exec "$PYTHON" -m train.cache_text "${SPEECHLLM_ARGS[@]}" --part "$part" --parts "$parts" ${CACHE_ARGS:-}
