#!/usr/bin/env bash
# Multi-node launch with Open MPI and a hostfile (one line per node: "host slots=GPUS"):
#   launch/launchers/multinode.sh --hostfile hosts.txt [-np 16] train experiment=... key=value
# -np defaults to the sum of slots. MPI control traffic goes over TCP (pml ob1, no openib) because NCCL moves
# the gradients on GPU clusters (Horovod's recommendation); set DUALIGN_MPI_TCP=0 to let Open MPI choose.
# Knobs (environment): DUALIGN_BIN (path of the binary on every node, default build/bin/dualign),
#   OMP_NUM_THREADS (default: this node's cores / ranks per node), RUN_DIR (save the command; train writes
#   there), MPIRUN_ARGS (extra mpirun args, e.g. "-mca btl_tcp_if_include eth0"), NCCL_* and
#   DUALIGN_COMM_TIMEOUT_S (forwarded to every rank), DRY_RUN=1.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
hostfile=${HOSTFILE:-}
np=
while [[ $# -gt 0 ]]; do
  case $1 in
    --hostfile|-hostfile) hostfile=$2; shift 2 ;;
    -np|-n) np=$2; shift 2 ;;
    *) break ;;
  esac
done
[[ -n $hostfile && -f $hostfile ]] || { echo "multinode.sh: --hostfile FILE is required (lines: 'host slots=N'); got '$hostfile'" >&2; exit 2; }
[[ $# -ge 1 ]] || { echo "usage: launch/launchers/multinode.sh --hostfile FILE [-np N] <dualign subcommand> [key=value ...]" >&2; exit 2; }
nodes=$(grep -cvE '^\s*(#|$)' "$hostfile")
slots=$(awk '!/^[[:space:]]*(#|$)/ { n = 1; for (i = 2; i <= NF; i++) if ($i ~ /^slots=/) { split($i, a, "="); n = a[2] } s += n } END { print s }' "$hostfile")
np=${np:-$slots}
per_node=$(( (np + nodes - 1) / nodes ))
bin=${DUALIGN_BIN:-$root/build/bin/dualign}
threads=${OMP_NUM_THREADS:-$(( $(nproc) / per_node > 0 ? $(nproc) / per_node : 1 ))}
export OMP_NUM_THREADS=$threads DUALIGN_THREADS=$threads

mpi=(mpirun -np "$np" --hostfile "$hostfile" --map-by slot --bind-to none)
[[ $(id -u) -eq 0 ]] && mpi+=(--allow-run-as-root)
[[ ${DUALIGN_MPI_TCP:-1} == 1 ]] && mpi+=(-mca pml ob1 -mca btl '^openib')
mpi+=(-x OMP_NUM_THREADS -x DUALIGN_THREADS -x PATH -x LD_LIBRARY_PATH)
for v in $(compgen -e | grep -E '^(DUALIGN_COMM_TIMEOUT_S|DUALIGN_MPI_POLL_US|NCCL_[A-Z_]+)$' || true); do mpi+=(-x "$v"); done
# shellcheck disable=SC2206
[[ -n ${MPIRUN_ARGS:-} ]] && mpi+=(${MPIRUN_ARGS})

args=("$@")
if [[ -n ${RUN_DIR:-} && ${args[0]} == train ]] && ! printf '%s\n' "${args[@]}" | grep -q '^run\.dir='; then
  args+=("run.dir=$RUN_DIR")
fi
cmd=("${mpi[@]}" "$bin" "${args[@]}")
printf -v line '%q ' "${cmd[@]}"
echo "[launch] $nodes node(s), $np rank(s), OMP_NUM_THREADS=$threads: ${line% }"
if [[ -n ${RUN_DIR:-} ]]; then
  mkdir -p "$RUN_DIR"
  echo "OMP_NUM_THREADS=$threads ${line% }" >"$RUN_DIR/launch_command.txt"
fi
[[ ${DRY_RUN:-0} == 1 ]] && exit 0
# Ctrl-C / SIGTERM: checkpoint and stop (exit 75) instead of mpirun's kill; a second Ctrl-C aborts (stoppable.sh).
# shellcheck source=stoppable.sh
source "$(dirname "$0")/stoppable.sh"
run_stoppable "${cmd[@]}"
