#!/usr/bin/env bash
# Grid sweep: one run per combination of comma-separated values, each in its own run dir.
#   launch/launchers/sweep.sh [--slurm] [-np N] train experiment=gmm_sft -- train.lr=1e-3,3e-4 seed=0,1
# Arguments before `--` are common to every run; after `--`, each key=v1,v2,... is a sweep axis.
# Runs go one after another through launch/launchers/local.sh (or, with --slurm, are submitted with
# sbatch launch/launchers/slurm.sbatch), with RUN_DIR=$SWEEP_DIR/<index>_<key=value...> (SWEEP_DIR default
# outputs/sweep-<date-time>).
# DRY_RUN=1 prints every command without running.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
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
[[ ${#common[@]} -ge 1 ]] || { echo "usage: launch/launchers/sweep.sh [--slurm] [-np N] <subcommand> [k=v ...] -- k=v1,v2 ..." >&2; exit 2; }

combos=("")  # each combination is a tab-separated list of key=value
for axis in "$@"; do
  [[ $axis == *=* ]] || { echo "sweep.sh: axis '$axis' must look like key=v1,v2" >&2; exit 2; }
  key=${axis%%=*}
  IFS=, read -r -a values <<<"${axis#*=}"
  next=()
  for c in "${combos[@]}"; do
    for v in "${values[@]}"; do next+=("${c:+$c$'\t'}$key=$v"); done
  done
  combos=("${next[@]}")
done

sweep_dir=${SWEEP_DIR:-outputs/sweep-$(date +%Y-%m-%d_%H-%M-%S)}
mkdir -p "$sweep_dir"
echo "[sweep] ${#combos[@]} run(s) in $sweep_dir"
i=0
failed=0
for c in "${combos[@]}"; do
  IFS=$'\t' read -r -a overrides <<<"$c"
  name=$(printf '%03d' "$i")
  for o in "${overrides[@]}"; do name+="_${o//\//-}"; done
  run_dir="$sweep_dir/$name"
  echo "[sweep] run $i: ${overrides[*]:-(no overrides)}"
  if [[ $slurm == 1 ]]; then
    # shellcheck disable=SC2054  # the comma separates sbatch --export entries
    cmd=(sbatch --export=ALL,RUN_DIR="$run_dir" "$here/slurm.sbatch" "${common[@]}" "${overrides[@]}")
    printf -v line '%q ' "${cmd[@]}"
    echo "[sweep] ${line% }"
    [[ ${DRY_RUN:-0} == 1 ]] || "${cmd[@]}" || failed=$((failed + 1))
  else
    RUN_DIR=$run_dir "$here/local.sh" -np "$np" "${common[@]}" "${overrides[@]}" || failed=$((failed + 1))
  fi
  i=$((i + 1))
done
echo "[sweep] done: $i run(s), $failed failed"
[[ $failed == 0 ]]
