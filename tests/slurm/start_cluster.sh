#!/usr/bin/env bash
# Bring up a throw-away one-node SLURM cluster (munged + slurmctld + slurmd) on this machine.
#
# Usage:  tests/slurm/start_cluster.sh STATE_DIR
#
# Everything (munge key and socket, slurm.conf, state, spool, logs, pid files) lives under
# STATE_DIR, so nothing system-wide is touched and several clusters can coexist (the ports are
# picked free). Needs root and the Debian packages `slurm-wlm munge`. When it returns 0 the
# node is idle and STATE_DIR/env.sh exports SLURM_CONF for sbatch/squeue/sinfo (plus the
# partition, CPUs and memory of the node). The node also has one GPU GRES backed by /dev/null,
# so `sbatch --gpus=1` works (the job sees CUDA_VISIBLE_DEVICES=0 but no real GPU).
# Stop it with tests/slurm/stop_cluster.sh STATE_DIR (also run that after a failed start).
#
# Environment (optional): WB_SLURM_CPUS (default: all CPUs), WB_SLURM_MEM_MB (default: what
# `slurmd -C` reports), WB_SLURM_PARTITION (default: wbtest), WB_SLURM_TIMEOUT (seconds to wait
# for the node, default 60), WB_SLURM_OWNER_PID (the process the cluster belongs to, default
# the caller: a later start stops a cluster whose owner has gone).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${1:?usage: start_cluster.sh STATE_DIR}"
mkdir -p "$state"
state="$(cd "$state" && pwd)"
timeout_s="${WB_SLURM_TIMEOUT:-60}"

die() { echo "start_cluster.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (slurmd launches jobs as the submitting user)"
for exe in munged slurmctld slurmd sinfo sbatch squeue scontrol; do
    command -v "$exe" >/dev/null \
        || die "'$exe' not found: install it with 'apt-get install -y slurm-wlm munge'"
done

node=wbnode
partition="${WB_SLURM_PARTITION:-wbtest}"
hw="$(slurmd -C | head -n 1)"
cpus="${WB_SLURM_CPUS:-$(nproc)}"
mem_mb="${WB_SLURM_MEM_MB:-$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")}"
[ -n "$mem_mb" ] || die "could not read RealMemory from 'slurmd -C': $hw"
read -r ctld_port slurmd_port < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
EOF
)

# Inside a job, the plugin's jobstep runs `srun` with every SLURM_* variable but a few removed
# (SLURM_CONF too), so srun reads the default /etc/slurm/slurm.conf as on a real cluster: link
# ours there, unless a real configuration or another live test cluster owns that path.
# A cluster whose owner process is gone (a killed test run) is stale and gets stopped here.
site_conf=/etc/slurm/slurm.conf
if [ -L "$site_conf" ]; then
    other="$(dirname "$(readlink "$site_conf")")"
    if [ "$other" != "$state" ] && [ -s "$other/slurmctld.pid" ] \
            && kill -0 "$(tr -dc '0-9' < "$other/slurmctld.pid")" 2>/dev/null; then
        other_owner="$(tr -dc '0-9' < "$other/owner.pid" 2>/dev/null || true)"
        if [ -n "$other_owner" ] && kill -0 "$other_owner" 2>/dev/null; then
            die "another test cluster ($other, owner pid $other_owner) is running"
        fi
        echo "start_cluster.sh: stopping the stale test cluster in $other" >&2
        bash "$here/stop_cluster.sh" "$other"
    fi
    rm -f "$site_conf"
elif [ -e "$site_conf" ]; then
    die "$site_conf exists (a real SLURM installation?); refusing to replace it"
fi
mkdir -p /etc/slurm

# The process this cluster belongs to (default: our caller); once it is gone the cluster is
# stale and the next start_cluster.sh stops it.
echo "${WB_SLURM_OWNER_PID:-$PPID}" > "$state/owner.pid"

# munge: a private key and socket, run as root (so the key must belong to root).
mkdir -p "$state/munge" "$state/ctld" "$state/spool"
chmod 0755 "$state" "$state/munge"
if [ ! -s "$state/munge/munge.key" ]; then
    dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
fi
chmod 0400 "$state/munge/munge.key"
munged --force \
    --socket="$state/munge/munge.socket.2" \
    --key-file="$state/munge/munge.key" \
    --pid-file="$state/munge/munged.pid" \
    --log-file="$state/munge/munged.log" \
    --seed-file="$state/munge/munged.seed" \
    || die "munged failed to start; log: $(cat "$state/munge/munged.log" 2>/dev/null)"

sed -e "s|@STATE@|$state|g" \
    -e "s|@CTLD_PORT@|$ctld_port|g" \
    -e "s|@SLURMD_PORT@|$slurmd_port|g" \
    -e "s|@NODE@|$node|g" \
    -e "s|@HOSTNAME@|$(hostname)|g" \
    -e "s|@CPUS@|$cpus|g" \
    -e "s|@MEM_MB@|$mem_mb|g" \
    -e "s|@PARTITION@|$partition|g" \
    "$here/slurm.conf.in" > "$state/slurm.conf"
printf 'NodeName=%s Name=gpu File=/dev/null\n' "$node" > "$state/gres.conf"
export SLURM_CONF="$state/slurm.conf"
cat > "$state/env.sh" <<EOF
export SLURM_CONF="$SLURM_CONF"
export WB_SLURM_PARTITION="$partition"
export WB_SLURM_CPUS="$cpus"
export WB_SLURM_MEM_MB="$mem_mb"
EOF
ln -s "$SLURM_CONF" "$site_conf"

slurmctld -f "$SLURM_CONF" || die "slurmctld failed; log: $(tail -n 30 "$state/slurmctld.log" 2>/dev/null)"
slurmd -f "$SLURM_CONF" -N "$node" || die "slurmd failed; log: $(tail -n 30 "$state/slurmd.log" 2>/dev/null)"

# Wait until the node reports idle (resume it once if it came up down/drained).
t0=$SECONDS
deadline=$((t0 + timeout_s))
resumed=0
while :; do
    node_state="$(timeout 10 sinfo -h -N -n "$node" -o %T 2>/dev/null | head -n 1 || true)"
    case "$node_state" in
        idle) break ;;
        down*|drain*|drained*)
            if [ "$resumed" -eq 0 ]; then
                timeout 10 scontrol update NodeName="$node" State=RESUME || true
                resumed=1
            fi ;;
    esac
    dead=""
    for d in slurmctld slurmd; do  # (their pid files may lag a little behind the start)
        [ $((SECONDS - t0)) -ge 5 ] || break
        pid="$(tr -dc '0-9' < "$state/$d.pid" 2>/dev/null || true)"
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || dead="$dead $d"
    done
    if [ -n "$dead" ] || [ "$SECONDS" -ge "$deadline" ]; then
        echo "---- slurmctld.log" >&2; tail -n 40 "$state/slurmctld.log" >&2 || true
        echo "---- slurmd.log" >&2; tail -n 40 "$state/slurmd.log" >&2 || true
        [ -z "$dead" ] || die "daemon(s) exited:$dead"
        die "node $node not idle after ${timeout_s}s (state: '${node_state:-no answer}')"
    fi
    sleep 1
done
echo "SLURM cluster up: SLURM_CONF=$SLURM_CONF partition=$partition node=$node cpus=$cpus mem_mb=$mem_mb"
