#!/usr/bin/env bash
# Fashion-MNIST preference alignment end to end (the README's main job; ~10 min on 2 cores):
#   1. data        Fashion-MNIST IDX (Debian dataset-fashion-mnist) -> 14x14 HDF5
#   2. rewards     a reward classifier (even half of the training set) and an independent held-out
#                  evaluation classifier (odd half, other seed and width)
#   3. pretrain    the reference UNet by denoising score matching (experiment=fmnist_pretrain)
#   4. pairs       pairs of the reference's own samples, labelled by Bradley-Terry from the reward
#                  "footwear" = log p(sandal, sneaker or ankle boot | x); plus held-out pairs
#   5. align       DMPO (or METHOD=dpo|kto) under mpirun -np $NP from the reference
#   6. evaluate    held-out reward, win rate vs the reference, path KL, class histogram, implicit accuracy
#   7. report      PNG plots + Markdown table (data_tools/report.py), reference vs aligned side by side
# Steps whose outputs exist are skipped (FRESH=1 redoes everything). SEED (0) seeds the reference, the pairs and
# the alignment (the classifiers stay fixed: they are the measuring instruments); give each SEED its own RUN_ROOT
# and DATA_DIR. Extra arguments go to the align step's `dualign train` (e.g. method.beta=1000).
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"
data=$data_dir/fmnist14
method=${METHOD:-dmpo}
pairs=${PAIRS:-2000}
eval_n=${EVAL_N:-500}
seed=${SEED:-0}
export OMP_NUM_THREADS=$threads  # single-process steps; mpi steps get $per_rank
[[ ${FRESH:-0} == 1 ]] && rm -rf "$data" "$root/fmnist"

say "1/7 data -> $data"
[[ -f $data/fmnist-test.h5 ]] || timed "$bin" data fmnist --out "$data" --downsample 2 > /dev/null

say "2/7 reward and held-out classifiers"
[[ -f $data/reward_classifier.h5 ]] || timed "$bin" reward train-classifier --data "$data/fmnist-train.h5" \
  --test "$data/fmnist-test.h5" --split even --seed 1 --out "$data/reward_classifier.h5"
[[ -f $data/heldout_classifier.h5 ]] || timed "$bin" reward train-classifier --data "$data/fmnist-train.h5" \
  --test "$data/fmnist-test.h5" --split odd --seed 2 --width 24 --out "$data/heldout_classifier.h5"
# Reward files point at this pipeline's data dir.
mkdir -p "$root/fmnist"
sed "s|checkpoint: .*|checkpoint: $data/reward_classifier.h5|" configs/reward/fmnist_footwear.yaml > "$root/fmnist/reward.yaml"
sed "s|checkpoint: .*|checkpoint: $data/heldout_classifier.h5|" configs/reward/fmnist_footwear_heldout.yaml > "$root/fmnist/heldout_reward.yaml"

say "3/7 pretrain the reference (mpirun -np $np)"
[[ -f $root/fmnist/pretrain/ckpt/latest ]] || timed mpi train experiment=fmnist_pretrain run.root="$root" \
  data_dir="$data_dir" run.progress=false seed="$seed"

say "4/7 preference pairs from the reference's samples ($pairs pairs + 250 held out)"
[[ -f $data/pairs.h5 ]] || timed "$bin" data pairs --model "$root/fmnist/pretrain" -n "$pairs" --reward "$root/fmnist/reward.yaml" \
  --bt-beta 1 --steps 20 --seed $((1 + 2 * seed)) --out "$data/pairs.h5" --labelled-out "$data/labelled.h5"
[[ -f $data/heldout_pairs.h5 ]] || timed "$bin" data pairs --model "$root/fmnist/pretrain" -n 250 --reward "$root/fmnist/heldout_reward.yaml" \
  --bt-beta 1 --steps 20 --seed $((2 + 2 * seed)) --out "$data/heldout_pairs.h5"

say "5/7 align: $method (mpirun -np $np)"
run_dir=$("$bin" train experiment=fmnist_$method run.root="$root" data_dir="$data_dir" seed="$seed" "$@" --cfg job --resolve |
  sed -n 's/^  dir: //p' | head -n 1)
timed mpi train experiment=fmnist_$method run.root="$root" data_dir="$data_dir" run.progress=false seed="$seed" "$@"

say "6/7 evaluate $run_dir against the reference"
timed "$bin" eval --model "$run_dir" --reference "$root/fmnist/pretrain" --reward "$root/fmnist/reward.yaml" \
  --heldout-reward "$root/fmnist/heldout_reward.yaml" --classifier "$root/fmnist/heldout_reward.yaml" \
  --frechet-data "$data/fmnist-test.h5" --pairs "$data/heldout_pairs.h5" --beta "$(sed -n 's/^  beta: //p' "$run_dir/config.yaml" | head -n 1)" \
  -n "$eval_n" --steps 20 --kl path --kl-n 100 --out "$run_dir/eval.json" --png "$run_dir/samples.png"

say "7/7 report"
"$py" data_tools/report.py "$run_dir" --out "$root/fmnist/report" > /dev/null
# Reference and aligned model side by side from the same x_T (seed 7), upscaled: what a person looks at first.
for m in reference aligned; do
  model=$([[ $m == reference ]] && echo "$root/fmnist/pretrain" || echo "$run_dir")
  "$bin" sample --model "$model" -n 48 --seed 7 --steps 50 --out "$root/fmnist/report/samples_$m.h5" > /dev/null
done
"$py" data_tools/side_by_side.py --left "$root/fmnist/report/samples_reference.h5" \
  --right "$root/fmnist/report/samples_aligned.h5" --left-title "reference (pretrained)" \
  --right-title "$method toward footwear" --out "$root/fmnist/report/side_by_side.png" > /dev/null
say "done: $root/fmnist/report/report.md, $root/fmnist/report/side_by_side.png"
cat "$root/fmnist/report/report.md"
