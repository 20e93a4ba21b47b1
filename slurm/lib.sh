# shellcheck shell=bash
# What every batch script in slurm/ shares; sourced, never run on its own.
#
#   source "$REPO/slurm/lib.sh"; speechllm_setup NAME "$@"; speechllm_launch train.pretrain
#   source "$REPO/slurm/lib.sh"; speechllm_env                     # only PYTHON/VENV and the process environment
#
# Environment (all optional; also settable in the #SBATCH header with --export):
#   CONFIG          YAML config (or the first argument)
#   RUN_DIR         overrides the config's run_dir
#   OVERRIDES       extra key=value overrides, space-separated (arguments after the config are overrides too)
#   VENV            virtual environment to run in (default: .venv in the repository, else python3 on PATH)
#   PYTHON          interpreter (default: $VENV/bin/python)
#   NPROC_PER_NODE  worker processes per node (default: the GPUs Slurm gave the job, else the visible GPUs, else 1)
#   MASTER_PORT     rendezvous port (default: 20000 + job id % 20000, so jobs sharing a node do not collide)
#   LOG_DIR         per-job logs (default: logs/<job name>-<job id>/; per-rank files under attempt_<restart>/)
#
# Under Slurm: one srun task per node runs torchrun (train/launch.py) with a c10d rendezvous on the first node's
# address (from `scontrol show node`, so fake or multi-homed nodes work), and `srun --kill-on-bad-exit=1` so that a
# dead rank ends the job at once. The batch shell traps the time-limit signal (#SBATCH --signal=B:USR1@<grace>),
# forwards it to every rank (the workers checkpoint at the next step boundary and exit 75), and requeues the job,
# which resumes from that checkpoint. Without Slurm: torchrun over the local GPUs, or one process on CPU.

speechllm_setup() {
  SPEECHLLM_NAME=$1
  shift
  if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^set -euo/p' "$SPEECHLLM_SCRIPT" | grep '^#' | grep -v '^#SBATCH\|^#!' | sed 's/^# \{0,1\}//'
    exit 0
  fi
  REPO=${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$SPEECHLLM_SCRIPT")/.." && pwd)}
  cd "$REPO"
  if [[ -z ${CONFIG:-} && $# -gt 0 && $1 != *=* ]]; then CONFIG=$1; shift; fi
  if [[ -n ${CONFIG:-} && ! -f $CONFIG ]]; then
    echo "$SPEECHLLM_NAME: config file $CONFIG not found (paths are relative to $REPO)" >&2; exit 2
  fi
  SPEECHLLM_ARGS=()
  [[ -n ${CONFIG:-} ]] && SPEECHLLM_ARGS+=(--config "$CONFIG")
  [[ -n ${RUN_DIR:-} ]] && SPEECHLLM_ARGS+=("run_dir=$RUN_DIR")
  # shellcheck disable=SC2206  # OVERRIDES is a space-separated list on purpose
  [[ -n ${OVERRIDES:-} ]] && SPEECHLLM_ARGS+=($OVERRIDES)
  SPEECHLLM_ARGS+=("$@")
  speechllm_env
}

# Interpreter and process environment (REPO must be set and be the working directory).
speechllm_env() {
  VENV=${VENV:-$REPO/.venv}
  if [[ -z ${PYTHON:-} ]]; then
    if [[ -x $VENV/bin/python ]]; then PYTHON=$VENV/bin/python; else PYTHON=python3; fi
  fi
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-$(nproc)}}
  export TOKENIZERS_PARALLELISM=false
  # Failures surface fast and loud: NCCL aborts a rank whose peer died instead of hanging in a collective, and
  # the collective timeout train/distributed.py sets (30 min) is the last resort, not the detector.
  export TORCH_NCCL_ASYNC_ERROR_HANDLING=${TORCH_NCCL_ASYNC_ERROR_HANDLING:-1}
  export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
  export PYTHONUNBUFFERED=1
}

# Number of workers per node: what Slurm allocated, else what is visible.
_speechllm_nproc() {
  if [[ -n ${NPROC_PER_NODE:-} ]]; then echo "$NPROC_PER_NODE"; return; fi
  local gpus=${SLURM_GPUS_ON_NODE:-${SLURM_GPUS_PER_NODE:-}}
  gpus=${gpus##*:}  # "a100:4" -> 4
  if [[ $gpus =~ ^[0-9]+$ && $gpus -gt 0 ]]; then echo "$gpus"; return; fi
  "$PYTHON" -c "import torch; print(max(1, torch.cuda.device_count()))"
}

_speechllm_forward_signal() {
  [[ $1 == USR1 ]] && SPEECHLLM_PREEMPTED=1  # the time-limit signal; TERM is a cancel or Slurm's own preemption
  echo "$SPEECHLLM_NAME: $1 received; asking every rank to checkpoint and stop" >&2
  scancel --signal="$1" "$SLURM_JOB_ID" || true
}

speechllm_launch() {
  local module=$1 nproc status=0
  nproc=$(_speechllm_nproc)
  if [[ -z ${SLURM_JOB_ID:-} ]]; then
    if [[ $nproc -eq 1 ]]; then
      echo "$SPEECHLLM_NAME: no Slurm; one process ($PYTHON -m $module)"
      exec "$PYTHON" -m "$module" "${SPEECHLLM_ARGS[@]}"
    fi
    echo "$SPEECHLLM_NAME: no Slurm; $nproc processes on this machine"
    exec "$PYTHON" -m train.launch --standalone --nproc-per-node "$nproc" -m "$module" "${SPEECHLLM_ARGS[@]}"
  fi
  local first addr restart=${SLURM_RESTART_COUNT:-0}
  first=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
  addr=$(scontrol show node "$first" | grep -o 'NodeAddr=[^ ]*' | cut -d= -f2)
  export MASTER_ADDR=${MASTER_ADDR:-${addr:-$first}}
  export MASTER_PORT=${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 20000))}
  LOG_DIR=${LOG_DIR:-logs/${SLURM_JOB_NAME:-$SPEECHLLM_NAME}-$SLURM_JOB_ID}
  mkdir -p "$LOG_DIR/attempt_$restart"
  echo "$SPEECHLLM_NAME: job $SLURM_JOB_ID (restart $restart): $SLURM_JOB_NUM_NODES node(s) x $nproc rank(s)," \
       "rendezvous $MASTER_ADDR:$MASTER_PORT, per-rank logs in $LOG_DIR/attempt_$restart"
  SPEECHLLM_PREEMPTED=0
  trap '_speechllm_forward_signal USR1' USR1
  trap '_speechllm_forward_signal TERM' TERM
  srun --nodes="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --kill-on-bad-exit=1 --label \
    "$PYTHON" -m train.launch --nnodes "$SLURM_JOB_NUM_NODES" --nproc-per-node "$nproc" \
    --rdzv-backend c10d --rdzv-endpoint "$MASTER_ADDR:$MASTER_PORT" --rdzv-id "$SLURM_JOB_ID" \
    --log-dir "$LOG_DIR/attempt_$restart" --tee 3 -m "$module" "${SPEECHLLM_ARGS[@]}" &
  local srun_pid=$!
  # bash runs traps only between commands: wait again after each signal until srun itself has exited
  while true; do
    wait "$srun_pid" && status=0 || status=$?
    kill -0 "$srun_pid" 2>/dev/null || break
  done
  trap - USR1 TERM
  # 75: every rank checkpointed and stopped. After our USR1, ranks of other nodes may also show up as killed
  # (srun stops the rest once one task exits non-zero), which is fine: the checkpoint was complete before any exit.
  if [[ $status -eq 75 || ( $SPEECHLLM_PREEMPTED -eq 1 && $status -ne 0 ) ]]; then
    echo "$SPEECHLLM_NAME: preempted after a complete checkpoint; requeueing job $SLURM_JOB_ID"
    scontrol requeue "$SLURM_JOB_ID"
    exit 0
  fi
  if [[ $status -ne 0 ]]; then
    echo "$SPEECHLLM_NAME: job step failed with status $status (signal forwarded: $SPEECHLLM_PREEMPTED);" \
         "see the 'train.launch: rank ...' lines above and $LOG_DIR/attempt_$restart" >&2
  fi
  exit "$status"
}
