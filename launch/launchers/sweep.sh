#!/usr/bin/env bash
# Grid sweep: one run per combination, each in its own run dir, each under its own mpirun (or sbatch).
#   launch/launchers/sweep.sh [--slurm] [-np N] train experiment=gmm_sft -- train.lr=1e-3,3e-4 seed=range(0,2)
# Arguments before `--` are common to every run; after `--` come the sweep axes in dualign's grammar (a,b,c,
# choice(a,b), range(start,stop,step); see docs/usage.md). The run list is what `dualign train -m --print-runs`
# prints (it composes and validates every run first), so list values like train.betas=[0.9,0.99] stay one value.
# Runs go one after another through launch/launchers/local.sh (or, with --slurm, are submitted with
# sbatch launch/launchers/slurm.sbatch), with RUN_DIR=$SWEEP_DIR/<index>_<key=value...> (SWEEP_DIR default
# outputs/sweep-<date-time>). Exit status: 0 only if every run succeeded (or, with --slurm, was submitted).
# DRY_RUN=1 prints every command without running. DUALIGN_BIN as in local.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${DUALIGN_BIN:-$here/../../build/bin/dualign}
slurm=0
np=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --slurm) slurm=1; shift ;;
    -np|-n) np=$2; shift 2 ;;
    *) break ;;
  esac
done
common=()
while [[ $# -gt 0 && $1 != -- ]]; do common+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
usage="usage: launch/launchers/sweep.sh [--slurm] [-np N] train [k=v ...] -- k=v1,v2 ..."
[[ ${#common[@]} -ge 1 && ${common[0]} == train ]] || { echo "$usage" >&2; exit 2; }
[[ -x $bin ]] || { echo "sweep.sh: no executable at $bin (build first: bash launch/build.sh, or set DUALIGN_BIN)" >&2; exit 2; }

# train's options (--config-dir D, --config-name N) apart from the overrides common to every run.
opts=()
common_overrides=()
for ((k = 1; k < ${#common[@]}; k++)); do
  word=${common[k]}
  if [[ $word == -* ]]; then
    opts+=("$word")
    if [[ $word != *=* && $word == --config-* ]]; then k=$((k + 1)); opts+=("${common[k]}"); fi
  else
    common_overrides+=("$word")
  fi
done

# The run list from dualign itself: one line per run, the overrides of that run as shell words.
if ! listing=$("$bin" train "${opts[@]}" -m --print-runs "${common_overrides[@]}" "$@"); then
  echo "sweep.sh: dualign rejected the sweep (message above); no run was started" >&2
  exit 2
fi
mapfile -t runs <<<"$listing"
[[ ${#runs[@]} -ge 1 && -n ${runs[0]} ]] || { echo "sweep.sh: dualign listed no runs" >&2; exit 2; }

sweep_dir=${SWEEP_DIR:-outputs/sweep-$(date +%Y-%m-%d_%H-%M-%S)}
mkdir -p "$sweep_dir"
echo "[sweep] ${#runs[@]} run(s) in $sweep_dir"
ncommon=${#common_overrides[@]}
i=0
failed=0
for line in "${runs[@]}"; do
  eval "overrides=($line)"  # dualign quoted each override as one word
  axis=("${overrides[@]:$ncommon}")  # the common overrides come first, in the order given
  name=$(printf '%03d' "$i")
  for o in "${axis[@]}"; do name+="_${o//[^A-Za-z0-9=.,+-]/-}"; done
  run_dir="$sweep_dir/$name"
  echo "[sweep] run $i: ${axis[*]:-(no overrides)}"
  if [[ $slurm == 1 ]]; then
    # shellcheck disable=SC2054  # the comma separates sbatch --export entries
    cmd=(sbatch --export=ALL,RUN_DIR="$run_dir" "$here/slurm.sbatch" train "${opts[@]}" "${overrides[@]}")
    printf -v shown '%q ' "${cmd[@]}"
    echo "[sweep] ${shown% }"
    [[ ${DRY_RUN:-0} == 1 ]] || "${cmd[@]}" || failed=$((failed + 1))
  else
    RUN_DIR=$run_dir "$here/local.sh" -np "$np" train "${opts[@]}" "${overrides[@]}" || failed=$((failed + 1))
  fi
  i=$((i + 1))
done
echo "[sweep] done: $i run(s), $failed failed"
[[ $failed == 0 ]]
