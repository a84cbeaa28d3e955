#!/usr/bin/env bash
# A one-node SLURM on this machine, for testing `looptune slurm` end to end: Debian's slurmctld, slurmd, slurm-client
# and munge, both daemons on localhost, run as root (state, spool and logs in /tmp/slurm). Also installs redis-server,
# which the launcher's jobs start on their first node.
#   start   install what is missing (apt), write /etc/slurm/slurm.conf, start munged, slurmctld and slurmd, wait until
#           the node is idle. Does nothing when they already run. Refuses to replace a slurm.conf it did not write.
#   stop    stop slurmd, slurmctld and munged by their pids.
#   status  print the partition (sinfo); exit 0 when the node takes jobs, 1 otherwise.
set -uo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
dir=/tmp/slurm conf=/etc/slurm/slurm.conf mark="# written by looptune scripts/local-slurm.sh"
munge_pid=/run/munge/munged.pid

say() { echo "local-slurm: $*" >&2; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
ready() { [ "$(sinfo -h -o %t 2>/dev/null | head -n1)" = idle ] || [ "$(sinfo -h -o %t 2>/dev/null | head -n1)" = mix ]; }

install() {
  local missing=()
  for p in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge redis-server:redis-server; do
    command -v "${p%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${p%%:*}" ] || missing+=("${p#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || { say "needs root to install ${missing[*]}"; return 1; }
  command -v apt-get >/dev/null || { say "no apt-get: install ${missing[*]} yourself"; return 1; }
  say "installing ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
}

write_conf() {
  local host cpus mem
  host=$(hostname -s) cpus=$(nproc) mem=$(awk '/MemTotal/ { print int($2 / 1024 * 0.8) }' /proc/meminfo)
  if [ -f $conf ] && ! grep -qF "$mark" $conf; then say "$conf exists and was not written by this script; not replacing it"; return 1; fi
  mkdir -p /etc/slurm $dir/state $dir/spool $dir/log
  cat > $conf.tmp <<CONF
$mark
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldLogFile=$dir/log/ctld.log
SlurmdLogFile=$dir/log/d.log
SlurmctldPidFile=$dir/ctld.pid
SlurmdPidFile=$dir/d.pid
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  mv $conf.tmp $conf
}

start_munge() {
  alive $munge_pid && return 0
  [ -f /etc/munge/munge.key ] || mungekey -c
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge && chown munge:munge /run/munge
  su -s /bin/sh munge -c /usr/sbin/munged
}

start() {
  if alive $dir/ctld.pid && alive $dir/d.pid && ready; then say "already running"; sinfo; return 0; fi
  install && write_conf || return 1
  start_munge || { say "munged did not start"; return 1; }
  alive $dir/ctld.pid || slurmctld || { say "slurmctld did not start (see $dir/log/ctld.log)"; return 1; }
  alive $dir/d.pid || slurmd || { say "slurmd did not start (see $dir/log/d.log)"; return 1; }
  for _ in $(seq 1 60); do
    ready && { sinfo; return 0; }
    # a node left down or drained by an earlier run is put back to service
    sinfo -h -o %t 2>/dev/null | grep -qE 'down|drain' && scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null
    sleep 0.5
  done
  say "the node did not become idle in 30 s (see $dir/log)"; sinfo; return 1
}

stop() {
  for f in $dir/d.pid $dir/ctld.pid $munge_pid; do
    alive $f || continue
    local pid; pid=$(cat $f)
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  done
  return 0
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo 2>/dev/null; ready ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
