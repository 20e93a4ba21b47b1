#!/usr/bin/env bash
# Corpora and manifests -> WebDataset shard sets (python -m data.prepare), as a Slurm job array or locally.
#
#   sbatch --array=0-31 slurm/prepare.sh gigaspeech --root /data/GigaSpeech --out shards/gigaspeech-m --subset M
#   bash slurm/prepare.sh librispeech --root /data/LibriSpeech --out shards/ls   # no Slurm: a local process pool
#   sbatch --array=0-$(( $(grep -cv '^\s*\(#\|$\)' parts.txt) - 1 )) slurm/prepare.sh parts.txt
#   bash slurm/prepare.sh parts.txt                       # no Slurm: every line in turn
#
# With a corpus name (see `python -m data.prepare --help`) the array tasks share one corpus: task i writes every
# N-th shard, finished shards are kept when a task is requeued, and the last task to finish writes index.json and
# report.json (data/corpora/writer.py). Each task uses --cpus-per-task worker processes.
#
# parts.txt: one "MANIFEST OUT_DIR" pair per line (blank lines and # comments are skipped); array task i builds
# line i. A shard set whose index.json exists is finished and skipped (OVERWRITE=1 rebuilds it), so a requeued or
# resubmitted array only redoes what is missing (data.prepare writes index.json last).
# Environment: VENV, PYTHON (see slurm/lib.sh), PREPARE_ARGS (extra data.prepare options, e.g. "--max-shard-size
# 1GB"), OVERWRITE.
#SBATCH --job-name=speechllm-prepare
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --requeue
##SBATCH --partition=gpu          # your cluster's partition: remove one "#" (or pass --partition=...)
##SBATCH --account=my-project     # where jobs are billed, if your cluster needs it
#SBATCH --open-mode=append
#SBATCH --output=%x-%A_%a.out
set -euo pipefail
SPEECHLLM_SCRIPT=${BASH_SOURCE[0]}
REPO=${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$SPEECHLLM_SCRIPT")/.." && pwd)}
cd "$REPO"
# shellcheck source=slurm/lib.sh
source "$REPO/slurm/lib.sh" 2>/dev/null || { echo "prepare.sh: $REPO/slurm/lib.sh missing: sbatch from the repository root" >&2; exit 2; }
if [[ $# -eq 0 || $1 == -h || $1 == --help ]]; then
  sed -n '2,16p' "$SPEECHLLM_SCRIPT" | sed 's/^# \{0,1\}//'
  exit $([[ $# -eq 0 ]] && echo 2 || echo 0)
fi
if [[ $# -gt 1 || ! -f $1 ]]; then
  speechllm_env
  echo "prepare.sh: data.prepare $* (array task ${SLURM_ARRAY_TASK_ID:-none} of ${SLURM_ARRAY_TASK_COUNT:-1})"
  exec "$PYTHON" -m data.prepare "$@"
fi
LIST=$1
[[ -f $LIST ]] || { echo "prepare.sh: list $LIST not found" >&2; exit 2; }
speechllm_env
mapfile -t PARTS < <(grep -v '^\s*\(#\|$\)' "$LIST")
if [[ -n ${SLURM_ARRAY_TASK_ID:-} ]]; then
  (( SLURM_ARRAY_TASK_ID < ${#PARTS[@]} )) || {
    echo "prepare.sh: array task $SLURM_ARRAY_TASK_ID but $LIST has ${#PARTS[@]} parts (use --array=0-$(( ${#PARTS[@]} - 1 )))" >&2; exit 2; }
  PARTS=("${PARTS[$SLURM_ARRAY_TASK_ID]}")
fi
for part in "${PARTS[@]}"; do
  read -r manifest out extra <<<"$part"
  [[ -n ${out:-} && -z ${extra:-} ]] || { echo "prepare.sh: '$part': expected 'MANIFEST OUT_DIR'" >&2; exit 2; }
  if [[ -f $out/index.json && ${OVERWRITE:-0} != 1 ]]; then
    echo "prepare.sh: $out is complete (index.json), skipped"
    continue
  fi
  echo "prepare.sh: $manifest -> $out"
  # shellcheck disable=SC2086  # PREPARE_ARGS is a space-separated option list on purpose
  "$PYTHON" -m data.prepare manifest --manifest "$manifest" --out "$out" \
    --workers "${SLURM_CPUS_PER_TASK:-2}" --overwrite ${PREPARE_ARGS:-}
done
