#!/usr/bin/env bash
# The steps of a Pick-a-Pic preference job (train, export, prompts, samples, report), shared by the SD-1.5 and SDXL
# batch scripts; each step is skipped when its output exists, so a requeued job continues where it stopped.
# Sourced by sd15_pickapic.sbatch and sdxl_pickapic.sbatch after they set: base_dir (the diffusers base pipeline),
# tag (the log prefix), base_name (the report's name of the base), default_experiment, default_guidance.
: "${PICKAPIC_DIR:?set PICKAPIC_DIR to the pickapic_to_h5.py shard directory}"
export PICKAPIC_DIR
root=${DUALIGN_ROOT:-${SLURM_SUBMIT_DIR:-$(pwd)}}
bin=${DUALIGN_BIN:-$root/build/bin/dualign}
python=${DUALIGN_PYTHON:-${DUALIGN_VENV:-$HOME/.cache/dualign/venv}/bin/python}
experiment=${EXPERIMENT:-$default_experiment}
run_dir=${RUN_DIR:-$root/outputs/$experiment/${SLURM_JOB_ID:-manual}}
eval_dir=${EVAL_DIR:-$run_dir/eval}
threads=${SLURM_CPUS_PER_TASK:-1}
export OMP_NUM_THREADS=$threads DUALIGN_THREADS=$threads
mkdir -p "$eval_dir"
all=(srun --mpi=pmix --kill-on-bad-exit=1 --cpu-bind=none)
one=(srun --ntasks=1 --nodes=1 --gpus-per-task=1 --cpu-bind=none)

step() {  # step NAME OUTPUT COMMAND...: run unless OUTPUT exists; the command is logged in launch_command.txt
  local name=$1 output=$2 line
  shift 2
  printf -v line '%q ' "$@"
  echo "[$tag] $name: ${line% }" | tee -a "$run_dir/launch_command.txt"
  [[ ${DRY_RUN:-0} == 1 ]] && return 0
  if [[ -n $output && -e $output ]]; then
    echo "[$tag] $name: $output exists, skipped"
  else
    "$@"
  fi
}

# 1. Training on every task. 120 s before the time limit Slurm sends USR1: the ranks checkpoint and exit 75, the
#    job requeues itself and the requeued job resumes from $run_dir/ckpt/latest (RUN_DIR must be stable across
#    requeues; the default is keyed by the job id, which a requeue keeps).
echo "[$tag] ${SLURM_NNODES:-?} node(s), ${SLURM_NTASKS:-?} task(s), run dir $run_dir"
# shellcheck source=../launchers/stoppable.sh
source "$root/launch/launchers/stoppable.sh"
export DUALIGN_REQUEUE_ON_STOP=1  # exit 75 (stopped, requeued) ends the script here (set -e)
step train "" run_stoppable "${all[@]}" "$bin" train "experiment=$experiment" "run.dir=$run_dir" "$@"

# 2. The tuned UNet as a diffusers pipeline (the base's other components symlinked).
step export "$run_dir/diffusers" "${one[@]}" "$bin" export --model "$run_dir" --out "$run_dir/diffusers" \
  --base "$base_dir" --dtype "${EXPORT_DTYPE:-fp32}"

if [[ -z ${PROMPTS:-} ]]; then
  echo "[$tag] done (set PROMPTS to sample and score): $run_dir"
  exit 0
fi
# 3. Prompt embeddings with the base's text encoder(s), and the negative branch of classifier-free guidance.
limit=()
[[ -n ${PROMPT_LIMIT:-} ]] && limit=(--limit "$PROMPT_LIMIT")
step prompts "$eval_dir/prompts.h5" "${one[@]}" "$python" "$root/data_tools/encode_prompts.py" --prompts "$PROMPTS" \
  --out "$eval_dir/prompts.h5" --pretrained "$base_dir" "${limit[@]}"

# 4. Base and tuned on every task: the same prompts, per-image seeds and scheduler, so the pairs are comparable.
sample=(--prompts "$eval_dir/prompts.h5" -n "${SAMPLES_PER_PROMPT:-5}" --steps "${NUM_SAMPLE_STEPS:-50}"
        --guidance "${GUIDANCE:-$default_guidance}" --seed "${SAMPLE_SEED:-0}" --batch "${SAMPLE_BATCH:-8}"
        --scheduler-config "$base_dir")
[[ -n ${SAMPLER:-} ]] && sample+=(--sampler "$SAMPLER")
base_samples=${BASE_SAMPLES:-$eval_dir/base.h5}
step "base samples" "$base_samples" "${all[@]}" "$bin" sample --model "$base_dir" "${sample[@]}" --out "$base_samples"
step "tuned samples" "$eval_dir/tuned.h5" "${all[@]}" "$bin" sample --model "$run_dir/diffusers" "${sample[@]}" \
  --out "$eval_dir/tuned.h5"

# 5. PickScore, CLIP score, aesthetic, HPSv2 of every image; paired win rates with prompt-clustered bootstrap CIs.
: "${EVAL_WEIGHTS:=}"
weights=()
[[ -n $EVAL_WEIGHTS ]] && weights=(--weights "$EVAL_WEIGHTS")
# shellcheck disable=SC2086  # EVAL_ARGS is a list of arguments
step report "$eval_dir/report/report.json" "${one[@]}" "$python" "$root/data_tools/evaluate_samples.py" \
  --base "$base_samples" --tuned "$eval_dir/tuned.h5" --base-name "$base_name" --tuned-name "$experiment" \
  --vae "$base_dir" "${weights[@]}" --prompt-set "$PROMPTS" --out "$eval_dir/report" ${EVAL_ARGS:-}
echo "[$tag] done: $eval_dir/report/report.md"
