#!/usr/bin/env bash
# The 2-D OR-composition demo (configs/data/gmm_or.yaml, experiment=gmm_mixture): d1 = one Gaussian, d2 = two,
# equally frequent in the data. Trains under mpirun -np $NP
#   unconstrained  method.dual.lr=0: λ stays at the data frequencies (plain SFT): mass (1/2, 1/2)
#   constrained    constraint=cross_entropy (the paper's ELBO form): the maximum-entropy mixture, mass (1/3, 2/3)
# then samples $N points from each and writes $ROOT/gmm_mixture/summary.json (data_tools/fairness_gmm2d.py).
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"
single_threaded  # the runs and the sampler pass threads=1 / --threads 1
n=${N:-20000}
steps=${STEPS:-4000}
out=$root/gmm_mixture
mkdir -p "$out"
for run in unconstrained constrained; do
  extra=()
  [[ $run == unconstrained ]] && extra=(method.dual.lr=0)
  if [[ ! -f $out/$run/ckpt/latest ]]; then
    say "train $run ($steps steps, np=$np)"
    mpi train experiment=gmm_mixture run.root="$root" run.dir="$out/$run" \
      train.steps="$steps" run.progress=false threads=1 "${extra[@]}" "$@" > "$out/$run.log" 2>&1
  fi
  say "sample $n from $run"
  "$bin" sample --model "$out/$run" -n "$n" --steps 100 --sampler ddpm --seed 3 --batch 5000 --threads 1 \
    --out "$out/samples_$run.h5" --png "$out/samples_$run.png" > /dev/null
done
"$py" data_tools/fairness_gmm2d.py --root "$out" --runs unconstrained constrained --out "$out/summary.json"
