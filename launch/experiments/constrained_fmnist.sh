#!/usr/bin/env bash
# Constrained alignment on Fashion-MNIST 14x14 with two competing classifier rewards (experiment=fmnist_constrained):
#   footwear = p(sandal, sneaker, ankle boot | x) >= 0.45   and   tops = p(t-shirt, pullover, coat, shirt | x) >= 0.45
# Needs the data, classifiers and reference of launch/experiments/fmnist_pipeline.sh steps 1-3 (data/fmnist14/*,
# outputs/fmnist/pretrain). Runs the constrained method and the equal-weight baseline (method.dual.lr=0, λ = $EQUAL) under mpirun
# -np $NP, then evaluates E r_i ± SE on $EVAL_N fresh samples (training sampler: DDIM η=1, 10 steps) and the path KL,
# and writes $root/fmnist/constrained/summary.json. Extra arguments go to both training runs.
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"
equal=${EQUAL:-1.0}
eval_n=${EVAL_N:-1000}
out=$root/fmnist/constrained
mkdir -p "$out"
for f in "$data_dir/fmnist14/reward_classifier.h5" "$root/fmnist/pretrain/ckpt/latest"; do
  [[ -e $f ]] || { echo "missing $f: run launch/experiments/fmnist_pipeline.sh (steps 1-3) first" >&2; exit 2; }
done
train() { timed mpi train experiment=fmnist_constrained run.root="$root" data_dir="$data_dir" run.progress=false \
  threads="$per_rank" "$@"; }

say "1/4 constrained (mpirun -np $np)"
train run.dir="$out/dual" "$@"
say "2/4 equal weights $equal (mpirun -np $np)"
train run.dir="$out/equal" method.dual.lr=0 method.dual.init="$equal" "$@"

say "3/4 evaluate ($eval_n samples, training sampler)"
for c in footwear:5,7,9 tops:0,2,4,6; do
  printf 'kind: classifier\ncheckpoint: %s\nclasses: [%s]\noutput: prob\n' "$data_dir/fmnist14/reward_classifier.h5" \
    "${c#*:}" > "$out/${c%%:*}.yaml"
done
for run in dual equal; do
  timed "$bin" eval --model "$out/$run" --reference "$root/fmnist/pretrain" --reward "$out/footwear.yaml" \
    --reward "$out/tops.yaml" -n "$eval_n" --sampler ddim --steps 10 --eta 1 --seed 11 --batch 500 \
    --threads "$threads" --kl path --kl-sampler ddim --kl-steps 10 --kl-n 500 --out "$out/$run/eval.json" > /dev/null
done

say "4/4 summary -> $out/summary.json"
"$py" data_tools/constrained_summary.py --root "$out" --constraint footwear=0.45 --constraint tops=0.45:tops
