#!/usr/bin/env bash
# One-node launch with Open MPI:  launch/launchers/local.sh -np 2 train experiment=gmm_sft train.steps=200
# Knobs (environment):
#   DUALIGN_BIN        binary (default: build/bin/dualign)
#   OMP_NUM_THREADS    threads per rank (default: cores / np, at least 1); also exported as DUALIGN_THREADS
#   RUN_DIR            run directory: the resolved command is saved in $RUN_DIR/launch_command.txt and, for
#                      `train`, run.dir=$RUN_DIR is appended unless you pass run.dir= yourself
#   MPIRUN_ARGS        extra mpirun arguments (e.g. "--report-bindings")
#   DUALIGN_COMM_TIMEOUT_S  collective watchdog (default 600 s), forwarded to every rank
#   DRY_RUN=1          print the command, do not run it
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
np=1
if [[ ${1:-} == -np || ${1:-} == -n ]]; then np=$2; shift 2; fi
[[ $np =~ ^[0-9]+$ && $np -ge 1 ]] || { echo "local.sh: -np needs a positive integer, got '$np'" >&2; exit 2; }
[[ $# -ge 1 ]] || { echo "usage: launch/launchers/local.sh -np N <dualign subcommand> [key=value ...]" >&2; exit 2; }
bin=${DUALIGN_BIN:-$root/build/bin/dualign}
[[ -x $bin ]] || { echo "local.sh: no executable at $bin (build first: bash launch/build.sh, or set DUALIGN_BIN)" >&2; exit 2; }

cores=$(nproc)
threads=${OMP_NUM_THREADS:-$(( cores / np > 0 ? cores / np : 1 ))}
export OMP_NUM_THREADS=$threads DUALIGN_THREADS=$threads

mpi=(mpirun -np "$np" --bind-to none --map-by slot)
[[ $(id -u) -eq 0 ]] && mpi+=(--allow-run-as-root)
(( np > cores )) && mpi+=(--oversubscribe)
mpi+=(-x OMP_NUM_THREADS -x DUALIGN_THREADS -x PATH -x LD_LIBRARY_PATH)
for v in $(compgen -e | grep -E '^(DUALIGN_COMM_TIMEOUT_S|DUALIGN_MPI_POLL_US|NCCL_[A-Z_]+|CUDA_VISIBLE_DEVICES)$' || true); do mpi+=(-x "$v"); done
# shellcheck disable=SC2206
[[ -n ${MPIRUN_ARGS:-} ]] && mpi+=(${MPIRUN_ARGS})

args=("$@")
if [[ -n ${RUN_DIR:-} && ${args[0]} == train ]] && ! printf '%s\n' "${args[@]}" | grep -q '^run\.dir='; then
  args+=("run.dir=$RUN_DIR")
fi
cmd=("${mpi[@]}" "$bin" "${args[@]}")
printf -v line '%q ' "${cmd[@]}"
echo "[launch] OMP_NUM_THREADS=$threads ${line% }"
if [[ -n ${RUN_DIR:-} ]]; then
  mkdir -p "$RUN_DIR"
  echo "OMP_NUM_THREADS=$threads ${line% }" >"$RUN_DIR/launch_command.txt"
fi
[[ ${DRY_RUN:-0} == 1 ]] && exit 0

# Ctrl-C / SIGTERM: checkpoint and stop (exit 75) instead of mpirun's kill; a second Ctrl-C aborts (stoppable.sh).
# shellcheck source=stoppable.sh
source "$(dirname "$0")/stoppable.sh"
run_stoppable "${cmd[@]}"
