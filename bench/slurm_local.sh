#!/usr/bin/env bash
# A single-node Slurm on this machine, for exercising `--backend slurm` (tests/test_slurm_backend.py).
#
#   sudo apt-get install -y slurm-wlm munge        # Debian/Ubuntu packages; nothing else is needed
#   sudo bench/slurm_local.sh start                # munged + slurmctld + slurmd; waits for `idle`
#   bench/slurm_local.sh status                    # daemons and `sinfo`; exit 0 when the node answers
#   .venv/bin/python -m pytest -q -m slurm tests/test_slurm_backend.py
#   sudo bench/slurm_local.sh stop                 # cancels queued/running jobs, stops the daemons
#
# `start` (root: slurmd must start jobs as their user) creates the munge key if there is none,
# starts munged unless one already answers, and writes $SLURM_CONF (default /etc/slurm/slurm.conf,
# where sinfo/sbatch look without any environment) with one node, this host, with the CPUs and
# memory `slurmd -C` reports now, in one default partition `local`. No cgroups are used
# (proctrack/linuxproc, task/none; select/cons_tres with CR_Core: one CPU per --cpus-per-task), so
# it runs in containers too. Jobs keep the nice value of the submitting sbatch
# (PropagatePrioProcess=1): `nice -n 19 pytest ...` runs niced jobs. State, spool, pid and log
# files live in $SLURM_LOCAL_DIR (default /var/tmp/acoustic-kd-slurm); logs: slurmctld.log,
# slurmd.log there. A slurm.conf that this script did not write is never overwritten.
# `start` on a running cluster only checks it; `stop` on a stopped one does nothing.
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/var/tmp/acoustic-kd-slurm}
CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
export SLURM_CONF=$CONF
MARK="# written by acoustic_kd bench/slurm_local.sh"
NODE=$(hostname -s)
WAIT_S=${SLURM_LOCAL_WAIT:-60}

die() { echo "slurm_local.sh: error: $*" >&2; exit 1; }
say() { echo "slurm_local.sh: $*"; }

need() {
    for b in "$@"; do
        command -v "$b" >/dev/null || die "$b not found; install Debian's Slurm: apt-get install -y slurm-wlm munge"
    done
}

alive() {  # alive PIDFILE: the pid in it runs
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

node_state() {  # the node's state as sinfo reports it, empty when slurmctld does not answer
    timeout 10 sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1 || true
}

munge_ok() { command -v munge >/dev/null && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if munge_ok; then
        say "munged already answers"
        return
    fi
    local key=/etc/munge/munge.key
    if [[ ! -s $key ]]; then
        say "creating $key"
        install -d -m 700 -o munge -g munge /etc/munge
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$key"
        else
            dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
        fi
        chown munge:munge "$key"
        chmod 400 "$key"
    fi
    install -d -m 755 -o munge -g munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- munged
    say "started munged"
    touch "$DIR/munged.ours"  # stop ends only a munged that start started
    for _ in $(seq 50); do munge_ok && return; sleep 0.2; done
    die "munged started but does not answer (see /var/log/munge/munged.log)"
}

write_conf() {
    if [[ -e $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; set SLURM_CONF=/some/other/slurm.conf (and export it wherever sbatch runs)"
    fi
    local hw
    hw=$(slurmd -C | head -n1)  # NodeName=HOST CPUs=.. Boards=.. ... RealMemory=..
    [[ $hw == NodeName=* ]] || die "slurmd -C gave no node line: $hw"
    install -d "$(dirname "$CONF")"
    cat >"$CONF.tmp" <<EOF
$MARK at $(date '+%F %T'); rewritten by every start
ClusterName=acoustic-kd-local
SlurmctldHost=$NODE
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
PropagatePrioProcess=1
ReturnToService=2
MailProg=/bin/true
InactiveLimit=0
KillWait=5
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/slurmd
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
$hw State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
    say "wrote $CONF: $hw"
}

cmd_start() {
    [[ $(id -u) == 0 ]] || die "start needs root (slurmd runs jobs as their user)"
    need munged munge slurmctld slurmd sinfo sbatch
    install -d -m 755 "$DIR" "$DIR/ctld" "$DIR/slurmd"
    if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid"; then
        say "already running"
    else
        cmd_stop quiet
        start_munge
        write_conf
        slurmctld || die "slurmctld did not start; see $DIR/slurmctld.log"
        slurmd || die "slurmd did not start; see $DIR/slurmd.log"
    fi
    local state=""
    for _ in $(seq $((WAIT_S * 2))); do
        state=$(node_state)
        case $state in
            idle|mixed|allocated|completing) say "node $NODE is $state"; sinfo; return 0 ;;
        esac
        sleep 0.5
    done
    echo "--- $DIR/slurmctld.log" >&2; tail -n 20 "$DIR/slurmctld.log" >&2 || true
    echo "--- $DIR/slurmd.log" >&2; tail -n 20 "$DIR/slurmd.log" >&2 || true
    die "node $NODE not ready after ${WAIT_S}s (state: ${state:-no answer from slurmctld})"
}

stop_pid() {  # stop_pid NAME PIDFILE
    alive "$2" || { rm -f "$2"; return 0; }
    local pid
    pid=$(cat "$2")
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$2"
    say "stopped $1 ($pid)"
}

cmd_stop() {
    if alive "$DIR/slurmctld.pid"; then
        local jobs
        jobs=$(timeout 10 squeue -h -o %A 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            # shellcheck disable=SC2086
            scancel $jobs || true
            for _ in $(seq 50); do [[ -z $(squeue -h -o %A 2>/dev/null) ]] && break; sleep 0.2; done
            say "cancelled job(s): $(echo $jobs)"
        fi
    fi
    stop_pid slurmd "$DIR/slurmd.pid"
    stop_pid slurmctld "$DIR/slurmctld.pid"
    if [[ -e $DIR/munged.ours ]]; then
        local pid
        pid=$(cat /run/munge/munged.pid 2>/dev/null || true)
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            echo "$pid" >"$DIR/munged.pid"
            stop_pid munged "$DIR/munged.pid"
        fi
        rm -f "$DIR/munged.ours"
    fi
    [[ ${1:-} == quiet ]] || say "stopped"
}

cmd_status() {
    local rc=0
    for d in slurmctld slurmd; do
        if alive "$DIR/$d.pid"; then say "$d running ($(cat "$DIR/$d.pid"))"; else say "$d not running"; rc=3; fi
    done
    munge_ok && say "munged answers" || { say "munged does not answer"; rc=3; }
    local state
    state=$(node_state)
    say "node $NODE: ${state:-no answer from slurmctld}"
    [[ -n $state ]] && timeout 10 sinfo || rc=3
    return $rc
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status   (see the comment at the top of this script)" >&2; exit 2 ;;
esac
