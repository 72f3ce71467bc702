#!/usr/bin/env bash
# Fairness by dual training (OR composition over classes) on Fashion-MNIST 14x14 with three minority classes:
#   1. data         balanced 14x14 set (held-out classifier, test set) and the imbalanced training set: the classes
#                   $MINORITY (default "1 5 8": trouser, sandal, bag) at 10% (dualign data fmnist --class-fraction)
#   2. classifiers  the held-out evaluation classifier (odd half of the BALANCED training set, seed 2, width 24, as
#                   launch/experiments/fmnist_pipeline.sh), never used in training; and the training-side classifier
#                   of the constraint (even half of the IMBALANCED set, seed 1): all a user with only that data could
#                   train
#   3. sft          unconstrained: plain SFT on the imbalanced data (experiment=fmnist_pretrain, mpirun -np $NP)
#   4. continue     from that model, same steps/batch/lr/EMA: plain SFT (experiment=fmnist_fair_sft) and the
#                   constrained model (experiment=fmnist_fair: mixture over classes, constraint class_frequency);
#                   with ABLATIONS=1 (default) also λ fixed at uniform (dual lr 0) and the paper's KL form
#                   (constraint kl, per-class ELBO against the reference; src/methods/mixture.h)
#   5. evaluate     $EVAL_N samples per model (same x_T), held-out classifier: class shares, TV to uniform,
#                   Fréchet distance of the classifier's logits to the balanced test set; sample grids
#   6. summary      $ROOT/fair/summary.json and summary.md (data_tools/fairness_summary.py)
# Steps whose outputs exist are skipped (FRESH=1 redoes the runs). Extra arguments go to the constrained run.
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"
pre_steps=${PRE_STEPS:-2000}
ft_steps=${FT_STEPS:-1000}
eval_n=${EVAL_N:-2000}
export OMP_NUM_THREADS=$threads  # single-process steps; mpi steps get $per_rank
minority_classes=${MINORITY:-1 5 8}
balanced=$data_dir/fmnist14
minority=$data_dir/fmnist14_minority_${minority_classes// /_}
[[ ${FRESH:-0} == 1 ]] && rm -rf "$root/fair"
mkdir -p "$root/fair"
train() { mpi train run.root="$root" data_dir="$data_dir" run.progress=false threads=$per_rank "$@"; }
classifier() {  # classifier DATA SPLIT SEED OUT
  [[ -f $4 ]] || timed "$bin" reward train-classifier --data "$1" --test "$balanced/fmnist-test.h5" --split "$2" \
    --seed "$3" --width 24 --out "$4"
}

say "1/6 data"
[[ -f $balanced/fmnist-test.h5 ]] || timed "$bin" data fmnist --out "$balanced" --downsample 2 > /dev/null
fractions=()
for c in $minority_classes; do fractions+=("$c=0.1"); done
[[ -f $minority/fmnist-train.h5 ]] || timed "$bin" data fmnist --out "$minority" --downsample 2 \
  --class-fraction "${fractions[@]}" > /dev/null
# Class counts of the imbalanced training set: the mixture's group frequencies (and the classifier's prior).
counts=$("$py" -c "import h5py, numpy as np; print(','.join(map(str, np.bincount(h5py.File('$minority/fmnist-train.h5')['labels'][()], minlength=10))))")
say "  training-set class counts: [$counts]"

say "2/6 classifiers: held-out (balanced data, odd half) and training-side (imbalanced data, even half)"
classifier "$balanced/fmnist-train.h5" odd 2 "$balanced/heldout_classifier.h5"
classifier "$minority/fmnist-train.h5" even 1 "$minority/train_classifier.h5"
echo "checkpoint: $balanced/heldout_classifier.h5" > "$root/fair/classifier.yaml"

say "3/6 unconstrained SFT on the imbalanced data ($pre_steps steps, mpirun -np $np)"
[[ -f $root/fair/sft/ckpt/latest ]] || timed train experiment=fmnist_pretrain data.path="$minority/fmnist-train.h5" \
  train.steps="$pre_steps" run.dir="$root/fair/sft"

say "4/6 from it, $ft_steps more steps: plain SFT, the constrained model$([[ ${ABLATIONS:-1} == 1 ]] && echo ', the ablations')"
common=(train.steps="$ft_steps" data.path="$minority/fmnist-train.h5" method.group_frequency="[$counts]")
finetune() {  # finetune NAME OVERRIDES...
  local name=$1; shift
  [[ -f $root/fair/$name/ckpt/latest ]] || timed train experiment=fmnist_fair "${common[@]}" \
    method.class_frequency.classifier="$minority/train_classifier.h5" run.dir="$root/fair/$name" "$@"
}
[[ -f $root/fair/sft_continued/ckpt/latest ]] || timed train experiment=fmnist_fair_sft train.steps="$ft_steps" \
  data.path="$minority/fmnist-train.h5"
finetune mixture "$@"
if [[ ${ABLATIONS:-1} == 1 ]]; then
  finetune mixture_uniform method.constraint=cross_entropy method.dual.lr=0
  finetune mixture_kl method.constraint=kl method.dual.lr=0.004 method.dual.warmup_updates=5 method.dual.slack_ema=0.9
fi

say "5/6 evaluate ($eval_n samples per model, held-out classifier)"
ev() {  # ev NAME MODEL (reference: the continued SFT model, same x_T)
  [[ -f $root/fair/eval_$1.json ]] || timed "$bin" eval --model "$2" --reference "$root/fair/sft_continued" \
    --classifier "$root/fair/classifier.yaml" --frechet-data "$balanced/fmnist-test.h5" -n "$eval_n" --steps 25 \
    --kl none --seed 7 --out "$root/fair/eval_$1.json" --png "$root/fair/samples_$1.png" > /dev/null
}
ev constrained "$root/fair/mixture"
ev sft "$root/fair/sft"
if [[ ${ABLATIONS:-1} == 1 ]]; then
  ev uniform "$root/fair/mixture_uniform"
  ev kl "$root/fair/mixture_kl"
fi

say "6/6 summary"
"$py" data_tools/fairness_summary.py --root "$root/fair" --minority $minority_classes --out "$root/fair/summary.json"
cat "$root/fair/summary.md"
