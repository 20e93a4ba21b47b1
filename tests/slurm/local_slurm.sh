#!/usr/bin/env bash
# A real Slurm (Debian's slurm-wlm + munge) on this machine, for the tests: N fake nodes n1..nN, each its own slurmd
# on its own port, all on localhost. Needs root (CI and the dev container run as root).
#
#   bash tests/slurm/local_slurm.sh start [NODES]     # idempotent; installs the packages when missing
#   bash tests/slurm/local_slurm.sh stop
#
# Settings chosen for tests: credentials expire after 10 s and the scheduler runs every 2 s, so a requeued job starts
# again in ~10 s instead of Slurm's default 120 s; KillWait 5 s; process tracking by /proc (no cgroups in a container).
set -euo pipefail
ACTION=${1:-start}
NODES=${2:-2}
BASE=${SLURM_TEST_BASE:-/tmp/speechllm-slurm}
HOST=$(hostname -s)

running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
halt() {
  running "$1" || { rm -f "$1"; return 0; }
  local pid; pid=$(cat "$1"); kill "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$1"
}

if [[ $ACTION == stop ]]; then
  for pidfile in "$BASE"/run/slurmd-*.pid "$BASE/run/slurmctld.pid"; do [[ -e $pidfile ]] && halt "$pidfile"; done
  exit 0
fi
[[ $ACTION == start ]] || { echo "usage: $0 start [NODES] | stop" >&2; exit 2; }

missing=0
for cmd in slurmctld slurmd sbatch munged; do command -v "$cmd" >/dev/null || missing=1; done
if (( missing )); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

# munge: one key, daemon running, a credential round trip works
[[ -s /etc/munge/munge.key ]] || { mkdir -p /etc/munge; mungekey -c -k /etc/munge/munge.key; }
chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
install -d -o munge -g munge -m 755 /run/munge
install -d -o munge -g munge -m 700 /var/log/munge /var/lib/munge
running /run/munge/munged.pid || runuser -u munge -- /usr/sbin/munged
for _ in $(seq 50); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done

# CPUs and topology as slurmd itself sees them (`nproc` would honour OMP_NUM_THREADS and disagree with slurmd)
hardware=$(slurmd -C)
cpus=$(grep -o 'CPUs=[0-9]*' <<<"$hardware" | head -n 1 | cut -d= -f2)
mem=$(( ($(free -m | awk '/^Mem:/{print $2}') - 512) / NODES ))
topology=$(grep -o 'SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*' <<<"$hardware" |
           sed 's/SocketsPerBoard/Sockets/')
mkdir -p "$BASE"/{run,log,state} /etc/slurm
nodes=""
for i in $(seq "$NODES"); do
  mkdir -p "$BASE/spool/n$i"
  nodes+="NodeName=n$i NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$((17000 + i)) CPUs=$cpus $topology RealMemory=$mem"$'\n'
done
conf=$(mktemp)
cat > "$conf" <<CONF
ClusterName=speechllm-test
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerParameters=sched_interval=2,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=5
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool/%n
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd-%n.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd-%n.log
$nodes
PartitionName=debug Nodes=n[1-$NODES] Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
# A changed configuration (other node count, CPUs) needs fresh daemons: running ones would keep the old one.
if ! cmp -s "$conf" /etc/slurm/slurm.conf; then
  for pidfile in "$BASE"/run/slurmd-*.pid "$BASE/run/slurmctld.pid"; do [[ -e $pidfile ]] && halt "$pidfile"; done
  rm -rf "$BASE/state"/*
  mv "$conf" /etc/slurm/slurm.conf
else
  rm -f "$conf"
fi
running "$BASE/run/slurmctld.pid" || slurmctld
for i in $(seq "$NODES"); do running "$BASE/run/slurmd-n$i.pid" || slurmd -N "n$i"; done

ready() {
  local states
  states=$(timeout 5 sinfo -h -N -o %t 2>/dev/null) && [[ -n $states ]] && ! grep -vqE '^(idle|mix|alloc)' <<<"$states"
}
deadline=$((SECONDS + 60))
resumed=0
while (( SECONDS < deadline )); do
  ready && break
  if (( !resumed && SECONDS > deadline - 50 )); then
    resumed=1; timeout 5 scontrol update nodename="n[1-$NODES]" state=resume || true
  fi
  sleep 0.5
done
ready || { echo "local Slurm did not come up:" >&2; sinfo -N >&2 || true; tail -n 20 "$BASE"/log/*.log >&2; exit 1; }
sinfo -N
