# Sourced by tests that need Slurm: a one-node cluster on this machine, private to the test.
# slurm_local_start DIR writes a munge key, slurm.conf (and cgroup.conf) under DIR, starts munged,
# slurmctld and slurmd as root on free ports with their state, spool, logs and pid files in DIR,
# exports SLURM_CONF, and waits until the node is idle; slurm_local_stop stops the three (by
# their pid files) and is safe to call twice. slurm_local_logs prints the daemons' logs.
# slurm_local_missing says why Slurm cannot run here (empty when it can).
#
# No cgroups: a container rarely lets slurmd use them, so processes are tracked through /proc
# (proctrack/linuxproc), tasks are not bound (task/none) and no usage is gathered.

slurm_local_missing() {
  local tool
  for tool in munged slurmctld slurmd sbatch sinfo scontrol scancel; do
    command -v "$tool" > /dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] ||
      { echo "no $tool (Debian packages slurmctld slurmd slurm-client munge; tests/install_deps.sh installs them)"; return; }
  done
  [ "$(id -u)" = 0 ] || { echo "the local Slurm runs its daemons as root, and this is uid $(id -u)"; return; }
}

# A TCP port nothing listens on now.
slurm_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

slurm_local_start() {
  slurm_dir=$1
  local bin=/usr/sbin host ctld_port slurmd_port cpus version
  export PATH="$PATH:$bin"
  host=$(hostname -s)
  mkdir -p "$slurm_dir"/{munge,state,log} "$slurm_dir/spool/$host"
  chmod 700 "$slurm_dir/munge"
  cpus=$(nproc)
  ctld_port=$(slurm_free_port)
  slurmd_port=$(slurm_free_port)
  dd if=/dev/urandom of="$slurm_dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$slurm_dir/munge/munge.key"
  munged --force --key-file="$slurm_dir/munge/munge.key" --socket="$slurm_dir/munge/munge.socket" \
         --pid-file="$slurm_dir/munge/munged.pid" --log-file="$slurm_dir/log/munged.log" \
         --seed-file="$slurm_dir/munge/munge.seed" || return 1
  cat > "$slurm_dir/slurm.conf" <<EOF
ClusterName=qevaltest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$slurm_dir/munge/munge.socket
StateSaveLocation=$slurm_dir/state
SlurmdSpoolDir=$slurm_dir/spool/%n
SlurmctldPidFile=$slurm_dir/slurmctld.pid
SlurmdPidFile=$slurm_dir/slurmd.pid
SlurmctldLogFile=$slurm_dir/log/slurmctld.log
SlurmdLogFile=$slurm_dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=5
MinJobAge=600
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=qevaltest Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  # Without systemd or a writable cgroup tree slurmd must not touch cgroups at all.
  printf 'CgroupPlugin=disabled\nIgnoreSystemd=yes\n' > "$slurm_dir/cgroup.conf"
  version=$(slurmctld -V 2>/dev/null | awk '{print $2}')
  case "$version" in
    2[0-2].*) printf 'CgroupAutomount=no\n' > "$slurm_dir/cgroup.conf" ;; # 22.05 knows no CgroupPlugin=disabled
  esac
  export SLURM_CONF="$slurm_dir/slurm.conf"
  slurmctld -c -i 2> "$slurm_dir/log/slurmctld.stderr" || return 1
  slurmd 2> "$slurm_dir/log/slurmd.stderr" || return 1
  local waited=0
  while [ $waited -lt 60 ]; do
    case "$(sinfo -h -N -o %T 2>/dev/null)" in
      idle*) return 0 ;;
    esac
    sleep 1
    waited=$((waited + 1))
  done
  echo "the local Slurm's node is not idle after 60 s: $(sinfo -N 2>&1)" >&2
  return 1
}

slurm_local_stop() {
  [ -n "${slurm_dir:-}" ] || return 0
  local f pid
  for f in slurmd.pid slurmctld.pid munge/munged.pid; do
    [ -f "$slurm_dir/$f" ] || continue
    pid=$(cat "$slurm_dir/$f")
    rm -f "$slurm_dir/$f"
    [ -n "$pid" ] && kill "$pid" 2> /dev/null || continue
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2> /dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2> /dev/null
  done
  return 0
}

slurm_local_logs() {
  local f
  for f in "$slurm_dir"/log/*; do
    echo "---- $f (last 40 lines)"
    tail -n 40 "$f"
  done
}
