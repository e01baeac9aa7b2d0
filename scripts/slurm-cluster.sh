#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for legato's tests marked `slurm` and for
# benchmarks/bench_slurm.py. Debian's packages, no systemd, no cgroups, no accounting
# database: what shared/notes/slurm.md records as working on these machines. Needs root.
#
#   scripts/slurm-cluster.sh install   # apt-get the packages (skipped when present)
#   scripts/slurm-cluster.sh start     # munged, slurmctld, slurmd; waits for an idle node
#   scripts/slurm-cluster.sh stop      # ends the daemons this script started
#   scripts/slurm-cluster.sh status    # daemons and sinfo; exit status 0 when idle
#
# Partitions: `debug` (the default) and `other`, both on this node.
# Environment: SLURM_START_TIMEOUT (seconds to wait for an idle node, default 60);
# SLURM_NODE_CPUS (CPUs the node declares when it has fewer, default 16: the tests' and
# benchmark's jobs are trivial, and SLURM starts pending jobs about once a second here, so
# a 2-core node declared as such would run them two per second).
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm
MUNGE_KEY=/etc/munge/munge.key
PACKAGES=(slurmctld slurmd slurm-client munge)
SLURM_NODE_CPUS=${SLURM_NODE_CPUS:-16}

say() { echo "slurm-cluster: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}
need_root() { [[ $(id -u) -eq 0 ]] || die "$1 needs root"; }

installed() {
    local package
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
            return 1
    done
}

cmd_install() {
    if installed; then
        say "packages already installed: ${PACKAGES[*]}"
        return 0
    fi
    need_root install
    command -v apt-get >/dev/null || die "apt-get not found: install ${PACKAGES[*]} by hand"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Debian's maintainer scripts would start the daemons through systemd: there is none.
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
    installed || die "apt-get finished but ${PACKAGES[*]} are not all installed"
    say "installed: slurm $(dpkg-query -W -f='${Version}' slurmctld)"
}

# Pid of a running daemon named $1 (exact process name), or nothing.
daemon_pid() { pgrep -x "$1" | head -n 1 || true; }

write_conf() {
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    ((cpus >= SLURM_NODE_CPUS)) || cpus=$SLURM_NODE_CPUS
    # RealMemory a little under the total, or slurmd drains the node for lack of memory.
    mem=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
    mkdir -p "$CONF_DIR" "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR" "$RUN_DIR"
    cat >"$CONF.tmp" <<EOF
# Written by legato's scripts/slurm-cluster.sh: a one-node test cluster.
ClusterName=legato
SlurmctldHost=$host
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job would take the whole node's memory and jobs would run one by one.
DefMemPerCPU=256
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
SchedulerParameters=sched_interval=1
# The node may declare more CPUs than it has (SLURM_NODE_CPUS): test jobs are tiny.
SlurmdParameters=config_overrides
MaxArraySize=10001
MaxJobCount=100000
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=other Nodes=$host MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

start_munge() {
    if [[ -n $(daemon_pid munged) ]]; then
        return 0
    fi
    if [[ ! -s $MUNGE_KEY ]]; then
        mkdir -p "$(dirname "$MUNGE_KEY")"
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    fi
    chown munge:munge "$MUNGE_KEY"
    chmod 400 "$MUNGE_KEY"
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    if command -v runuser >/dev/null; then
        runuser -u munge -- munged
    else
        su -s /bin/sh munge -c munged
    fi
}

idle() { [[ $(sinfo -h -o %T 2>/dev/null | head -n 1) == idle ]]; }

cmd_start() {
    need_root start
    installed || die "SLURM is not installed: run '$0 install' first"
    local timeout=${SLURM_START_TIMEOUT:-60}
    start_munge
    if [[ -z $(daemon_pid slurmctld) || -z $(daemon_pid slurmd) ]]; then
        write_conf
    fi
    # -i: ignore state saved by an earlier cluster (jobs of a stopped cluster are gone).
    [[ -n $(daemon_pid slurmctld) ]] || slurmctld -i
    [[ -n $(daemon_pid slurmd) ]] || slurmd
    local deadline=$((SECONDS + timeout))
    until idle; do
        if ((SECONDS >= deadline)); then
            say "no idle node after ${timeout} s; sinfo says:"
            sinfo >&2 || true
            tail -n 20 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 || true
            die "the cluster did not come up"
        fi
        # A node left down by an earlier run (ReturnToService handles the usual cases).
        if sinfo -h -o %T 2>/dev/null | grep -qE '^(down|drained|drain)'; then
            scontrol update NodeName="$(hostname -s)" State=RESUME 2>/dev/null || true
        fi
        sleep 0.2
    done
    say "cluster up: $(sinfo -h -o '%P %D %T %c' | tr '\n' ' ')"
}

stop_daemon() {
    local name=$1 pid
    pid=$(daemon_pid "$name")
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            kill -9 "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
}

cmd_stop() {
    need_root stop
    stop_daemon slurmd
    stop_daemon slurmctld
    stop_daemon munged
    say "stopped"
}

cmd_status() {
    local name pid
    for name in munged slurmctld slurmd; do
        pid=$(daemon_pid "$name")
        if [[ -n $pid ]]; then
            echo "$name: running (pid $pid)"
        else
            echo "$name: not running"
        fi
    done
    if command -v sinfo >/dev/null; then
        sinfo 2>&1 || true
    else
        echo "sinfo: not installed"
    fi
    idle
}

case ${1:-} in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
    echo "usage: $0 install|start|stop|status" >&2
    exit 2
    ;;
esac
