#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for legato's tests marked `slurm` and for
# benchmarks/bench_slurm.py. Debian's packages, no systemd, no cgroups, no accounting
# database: what shared/notes/slurm.md records as working on these machines. Needs root.
#
#   scripts/slurm-cluster.sh install   # apt-get the packages (skipped when present)
#   scripts/slurm-cluster.sh start     # munged, slurmctld, slurmd; waits for an idle node
#   scripts/slurm-cluster.sh stop      # ends the daemons this script started
#   scripts/slurm-cluster.sh status    # daemons and sinfo; exit status 0 when this cluster is idle
#
# Partitions: `debug` (the default) and `other`, both on this node; the cluster is named
# `legatotest`, which is how the tests know they talk to this cluster and not to a real one.
#
# The daemons keep their state, spool, logs and pid files under $SLURM_TEST_DIR (default
# /var/lib/legato-slurm), never in /var/spool/slurmctld and friends: a machine that already
# holds another SLURM's state there would make slurmctld exit on a cluster name mismatch.
# When a daemon does not come up, the fatal lines of its log are printed.
#
# Environment: SLURM_START_TIMEOUT (seconds to wait for an idle node, default 60);
# SLURM_NODE_CPUS (CPUs the node declares when it has fewer, default 16: the tests' and
# benchmark's jobs are trivial, and SLURM starts pending jobs about once a second here, so
# a 2-core node declared as such would run them two per second); SLURM_CONF (where the
# configuration is written, default /etc/slurm/slurm.conf, where the client commands look).
set -euo pipefail

CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
CONF_DIR=$(dirname "$CONF")
export SLURM_CONF=$CONF # the daemons and client commands this script runs read it
CLUSTER=legatotest
ROOT=${SLURM_TEST_DIR:-/var/lib/legato-slurm}
STATE_DIR=$ROOT/state
SPOOL_DIR=$ROOT/spool
LOG_DIR=$ROOT/log
RUN_DIR=$ROOT/run
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

# Pid of the running daemon named $1 that this script started (its pid file in $RUN_DIR), or
# nothing: another SLURM's daemons on the machine are none of this script's business.
daemon_pid() {
    local pid
    pid=$(cat "$RUN_DIR/$1.pid" 2>/dev/null || true)
    if [[ -n $pid ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null || true) == "$1" ]]; then
        echo "$pid"
    fi
}

# Pid of munged, which may be shared with another SLURM on the machine.
munged_pid() { pgrep -x munged | head -n 1 || true; }

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
ClusterName=$CLUSTER
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
    if [[ -n $(munged_pid) ]]; then
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
    mkdir -p "$RUN_DIR"
    touch "$RUN_DIR/munged.started"
}

idle() { [[ $(sinfo -h -o %T 2>/dev/null | head -n 1) == idle ]]; }

# Why the daemon $1 is not running: the fatal (else the last) lines of its log.
why_down() {
    local log=$LOG_DIR/$1.log
    say "$1 is not running; its log ($log) says:"
    if grep -qi fatal "$log" 2>/dev/null; then
        grep -i fatal "$log" | tail -n 5 >&2
    else
        tail -n 10 "$log" >&2 2>/dev/null || say "(no log)"
    fi
}

# Whether the daemon $1 is not running, and stays so for 2 s (its pid file may lag its fork).
gone() {
    local tries
    for tries in 1 2 3 4 5; do
        [[ -z $(daemon_pid "$1") ]] || return 1
        sleep 0.4
    done
    [[ -z $(daemon_pid "$1") ]]
}

cmd_start() {
    need_root start
    installed || die "SLURM is not installed: run '$0 install' first"
    local timeout=${SLURM_START_TIMEOUT:-60}
    start_munge
    if [[ -z $(daemon_pid slurmctld) || -z $(daemon_pid slurmd) ]]; then
        write_conf
    fi
    local name
    if [[ -z $(daemon_pid slurmctld) ]]; then
        # -i: ignore state saved by an earlier cluster (jobs of a stopped cluster are gone).
        # The state directory is this script's own: a name left there by an older cluster
        # would only make slurmctld refuse to start.
        rm -f "$STATE_DIR/clustername"
        slurmctld -i || true
    fi
    [[ -n $(daemon_pid slurmd) ]] || slurmd || true
    local deadline=$((SECONDS + timeout))
    until idle; do
        # A daemon that exits at start (a bad configuration, a port held by another SLURM)
        # says why only in its log.
        for name in slurmctld slurmd; do
            if gone "$name"; then
                why_down "$name"
                die "$name did not come up"
            fi
        done
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

# Ends the process $1 (nothing when empty), with SIGKILL after 10 s.
stop_pid() {
    local pid=$1
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
    stop_pid "$(daemon_pid slurmd)"
    stop_pid "$(daemon_pid slurmctld)"
    # munged is left running when this script did not start it (another SLURM may use it).
    if [[ -e $RUN_DIR/munged.started ]]; then
        stop_pid "$(munged_pid)"
        rm -f "$RUN_DIR/munged.started"
    fi
    say "stopped"
}

cmd_status() {
    local name pid
    for name in munged slurmctld slurmd; do
        if [[ $name == munged ]]; then pid=$(munged_pid); else pid=$(daemon_pid "$name"); fi
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
    # Another SLURM's idle node is not this cluster.
    [[ -n $(daemon_pid slurmctld) ]] && idle
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
