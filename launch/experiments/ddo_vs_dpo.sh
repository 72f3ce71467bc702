#!/usr/bin/env bash
# DDO vs Diffusion-DPO, both scored by the TRUE DPO objective with the same beta_d on the same held-out reference
# pairs (ddo.eval_pairs, drawn from the reference with the same seed; labels sigma(r(x) - r(x'))), the pair
# distribution `dualign data pairs --bt-beta 1` trains Diffusion-DPO on:
#   DDO:            exact per DA iteration (log q_k/p_ref = -f_k - log Z, Z cancels in the pair logit);
#   Diffusion-DPO:  log q_theta/p_ref by PF-ODE likelihoods at every checkpoint of its run
#                   (`dualign ddo --policy RUN --all-checkpoints`).
# DATASET picks the experiment:
#   gmm     the 2-D mixture, preference toward mu_w = [2.5, 0] (reference experiment=gmm_sft, trained if missing);
#           exact divergence, 100 RK4 steps.
#   fmnist  Fashion-MNIST 14x14, preference for brighter images (configs/reward/fmnist_brightness.yaml; reference
#           $RUN_ROOT/fmnist/pretrain from launch/experiments/fmnist_pipeline.sh steps 1-3); Hutchinson divergence
#           (PROBES Rademacher probes, the same for reference and policy), ODE_STEPS RK4 steps at (i/N)^ODE_POWER.
# Diffusion-DPO's beta -> beta_d: its per-timestep logit -beta*(dm_w - dm_l), m = mean over the D coordinates of
# the eps-MSE, stands for the ELBO log-ratio log q/p_ref ~ -T*w*D*E_t[m_theta - m_ref]; with the constant weight
# w = 1/2 of the "simple" loss, beta_d = 2*beta/(T*D) (beta/1000 for the mixture, D = 2; beta/98000 for 14x14
# images). The mapping rests on that weight, so DPO_BETAS trains several betas and all are scored at beta_d = BETA_D.
# Writes $RUN_ROOT/<gmm|fmnist>/ddo_vs_dpo/{ddo_vs_dpo.json, ddo_vs_dpo.png} (data_tools/ddo_vs_dpo.py).
# Knobs: DATASET (gmm), BETA_D (1), DDO_BETAS (KL weights of DDO; gmm "1 0.5 0.25", fmnist "0.5 0.25"), MAX_RATIO
# (cap of p_ref/q in DDO's first variation, 10: without it DDO diverges at small beta, src/ddo/README.md), DPO_BETAS
# (gmm "250 1000 4000", fmnist "1000 5000 25000 100000"), DPO_STEPS (gmm 2000, fmnist 1000), EVERY (checkpoint every, 250),
# EARLY_BETAS (gmm none, fmnist "25000 100000"), EARLY_STEPS (250), EARLY_EVERY (50),
# ODE_STEPS (gmm 100, fmnist 50), ODE_POWER (gmm 1, fmnist 3: small steps at the clean end), PROBES (fmnist 1), NP (ranks, 1), RUN_ROOT (outputs), DATA_DIR (data),
# EXTRA_DDO (more ddo overrides).
set -euo pipefail
: "${NP:=1}"  # one rank unless NP says otherwise
# shellcheck source=launch/common.sh
source "$(dirname "$0")/../common.sh"
# Threads per rank (and of the runs' threads= override): OMP_NUM_THREADS, default 1; THREADS is not used.
per_rank=${OMP_NUM_THREADS:-1}
beta_d=${BETA_D:-1}
max_ratio=${MAX_RATIO:-10}
every=${EVERY:-250}
case ${DATASET:-gmm} in
  gmm)
    ddo_exp=gmm_ddo_dpo dpo_exp=gmm_dpo reference=$root/gmm/sft pairs=$data_dir/gmm/pairs.h5
    ddo_betas=${DDO_BETAS:-1 0.5 0.25} dpo_betas=${DPO_BETAS:-250 1000 4000} dpo_steps=${DPO_STEPS:-2000}
    early_betas=${EARLY_BETAS:-}
    likelihood=(--divergence exact --ode-steps "${ODE_STEPS:-100}" --ode-power "${ODE_POWER:-1}")
    dpo_data=(data_dir="$data_dir")
    out=$root/gmm/ddo_vs_dpo title="DDO vs Diffusion-DPO on the 2-D mixture (preference toward [2.5, 0])" ;;
  fmnist)
    ddo_exp=fmnist_ddo_dpo_bright dpo_exp=fmnist_dpo reference=$root/fmnist/pretrain pairs=$data_dir/fmnist14/bright_pairs.h5
    ddo_betas=${DDO_BETAS:-0.5 0.25} dpo_betas=${DPO_BETAS:-1000 5000 25000 100000} dpo_steps=${DPO_STEPS:-1000}
    early_betas=${EARLY_BETAS:-25000 100000}
    likelihood=(--divergence hutchinson --probes "${PROBES:-1}" --ode-steps "${ODE_STEPS:-50}" --ode-power "${ODE_POWER:-3}")
    dpo_data=(data.path="$pairs" run.sample_every=0)
    out=$root/fmnist/ddo_vs_dpo title="DDO vs Diffusion-DPO on Fashion-MNIST 14x14 (preference for brighter images)" ;;
  *) echo "ddo_vs_dpo.sh: DATASET must be gmm or fmnist, got '$DATASET'" >&2; exit 2 ;;
esac
common=(experiment=$ddo_exp run.root="$root" ddo.dpo.beta="$beta_d" threads="$per_rank")
# shellcheck disable=SC2206
common+=(${EXTRA_DDO:-})

# 1. Reference and Diffusion-DPO's pairs (for gmm as launch/experiments/preference_sweep.sh makes them).
mkdir -p "$(dirname "$pairs")" "$out"
if [[ ${DATASET:-gmm} == gmm ]]; then
  [[ -f $reference/ckpt/latest ]] || { say "reference (experiment=gmm_sft)"; "$bin" train experiment=gmm_sft run.root="$root" run.progress=false > /dev/null; }
  [[ -f $pairs ]] || "$bin" data pairs --model "$reference" -n 8000 --reward configs/reward/gmm_target.yaml \
    --bt-beta 1 --seed 1 --batch 4000 --out "$pairs" --labelled-out "$data_dir/gmm/labelled.h5" > /dev/null
else
  [[ -f $reference/ckpt/latest ]] || { echo "ddo_vs_dpo.sh: no reference at $reference: run launch/experiments/fmnist_pipeline.sh" \
    "(steps 1-3) with the same RUN_ROOT first" >&2; exit 2; }
  # Sampled like DDO's reference samples (20 DDIM steps), labelled with DDO's reward.
  [[ -f $pairs ]] || "$bin" data pairs --model "$reference" -n 4000 --reward configs/reward/fmnist_brightness.yaml \
    --bt-beta 1 --seed 1 --steps 20 --batch 500 --out "$pairs" > /dev/null
fi

# 2. DDO: dual averaging on the DPO objective, one run per KL weight.
ddo_runs=()
for b in $ddo_betas; do
  d=$out/ddo_beta${b}_ratio$max_ratio
  ddo_runs+=("$d")
  [[ -f $d/ddo.json ]] && continue
  say "DDO beta=$b beta_d=$beta_d max_ratio=$max_ratio -> $d"
  mpi ddo "${common[@]}" ddo.beta="$b" ddo.beta_prime="$b" ddo.max_ratio="$max_ratio" run.dir="$d" > "$d.log" 2>&1
done

# 3. Diffusion-DPO runs, scored at every checkpoint: DPO_BETAS for DPO_STEPS with checkpoints every EVERY steps,
#    and EARLY_BETAS for EARLY_STEPS with checkpoints every EARLY_EVERY (the early phase, where a drifting run is best).
dpo_runs=()
diffusion_dpo() {  # NAME BETA STEPS EVERY
  local d=$out/$1
  dpo_runs+=("$d/true_dpo.json")
  [[ -f $d/true_dpo.json ]] && return
  say "Diffusion-DPO beta=$2 ($3 steps, checkpoints every $4) -> $d"
  [[ -f $d/ckpt/ckpt-$(printf %08d "$3").h5 ]] || mpi train experiment=$dpo_exp run.root="$root" "${dpo_data[@]}" \
    model.init_from="$reference" method.beta="$2" train.steps="$3" train.checkpoint_every="$4" \
    train.keep_checkpoints=1000 run.progress=false threads="$per_rank" run.dir="$d" > "$out/$1.log" 2>&1
  say "true DPO objective of its checkpoints (PF-ODE)"
  mpi ddo "${common[@]}" --policy "$d" --all-checkpoints "${likelihood[@]}" --out "$d/true_dpo.json" >> "$out/$1.log" 2>&1
}
for B in $dpo_betas; do diffusion_dpo "dpo_beta$B" "$B" "$dpo_steps" "$every"; done
for B in $early_betas; do diffusion_dpo "early_beta$B" "$B" "${EARLY_STEPS:-250}" "${EARLY_EVERY:-50}"; done

"$py" data_tools/ddo_vs_dpo.py --ddo "${ddo_runs[@]/%//ddo.json}" --dpo "${dpo_runs[@]}" --out "$out/ddo_vs_dpo.json" \
  --png "$out/ddo_vs_dpo.png" --title "$title"
say "wrote $out/ddo_vs_dpo.json and $out/ddo_vs_dpo.png"
