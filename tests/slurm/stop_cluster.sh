#!/usr/bin/env bash
# Stop the cluster started by tests/slurm/start_cluster.sh STATE_DIR: cancel its jobs, then end
# slurmd, slurmctld and munged by the pids in their pid files (nothing else is touched).
# Safe to run on a half-started cluster or twice.
#
# Usage:  tests/slurm/stop_cluster.sh STATE_DIR
set -uo pipefail

state="${1:?usage: stop_cluster.sh STATE_DIR}"
[ -d "$state" ] || exit 0
state="$(cd "$state" && pwd)"

if [ -f "$state/slurm.conf" ] && [ -f "$state/slurmctld.pid" ]; then
    SLURM_CONF="$state/slurm.conf" timeout 10 scancel --full --quiet --partition="$(
        sed -n 's/^PartitionName=\([^ ]*\).*/\1/p' "$state/slurm.conf")" 2>/dev/null || true
    for _ in $(seq 1 30); do  # let running jobs end before their slurmd goes
        [ -z "$(SLURM_CONF="$state/slurm.conf" timeout 10 squeue -h -t running,completing \
            -o %i 2>/dev/null)" ] && break
        sleep 0.5
    done
fi

stop_pid_file() {  # stop_pid_file FILE: TERM the process, KILL it after 10 s
    local f="$1" pid i
    [ -s "$f" ] || return 0
    pid="$(tr -dc '0-9' < "$f")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
}

stop_pid_file "$state/slurmd.pid"
stop_pid_file "$state/slurmctld.pid"
stop_pid_file "$state/munge/munged.pid"
if [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$state/slurm.conf" ]; then
    rm -f /etc/slurm/slurm.conf
fi
exit 0
