#!/usr/bin/env bash
# Constrained alignment on Fashion-MNIST 14x14, the primal-dual run against the equal-weight baseline, per seed:
#   CONFIG=fmnist_constrained         footwear = p(sandal, sneaker, ankle boot | x) >= 0.45  and  tops >= 0.45
#   CONFIG=fmnist_constrained_bright  footwear >= reference + 0.5 sd  and  brightness >= reference (z-scored)
# Needs the data, classifiers and reference of launch/experiments/fmnist_pipeline.sh steps 1-3 (data/fmnist14/*,
# outputs/fmnist/pretrain). For each seed in $SEEDS (default 0) runs the constrained method and the equal-weight
# baseline (method.dual.lr=0, λ = $EQUAL for every constraint, default the config's dual.init) under mpirun -np $NP,
# evaluates E r_i ± SE on $EVAL_N fresh samples (the training sampler: DDIM η=1, 10 steps) and the path KL, and
# writes $root/fmnist/<config>/summary.json (per run, and over seeds). Extra arguments go to every training run.
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"
config=${CONFIG:-fmnist_constrained}
seeds=${SEEDS:-0}
eval_n=${EVAL_N:-1000}
out=$root/fmnist/${config#fmnist_}
classifier=$data_dir/fmnist14/reward_classifier.h5
case $config in
  fmnist_constrained) rewards="footwear:5,7,9 tops:0,2,4,6"; constraints=(footwear=0.45 tops=0.45:tops) ;;
  fmnist_constrained_bright) rewards="footwear:5,7,9 brightness"; constraints=(footwear=run brightness=run:brightness) ;;
  *) echo "CONFIG: expected fmnist_constrained or fmnist_constrained_bright, got '$config'" >&2; exit 2 ;;
esac
mkdir -p "$out"
for f in "$classifier" "$root/fmnist/pretrain/ckpt/latest"; do
  [[ -e $f ]] || { echo "missing $f: run launch/experiments/fmnist_pipeline.sh (steps 1-3) first" >&2; exit 2; }
done
train() { timed mpi train experiment="$config" run.root="$root" data_dir="$data_dir" run.progress=false \
  threads="$per_rank" "$@"; }
reward_args=()
for r in $rewards; do
  if [[ $r == *:* ]]; then
    printf 'kind: classifier\ncheckpoint: %s\nclasses: [%s]\noutput: prob\n' "$classifier" "${r#*:}" > "$out/${r%%:*}.yaml"
  else
    printf 'kind: %s\n' "$r" > "$out/$r.yaml"
  fi
  reward_args+=(--reward "$out/${r%%:*}.yaml")
done

runs=()
for seed in $seeds; do
  say "seed $seed: constrained (mpirun -np $np)"
  train seed="$seed" run.dir="$out/dual-seed$seed" "$@"
  say "seed $seed: equal weights ${EQUAL:-(dual.init)} (mpirun -np $np)"
  train seed="$seed" run.dir="$out/equal-seed$seed" method.dual.lr=0 ${EQUAL:+method.dual.init=$EQUAL} "$@"
  for run in dual equal; do
    say "seed $seed: evaluate $run ($eval_n samples, training sampler)"
    timed "$bin" eval --model "$out/$run-seed$seed" --reference "$root/fmnist/pretrain" "${reward_args[@]}" \
      -n "$eval_n" --sampler ddim --steps 10 --eta 1 --seed $((11 + seed)) --batch 500 --threads "$threads" \
      --kl path --kl-sampler ddim --kl-steps 10 --kl-n 500 --png "$out/$run-seed$seed/samples.png" \
      --out "$out/$run-seed$seed/eval.json" > /dev/null
    runs+=("$run-seed$seed")
  done
done

say "summary -> $out/summary.json"
"$py" data_tools/constrained_summary.py --root "$out" --runs "${runs[@]}" "${constraints[@]/#/--constraint=}"
