#!/usr/bin/env bash
# DDO on images (experiment=fmnist_ddo_bright): dual averaging toward brighter Fashion-MNIST images, per seed in
# $SEEDS (default "0 1 2") under mpirun -np $NP, then the per-iterate rewards over seeds
# ($root/fmnist/ddo_bright/summary.json) and a figure of the exact tilt q_k per k for the first seed
# (iterates.png). Needs the reference of launch/experiments/fmnist_pipeline.sh (outputs/fmnist/pretrain).
# Extra arguments go to every `dualign ddo` run.
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"
seeds=${SEEDS:-0 1 2}
out=$root/fmnist/ddo_bright
[[ -e $root/fmnist/pretrain/ckpt/latest ]] || { echo "missing $root/fmnist/pretrain: run launch/experiments/fmnist_pipeline.sh first" >&2; exit 2; }
runs=()
for seed in $seeds; do
  say "seed $seed: dualign ddo (mpirun -np $np)"
  timed mpi ddo experiment=fmnist_ddo_bright run.root="$root" seed="$seed" run.dir="$out/seed$seed" \
    threads="$per_rank" "$@"
  runs+=("$out/seed$seed")
done
say "summary -> $out/summary.json, $out/iterates.png"
"$py" data_tools/ddo_iterates_summary.py "${runs[@]}" --out "$out/summary.json" --figure "$out/iterates.png"
