#!/usr/bin/env bash
# Preference-alignment sweeps for the report: every METHOD x BETA x SEED is trained from the same reference on
# the same pairs, evaluated against the reference, and summarised by data_tools/report.py (mean and spread over
# seeds, reward-vs-KL frontier).
#   launch/experiments/preference_sweep.sh gmm     2-D mixture toward [2.5, 0]; KL by PF-ODE likelihoods (exact
#                                                  divergence)
#   launch/experiments/preference_sweep.sh fmnist  Fashion-MNIST toward footwear; path KL; needs
#                                                  launch/experiments/fmnist_pipeline.sh to have produced the
#                                                  reference, classifiers and pairs
# Knobs: METHODS ("dpo dmpo"), BETAS, SEEDS ("0 1 2"), NP (ranks per run, 1), THREADS (all cores, split over the
# ranks), EVAL_N, RUN_ROOT, DATA_DIR; OVERRIDES: extra overrides for every training run (space-separated, e.g.
# "train.precision=bf16"); TAG: appended to every run directory and to the report directory (e.g. TAG=bf16, so a
# bf16 sweep sits beside the fp32 one); GROUP_BY: the report's row keys (method.name,method.beta).
# Runs that already have eval.json are skipped.
set -euo pipefail
task=${1:?usage: launch/experiments/preference_sweep.sh gmm|fmnist}
: "${NP:=1}"  # one rank per run unless NP says otherwise
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"
methods=${METHODS:-dpo dmpo}
seeds=${SEEDS:-0 1 2}
read -r -a overrides <<< "${OVERRIDES:-}"
tag=${TAG:-}

case $task in
  gmm)
    betas=${BETAS:-100 300 1000 3000}
    eval_n=${EVAL_N:-2000}
    data=$data_dir/gmm
    [[ -f $root/gmm/sft/ckpt/latest ]] || "$bin" train experiment=gmm_sft run.root="$root" run.progress=false > /dev/null
    mkdir -p "$data"
    [[ -f $data/pairs.h5 ]] || "$bin" data pairs --model "$root/gmm/sft" -n 8000 --reward configs/reward/gmm_target.yaml \
      --bt-beta 1 --seed 1 --batch 4000 --out "$data/pairs.h5" --labelled-out "$data/labelled.h5" > /dev/null
    [[ -f $data/heldout_pairs.h5 ]] || "$bin" data pairs --model "$root/gmm/sft" -n 1000 --reward configs/reward/gmm_target.yaml \
      --bt-beta 1 --seed 2 --batch 2000 --out "$data/heldout_pairs.h5" > /dev/null
    reference=$root/gmm/sft
    eval_args=(--reward configs/reward/gmm_target.yaml --kl pfode --kl-n 500 --steps 50 --batch 2000)
    ;;
  fmnist)
    betas=${BETAS:-1000 2500 5000}
    eval_n=${EVAL_N:-500}
    data=$data_dir/fmnist14
    reference=$root/fmnist/pretrain
    for f in "$reference/ckpt/latest" "$data/pairs.h5" "$root/fmnist/heldout_reward.yaml"; do
      [[ -e $f ]] || { echo "missing $f: run launch/experiments/fmnist_pipeline.sh first" >&2; exit 2; }
    done
    eval_args=(--reward "$root/fmnist/reward.yaml" --heldout-reward "$root/fmnist/heldout_reward.yaml"
               --classifier "$root/fmnist/heldout_reward.yaml" --kl path --kl-n 100 --steps 20)
    ;;
  *) echo "unknown task '$task' (gmm | fmnist)" >&2; exit 2 ;;
esac

runs=()
for method in $methods; do
  for beta in $betas; do
    for seed in $seeds; do
      args=("experiment=${task}_$method" run.root="$root" data_dir="$data_dir" method.beta="$beta" seed="$seed"
            run.progress=false "${overrides[@]}")
      run_dir=$("$bin" train "${args[@]}" --cfg job --resolve | sed -n 's/^  dir: //p' | head -n 1)
      if [[ -n $tag ]]; then
        run_dir=$run_dir-$tag
        args+=(run.dir="$run_dir")
      fi
      runs+=("$run_dir")
      [[ -f $run_dir/eval.json ]] && continue
      say "$method beta=$beta seed=$seed -> $run_dir"
      mpi train "${args[@]}" > /dev/null
      "$bin" eval --model "$run_dir" --reference "$reference" "${eval_args[@]}" --pairs "$data/heldout_pairs.h5" \
        --beta "$beta" -n "$eval_n" --seed 100 --out "$run_dir/eval.json" --png "$run_dir/samples.png" > /dev/null
    done
  done
done
report=$root/$task/report${tag:+-$tag}
"$py" data_tools/report.py "${runs[@]}" --out "$report" --group-by "${GROUP_BY:-method.name,method.beta}" > /dev/null
say "report: $report/report.md"
cat "$report/report.md"
