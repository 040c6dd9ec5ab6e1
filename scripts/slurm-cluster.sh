#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for testing `--profile profiles/slurm`.
#
#   bash scripts/slurm-cluster.sh start    # install (apt) if missing, configure, start, wait for an idle node
#   bash scripts/slurm-cluster.sh status   # daemons this script started + `sinfo`; exit 1 when Slurm is down
#   bash scripts/slurm-cluster.sh stop     # stop only the daemons this script started (by PID)
#
# Needs root (apt, /etc/slurm, daemons). No systemd is assumed: munged, slurmctld and slurmd
# run in the foreground of their own sessions, with their PIDs recorded under $MRISR_SLURM_STATE.
# `start` is idempotent: when `sinfo` already answers (this script's cluster or a real one) it
# changes nothing.
#
# Settings that decide whether the Snakemake Slurm executor works here, and why:
# - slurm.conf lives at /etc/slurm/slurm.conf: the jobstep plugin drops SLURM_CONF from the
#   environment of its nested `srun`, so a conf elsewhere would be lost inside jobs.
# - AccountingStorageType=accounting_storage/none: no slurmdbd, so `sacct` cannot answer; the
#   profile sets `slurm-status-command: squeue`, which sees a finished job only for MinJobAge
#   seconds. The plugin polls at most every 180 s and refuses squeue unless
#   MinJobAge >= 3 x slurm-init-seconds-before-status-checks, hence MinJobAge=300.
# - proctrack/linuxproc + task/none: no cgroups/systemd in containers and CI VMs.
set -euo pipefail

STATE=${MRISR_SLURM_STATE:-/var/tmp/mrisr-slurm}
CONF=/etc/slurm/slurm.conf
MARKER="# written by mrisr scripts/slurm-cluster.sh"
PARTITION=${MRISR_SLURM_TEST_PARTITION:-debug}
WAIT_S=${MRISR_SLURM_WAIT_S:-60}

log() { echo "slurm-cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

slurm_answers() { sinfo -h >/dev/null 2>&1; }

node_state() { sinfo -h -N -o '%t' 2>/dev/null | head -n1; }

install_packages() {
  local missing=()
  command -v munged >/dev/null || missing+=(munge)
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sinfo >/dev/null || missing+=(slurm-client)
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  log "installing ${missing[*]} (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    munge slurmctld slurmd slurm-client >/dev/null
}

# `slurmd -C` prints this machine's node line (CPUs, sockets, RealMemory) exactly as slurmd
# will register it, so the node never drains for "Low RealMemory" or a CPU mismatch.
node_line() {
  local host=$1
  slurmd -C | head -n1 | sed -e "s/^NodeName=[^ ]*/NodeName=${host} NodeAddr=127.0.0.1/"
}

write_conf() {
  local host
  host=$(hostname -s)
  if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF" && [ "${MRISR_SLURM_FORCE:-0}" != 1 ]; then
    die "$CONF exists and was not written by this script; refusing to overwrite (MRISR_SLURM_FORCE=1 to force)"
  fi
  mkdir -p /etc/slurm "$STATE/ctld" "$STATE/spool"
  cat >"$CONF.tmp" <<EOF
$MARKER (single-node test cluster; see the script for why each setting)
ClusterName=mrisr
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=300
InactiveLimit=0
KillWait=10
SlurmdTimeout=60
$(node_line "$host") State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
}

ensure_munge_key() {
  local key=/etc/munge/munge.key
  if [ ! -s "$key" ]; then
    log "creating $key"
    mungekey --create --keyfile="$key" 2>/dev/null || dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
  fi
  chown munge:munge "$key" && chmod 400 "$key"
}

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

pidfile_pid() { [ -s "$1" ] && tr -d ' \n' <"$1" || true; }

# Run a daemon in the foreground of its own session, so $! is its PID (no fork, no zombie parent),
# and remember it as ours: `stop` kills exactly these PIDs and nothing found by name.
launch() {
  local name=$1
  shift
  setsid "$@" </dev/null >>"$STATE/$name.out" 2>&1 &
  local pid=$!
  sleep 0.5
  pid_alive "$pid" || die "$name did not start (see $STATE/$name.out and $STATE/*.log)"
  echo "$pid" >"$STATE/started.$name"
}

ours_alive() { [ -f "$STATE/started.$1" ] && pid_alive "$(cat "$STATE/started.$1")"; }

start_munge() {
  if munge -n </dev/null >/dev/null 2>&1; then
    return 0  # a munged already answers (ours from an earlier start, or the system's): leave it
  fi
  ensure_munge_key
  install -d -o munge -g munge -m 0755 /run/munge
  # setpriv execs munged as user munge (runuser would stay in between as its parent).
  launch munged setpriv --reuid=munge --regid=munge --init-groups munged --foreground
  for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "munged does not answer (see /var/log/munge/munged.log)"
}

start_daemon() {
  local name=$1
  ours_alive "$name" || pid_alive "$(pidfile_pid "$STATE/$name.pid")" || launch "$name" "$name" -D
}

wait_idle() {
  local host state=""
  host=$(hostname -s)
  for _ in $(seq "$WAIT_S"); do
    state=$(node_state)
    case "$state" in
      idle|mix|alloc) log "node $host is $state"; return 0 ;;
      down*|drain*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 1
  done
  die "node $host not idle after ${WAIT_S}s (state '${state:-none}'; see $STATE/slurmctld.log)"
}

cmd_start() {
  [ "$(id -u)" -eq 0 ] || die "needs root (apt-get, /etc/slurm, daemons)"
  install_packages
  if slurm_answers && [ "$(node_state)" != "" ] && [[ "$(node_state)" != down* ]]; then
    log "Slurm already answers; nothing started"
    sinfo
    return 0
  fi
  mkdir -p "$STATE"
  write_conf
  start_munge
  start_daemon slurmctld
  start_daemon slurmd
  wait_idle
  sinfo
}

# Stop in reverse order; a recorded PID is killed only while it still runs that daemon,
# so a PID reused by an unrelated process after a reboot is never touched.
cmd_stop() {
  local name pid
  for name in slurmd slurmctld munged; do
    [ -f "$STATE/started.$name" ] || continue
    pid=$(cat "$STATE/started.$name")
    if pid_alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
      kill "$pid"
      for _ in $(seq 100); do pid_alive "$pid" || break; sleep 0.1; done
      pid_alive "$pid" && kill -9 "$pid"
      log "stopped $name ($pid)"
    fi
    rm -f "$STATE/started.$name"
  done
}

cmd_status() {
  local name pid
  for name in munged slurmctld slurmd; do
    [ -f "$STATE/started.$name" ] || continue
    pid=$(cat "$STATE/started.$name")
    if pid_alive "$pid"; then echo "$name: running ($pid, started by this script)"; else echo "$name: gone ($pid)"; fi
  done
  slurm_answers || { echo "slurm: not answering"; return 1; }
  sinfo
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 {start|stop|status}" >&2; exit 2 ;;
esac
