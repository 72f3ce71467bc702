#!/usr/bin/env bash
# The main job, one command on a fresh machine: setup + build (idempotent), then the smallest real end-to-end
# job that exists today: pretrain a score MLP on a 2-D Gaussian mixture with SFT under `mpirun -np 2`
# (gradients all-reduced across ranks), sample it with DDIM and compare with exact samples.
# The run directory (config, overrides, git SHA, metrics.jsonl, TensorBoard events, per-rank logs) is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/build.sh
run_dir="outputs/quickstart/$(date +%Y-%m-%d_%H-%M-%S)"
RUN_DIR="$run_dir" bash launch/local.sh -np 2 train experiment=gmm_sft "$@"
echo
echo "[quickstart] results (${run_dir}/metrics.jsonl, last record):"
tail -n 1 "${run_dir}/metrics.jsonl"
echo "[quickstart] TensorBoard: ${DUALIGN_VENV:-$HOME/.cache/dualign/venv}/bin/tensorboard --logdir ${run_dir}/tb"
