#!/usr/bin/env bash
# DDO vs Diffusion-DPO on the 2-D mixture, preference toward mu_w = [2.5, 0]. Both are scored
# by the TRUE DPO objective with the same beta_d on the same held-out reference pairs (ddo.eval_pairs, drawn from
# the reference with the same seed; labels sigma(r(x) - r(x'))), the pair distribution `dualign data pairs
# --bt-beta 1` trains Diffusion-DPO on:
#   DDO:            exact per DA iteration (log q_k/p_ref = -f_k - log Z, Z cancels in the pair logit);
#   Diffusion-DPO:  log q_theta/p_ref by PF-ODE likelihoods (exact divergence) at every checkpoint of its run
#                   (`dualign ddo --policy RUN --all-checkpoints`).
# Diffusion-DPO's beta -> beta_d: its per-timestep logit -beta*(dm_w - dm_l), m = mean over the D coordinates of
# the eps-MSE, stands for the ELBO log-ratio log q/p_ref ~ -T*w*D*E_t[m_theta - m_ref]; with the constant weight
# w = 1/2 of the "simple" loss, beta_d = 2*beta/(T*D) = beta/1000 for T = 1000, D = 2. The mapping rests on that
# weight, so DPO_BETAS trains several betas around it (default 250 1000 4000 = beta_d 0.25, 1, 4 nominal) and all
# are scored at beta_d = BETA_D.
# Writes $RUN_ROOT/gmm/ddo_vs_dpo/{ddo_vs_dpo.json, ddo_vs_dpo.png} (data_tools/ddo_vs_dpo.py).
# Knobs: BETA_D (1), DDO_BETAS (KL weight of DDO, "1 0.5 0.25"), MAX_RATIO (cap of p_ref/q in DDO's first
# variation, 10: without it DDO diverges at beta <= 0.5, src/ddo/README.md), DPO_BETAS, DPO_STEPS (2000), EVERY (checkpoint
# every, 250), NP (ranks, 1), RUN_ROOT (outputs), DATA_DIR (data), EXTRA_DDO (more ddo overrides).
set -euo pipefail
: "${NP:=1}"  # one rank unless NP says otherwise
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"
# Threads per rank (and of the runs' threads= override): OMP_NUM_THREADS, default 1; THREADS is not used.
per_rank=${OMP_NUM_THREADS:-1}
beta_d=${BETA_D:-1}
ddo_betas=${DDO_BETAS:-1 0.5 0.25}
max_ratio=${MAX_RATIO:-10}
dpo_betas=${DPO_BETAS:-250 1000 4000}
dpo_steps=${DPO_STEPS:-2000}
every=${EVERY:-250}
out=$root/gmm/ddo_vs_dpo
common=(experiment=gmm_ddo_dpo run.root="$root" ddo.dpo.beta="$beta_d" threads="$per_rank")
# shellcheck disable=SC2206
common+=(${EXTRA_DDO:-})

# 1. Reference and Diffusion-DPO's pairs, as launch/experiments/preference_sweep.sh gmm makes them.
[[ -f $root/gmm/sft/ckpt/latest ]] || { say "reference (experiment=gmm_sft)"; "$bin" train experiment=gmm_sft run.root="$root" run.progress=false > /dev/null; }
mkdir -p "$data_dir/gmm" "$out"
[[ -f $data_dir/gmm/pairs.h5 ]] || "$bin" data pairs --model "$root/gmm/sft" -n 8000 --reward configs/reward/gmm_target.yaml \
  --bt-beta 1 --seed 1 --batch 4000 --out "$data_dir/gmm/pairs.h5" --labelled-out "$data_dir/gmm/labelled.h5" > /dev/null

# 2. DDO: dual averaging on the DPO objective, one run per KL weight.
ddo_runs=()
for b in $ddo_betas; do
  d=$out/ddo_beta${b}_ratio$max_ratio
  ddo_runs+=("$d")
  [[ -f $d/ddo.json ]] && continue
  say "DDO beta=$b beta_d=$beta_d max_ratio=$max_ratio -> $d"
  mpi ddo "${common[@]}" ddo.beta="$b" ddo.beta_prime="$b" ddo.max_ratio="$max_ratio" run.dir="$d" > "$d.log" 2>&1
done

# 3. Diffusion-DPO runs with checkpoints every EVERY steps, scored at every checkpoint.
dpo_runs=()
for B in $dpo_betas; do
  d=$out/dpo_beta$B
  dpo_runs+=("$d/true_dpo.json")
  [[ -f $d/true_dpo.json ]] && continue
  say "Diffusion-DPO beta=$B ($dpo_steps steps) -> $d"
  mpi train experiment=gmm_dpo run.root="$root" data_dir="$data_dir" method.beta="$B" train.steps="$dpo_steps" \
    train.checkpoint_every="$every" train.keep_checkpoints=1000 run.progress=false threads="$per_rank" \
    run.dir="$d" > "$out/dpo_beta$B.log" 2>&1
  say "true DPO objective of its checkpoints (PF-ODE)"
  mpi ddo "${common[@]}" --policy "$d" --all-checkpoints --out "$d/true_dpo.json" >> "$out/dpo_beta$B.log" 2>&1
done

"$py" data_tools/ddo_vs_dpo.py --ddo "${ddo_runs[@]/%//ddo.json}" --dpo "${dpo_runs[@]}" --out "$out/ddo_vs_dpo.json" \
  --png "$out/ddo_vs_dpo.png"
say "wrote $out/ddo_vs_dpo.json and $out/ddo_vs_dpo.png"
