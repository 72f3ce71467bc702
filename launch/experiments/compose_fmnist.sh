#!/usr/bin/env bash
# AND composition of three Fashion-MNIST models, dual-only (Algorithm 3), end to end (~20 min on 2 cores):
#   1. data      14x14 Fashion-MNIST: the full set (classifier) and three class subsets,
#                A = tops {0 T-shirt, 2 pullover, 3 dress, 4 coat, 6 shirt}, B = footwear {5 sandal, 7 sneaker,
#                9 boot}, C = {1 trouser, 8 bag}. (Three, not two: with two models the surrogate estimates are
#                KL̂_A ∝ λ_B² and KL̂_B ∝ λ_A² times the same E‖ε_A − ε_B‖², so Algorithm 3 always returns ½, ½.)
#   2. reward    the reward classifier (even half of the training set); per-model reward
#                r_i(x) = log p(class ∈ subset_i | x) (configs/compose/fmnist_reward_*.yaml)
#   3. train     unconditional UNets on A, B and C (experiment=fmnist_pretrain, data.path overridden), mpirun -np $NP
#   4. compose   dual-only: DDIM on Σ λ_i ε_i, KL by Lemma 2, λ ← proj_simplex(λ + η KL̂), mpirun -np $NP
#   5. summary   equal weights vs final λ: KL estimates and their ratio, per-model rewards and their minimum
#                -> $root/compose/fmnist/summary.json, sample grids samples_equal.png / samples_final.png
# Steps whose outputs exist are skipped (FRESH=1 redoes everything).
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"
steps=${TRAIN_STEPS:-1500}
out=$root/compose/fmnist
single_threaded  # every step passes threads=1 / --threads 1
[[ ${FRESH:-0} == 1 ]] && rm -rf "$out" "$data_dir"/fm_and_[abc]

say "1/5 data"
[[ -f $data_dir/fmnist14/fmnist-test.h5 ]] || timed "$bin" data fmnist --out "$data_dir/fmnist14" --downsample 2 > /dev/null
[[ -f $data_dir/fm_and_a/fmnist-train.h5 ]] || timed "$bin" data fmnist --out "$data_dir/fm_and_a" --downsample 2 --classes 0 2 3 4 6 > /dev/null
[[ -f $data_dir/fm_and_b/fmnist-train.h5 ]] || timed "$bin" data fmnist --out "$data_dir/fm_and_b" --downsample 2 --classes 5 7 9 > /dev/null
[[ -f $data_dir/fm_and_c/fmnist-train.h5 ]] || timed "$bin" data fmnist --out "$data_dir/fm_and_c" --downsample 2 --classes 1 8 > /dev/null

say "2/5 reward classifier"
[[ -f $data_dir/fmnist14/reward_classifier.h5 ]] || timed "$bin" reward train-classifier --data "$data_dir/fmnist14/fmnist-train.h5" \
  --test "$data_dir/fmnist14/fmnist-test.h5" --split even --seed 1 --threads 1 --out "$data_dir/fmnist14/reward_classifier.h5"
mkdir -p "$out"
for r in tops footwear bottoms_bags; do
  sed "s|checkpoint: .*|checkpoint: $data_dir/fmnist14/reward_classifier.h5|" configs/compose/fmnist_reward_$r.yaml > "$out/reward_$r.yaml"
done

for m in a b c; do
  say "3/5 train model $m ($steps steps, mpirun -np $np)"
  [[ -f $out/model_$m/ckpt/latest ]] || timed mpi train experiment=fmnist_pretrain data.path="$data_dir/fm_and_$m/fmnist-train.h5" \
    run.dir="$out/model_$m" train.steps="$steps" train.checkpoint_every=0 run.progress=false threads=1
done

say "4/5 dual-only composition (mpirun -np $np)"
[[ -f $out/dual/compose.json ]] || timed mpi compose --mode dual --models "$out/model_a" "$out/model_b" "$out/model_c" \
  --rewards "$out/reward_tops.yaml" "$out/reward_footwear.yaml" "$out/reward_bottoms_bags.yaml" --out "$out/dual" \
  --rounds ${ROUNDS:-8} -n 128 --strata 10 --steps 25 --dual-lr ${DUAL_LR:-0.003} --eval-n 400 --threads 1

say "5/5 summary"
"$py" data_tools/compose_summary.py fmnist="$out/dual" --out "$out/summary.json" ${CHECK:+--check}
