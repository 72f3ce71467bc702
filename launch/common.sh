# shellcheck shell=bash disable=SC2034  # sets variables for the script that sources it
# Shared preamble of the experiment pipelines (launch/experiments/*.sh). Sourced, never run:
#   source "$(dirname "$0")/../common.sh"
# It moves to the repository root (the scripts and configs use repo-relative paths) and sets, from the
# environment, the knobs every pipeline shares (same names and defaults as before they shared this file):
#   DUALIGN_BIN   -> $bin       the binary (build/bin/dualign; must exist)
#   DUALIGN_VENV  -> $py        that venv's python (~/.cache/dualign/venv/bin/python)
#   RUN_ROOT      -> $root      where runs go (outputs)
#   DATA_DIR      -> $data_dir  where data goes (data)
#   NP            -> $np        MPI ranks (2; a script that wants another default sets NP before sourcing,
#                               e.g. `: "${NP:=1}"`)
#   THREADS       -> $threads   threads of single-process steps (all cores);
#                    $per_rank  threads of each rank under mpi: threads / np, at least 1
# and the helpers
#   say MSG...     "[<script> HH:MM:SS] MSG"
#   timed CMD...   run CMD, then say how many seconds it took
#   mpi ARGS...    launch/launchers/local.sh -np $np ARGS (the same $bin, OMP_NUM_THREADS=$per_rank)
#   single_threaded  for scripts whose every step runs one thread: OMP_NUM_THREADS=1, per_rank=1
# Launchers (launch/launchers/) do not source it: they keep the caller's working directory.

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

bin=${DUALIGN_BIN:-build/bin/dualign}
py=${DUALIGN_VENV:-$HOME/.cache/dualign/venv}/bin/python
root=${RUN_ROOT:-outputs}
data_dir=${DATA_DIR:-data}
np=${NP:-2}
threads=${THREADS:-$(nproc)}
_positive() { [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "launch/common.sh: $1 must be a positive integer, got '$2'" >&2; exit 2; }; }
_positive NP "$np"
_positive THREADS "$threads"
# Fail before the first step, not inside a step whose output goes to a log file.
[[ -x $bin ]] || { echo "launch/common.sh: no executable at DUALIGN_BIN=$bin (relative paths start at the repository root):" \
  "build it with bash launch/build.sh or set DUALIGN_BIN" >&2; exit 2; }
per_rank=$(( threads / np > 0 ? threads / np : 1 ))

_say_tag=$(basename "$0")
_say_tag=${_say_tag%.*}
say() { echo "[$_say_tag $(date +%H:%M:%S)] $*"; }
timed() { local t0=$SECONDS; "$@"; say "  ($(( SECONDS - t0 )) s)"; }
mpi() { OMP_NUM_THREADS=$per_rank DUALIGN_BIN=$bin bash launch/launchers/local.sh -np "$np" "$@"; }
single_threaded() { export OMP_NUM_THREADS=1; per_rank=1; }
