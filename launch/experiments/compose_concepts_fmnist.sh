#!/usr/bin/env bash
# Concept composition by class (AND over classes of one class-conditional model), dual-only, end to end
# (~10 min on 2 cores):
#   1. data      14x14 Fashion-MNIST (train and test)
#   2. judge     the held-out classifier (odd half of the training set; the same file as fmnist_pipeline.sh's),
#                per concept c the evaluation reward log p(c | x)
#   3. train     the class-conditional reference, experiment=fmnist_class_pretrain (label dropout 0.1), mpirun -np $NP
#   4. compose   dualign compose --classes under mpirun -np $NP: three concept sets, each at equal weights and at
#                the dual weights (Algorithm 3: λ ← proj_simplex(λ + η KL̂)):
#                  tops  = {0 T-shirt, 2 pullover, 6 shirt}, footwear = {5 sandal, 7 sneaker, 9 ankle boot},
#                  pair  = {7 sneaker, 9 ankle boot} (with two concepts Algorithm 3's estimates balance at ½, ½
#                          by construction, src/compose/README.md: λ stays equal)
#   5. summary   equal vs dual weights: KL estimates, per-concept held-out log p(c | x) and their minimum
#                -> $root/compose/concepts/summary.json, sample grids <set>/samples_{equal,final}.png
# Steps whose outputs exist are skipped (FRESH=1 redoes the compositions).
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"
out=$root/compose/concepts
data=$data_dir/fmnist14
single_threaded  # every step passes threads=1 / --threads 1
[[ ${FRESH:-0} == 1 ]] && rm -rf "$out"

say "1/5 data"
[[ -f $data/fmnist-test.h5 ]] || timed "$bin" data fmnist --out "$data" --downsample 2 > /dev/null

say "2/5 held-out classifier"
[[ -f $data/heldout_classifier.h5 ]] || timed "$bin" reward train-classifier --data "$data/fmnist-train.h5" \
  --test "$data/fmnist-test.h5" --split odd --seed 2 --width 24 --threads 1 --out "$data/heldout_classifier.h5"
mkdir -p "$out/rewards"
for c in 0 1 2 3 4 5 6 7 8 9; do
  printf 'kind: classifier\ncheckpoint: %s\nclasses: [%s]\noutput: log_prob\n' "$data/heldout_classifier.h5" "$c" \
    > "$out/rewards/class_$c.yaml"
done

say "3/5 class-conditional reference (mpirun -np $np)"
[[ -f $root/fmnist/class_pretrain/ckpt/latest ]] || timed mpi train experiment=fmnist_class_pretrain run.root="$root" \
  data_dir="$data_dir" run.progress=false threads=1

declare -A sets=([tops]="0 2 6" [footwear]="5 7 9" [pair]="7 9")
for name in tops footwear pair; do
  say "4/5 compose $name = classes ${sets[$name]} (mpirun -np $np)"
  rewards=()
  for c in ${sets[$name]}; do rewards+=("$out/rewards/class_$c.yaml"); done
  # shellcheck disable=SC2086
  [[ -f $out/$name/compose.json ]] || timed mpi compose --mode dual --models "$root/fmnist/class_pretrain" \
    --classes ${sets[$name]} --guidance "${GUIDANCE:-1}" --rewards "${rewards[@]}" --out "$out/$name" \
    --rounds ${ROUNDS:-20} -n 128 --strata 10 --steps 25 --dual-lr ${DUAL_LR:-0.03} --eval-n 400 --threads 1
done

say "5/5 summary"
"$py" data_tools/compose_summary.py tops="$out/tops" footwear="$out/footwear" --out "$out/summary.json" ${CHECK:+--check}
"$py" data_tools/compose_summary.py pair="$out/pair" --out "$out/summary_pair.json"
