#!/usr/bin/env bash
# AND composition on 2-D Gaussian mixtures, end to end (a few minutes on 2 cores; src/compose/README.md):
#   1. train     three score MLPs on three different mixtures (configs/experiment/gmm_and_q{1,2,3}.yaml)
#   2. dual      Algorithm 3 (dual-only, DDIM on Σ λ_i ε_i) on the trained models, mpirun -np $NP
#   3. oracle    the same loop on the mixtures' exact ε (what the networks approximate), one process
#   4. primal    Algorithm 2: distil a student by DSM on annealed-Langevin samples of q_AND^(λ), mpirun -np $NP,
#                on the trained models and on the exact mixtures (primal_oracle)
#   5. summary   equal weights vs final λ: KL estimates, exact KL of the product (grid), KL of the drawn
#                samples (k-NN entropy), per-model log-likelihoods -> $root/compose/gmm/summary.json
# Steps whose outputs exist are skipped (FRESH=1 redoes everything).
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"
steps=${TRAIN_STEPS:-1500}
out=$root/compose/gmm
single_threaded  # every step passes threads=1 / --threads 1
[[ ${FRESH:-0} == 1 ]] && rm -rf "$out"

for q in q1 q2 q3; do
  say "1/5 train $q ($steps steps)"
  [[ -f $out/$q/ckpt/latest ]] || "$bin" train experiment=gmm_and_$q run.root="$root" train.steps="$steps" threads=1 \
    run.progress=false > /dev/null
done
models=("$out/q1" "$out/q2" "$out/q3")
common=(--models "${models[@]}" --rounds 15 -n 1024 --strata 10 --steps 50 --dual-lr 0.5 --eval-n 4000 --threads 1)

say "2/5 dual-only composition of the trained models (mpirun -np $np)"
[[ -f $out/dual/compose.json ]] || mpi compose --mode dual --out "$out/dual" "${common[@]}"
say "3/5 dual-only composition of the exact mixtures (oracle)"
[[ -f $out/oracle/compose.json ]] || "$bin" compose --mode dual --oracle --out "$out/oracle" "${common[@]}"
primal=(--rounds 8 -n 1024 --strata 10 --steps 50 --dual-lr 0.15 --dual-lr-decay 0.85 --eval-n 2000 --threads 1
        --mcmc-n 2048 --levels 25 --corrector-steps 5 --distill-steps 200 --distill-batch 512)
say "4/5 primal distillation (Algorithm 2, mpirun -np $np): trained models, then exact mixtures"
[[ -f $out/primal/compose.json ]] || mpi compose --mode primal --out "$out/primal" --models "${models[@]}" "${primal[@]}"
[[ -f $out/primal_oracle/compose.json ]] || mpi compose --mode primal --oracle --out "$out/primal_oracle" \
  --models "${models[@]}" "${primal[@]}"

say "5/5 summary"
"$py" data_tools/compose_summary.py dual="$out/dual" oracle="$out/oracle" primal="$out/primal" \
  primal_oracle="$out/primal_oracle" \
  --out "$out/summary.json" ${CHECK:+--check}
