#!/usr/bin/env bash
# Constrained alignment on the 2-D mixture, end to end (a few minutes on 2 cores):
#   1. reference   experiment=gmm_sft (skipped when $root/gmm/sft exists)
#   2. constrained experiment=gmm_constrained under mpirun -np $NP: E r_right >= -4, E r_top >= -8, dual ascent
#   3. baseline    the same with fixed equal weights (method.dual.lr=0, λ = $EQUAL for both)
#   4. exact       λ* of the exact solution p* ∝ p_ref exp(λ*ᵀr) from $REF_N reference samples
#                  (data_tools/constrained_dual_check.py), and what fixed equal weights give exactly
#   5. evaluate    E r_i ± SE on $EVAL_N fresh samples with the training sampler (DDIM η=1, 20 steps), path KL
#                  (the training estimator: Lemma 1 weights, same sampler) and PF-ODE KL to the reference
#   6. summary     $root/gmm/constrained/summary.json: per run E r_i, SE, met (E r_i + 2 SE >= b_i), KL, λ
# Extra arguments go to both training runs (e.g. seed=1).
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"
equal=${EQUAL:-0.2}
eval_n=${EVAL_N:-4000}
ref_n=${REF_N:-200000}
out=$root/gmm/constrained
mkdir -p "$out"
train() { timed mpi train experiment=gmm_constrained run.root="$root" run.progress=false threads="$per_rank" "$@"; }

say "1/6 reference (experiment=gmm_sft)"
[[ -f $root/gmm/sft/ckpt/latest ]] || timed "$bin" train experiment=gmm_sft run.root="$root" run.progress=false \
  threads="$threads"

say "2/6 constrained (mpirun -np $np)"
train run.dir="$out/dual" "$@"
say "3/6 equal weights $equal (mpirun -np $np)"
train run.dir="$out/equal" method.dual.lr=0 method.dual.init="$equal" "$@"

say "4/6 exact dual solution from $ref_n reference samples"
[[ -f $out/reference_samples.h5 ]] || timed "$bin" sample --model "$root/gmm/sft" -n "$ref_n" --sampler ddim --steps 20 \
  --eta 1 --batch 20000 --seed 7 --threads "$threads" --out "$out/reference_samples.h5"
lambda=$("$py" -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if 'dual/right/lambda' in l][-1]; \
print(r['dual/right/lambda'], r['dual/top/lambda'])" "$out/dual/metrics.jsonl")
"$py" data_tools/constrained_dual_check.py --samples "$out/reference_samples.h5" --target 2.5 0 --threshold -4 \
  --target 0 2.5 --threshold -8 --learned $lambda --equal "$equal" --out "$out/exact.json" > /dev/null

say "5/6 evaluate ($eval_n samples, training sampler)"
for run in dual equal; do
  for kl in path pfode; do
    [[ $kl == path ]] && kl_args=(--kl path --kl-sampler ddim --kl-steps 20 --kl-n 2000) || kl_args=(--kl pfode --kl-n 200 --kl-steps 60)
    timed "$bin" eval --model "$out/$run" --reference "$root/gmm/sft" --reward configs/reward/gmm_target.yaml \
      --reward configs/reward/gmm_target_top.yaml -n "$eval_n" --sampler ddim --steps 20 --eta 1 --seed 11 \
      --batch 4000 --threads "$threads" "${kl_args[@]}" --out "$out/$run/eval_$kl.json" > /dev/null
  done
done

say "6/6 summary -> $out/summary.json"
"$py" data_tools/constrained_summary.py --root "$out" --constraint right=-4 --constraint top=-8:gmm_target_top \
  --eval eval_path.json --pfode eval_pfode.json --exact exact.json
