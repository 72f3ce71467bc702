#!/usr/bin/env bash
# The first thing to run on a new cluster node: nvidia-smi, then `dualign doctor` with one rank per GPU
# (driver, CUDA runtime, NCCL and MPI versions; NCCL all-reduce correctness and a 1 KiB..1 GiB bus-bandwidth
# sweep; a bf16 DPO step of a tiny UNet on every GPU against the CPU; peak GPU memory vs `dualign plan`).
#   bash launch/gpu_check.sh [doctor options, e.g. --max-bytes 268435456 --json doctor.json]
# Ranks: the GPUs CUDA_VISIBLE_DEVICES leaves visible (nvidia-smi -L otherwise). On a machine without a GPU
# it says so and runs the MPI/CPU checks on NP ranks (default 2). Exit code: the doctor's (0 = all passed).
# Knobs: DUALIGN_BIN (default build/bin/dualign), NP (ranks without GPUs), MPIRUN_ARGS, DRY_RUN=1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${DUALIGN_BIN:-$root/build/bin/dualign}
[[ -x $bin ]] || { echo "gpu_check.sh: no executable at $bin (build first: bash launch/build.sh, or set DUALIGN_BIN)" >&2; exit 2; }

gpus=0
if [[ -n ${CUDA_VISIBLE_DEVICES:-} ]]; then
  IFS=, read -ra visible <<<"$CUDA_VISIBLE_DEVICES"
  gpus=${#visible[@]}
elif command -v nvidia-smi >/dev/null 2>&1; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
fi
if (( gpus > 0 )); then
  nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv 2>/dev/null || true
  np=$gpus
else
  echo "[gpu_check] no GPU found (no nvidia-smi, or it lists none): running the MPI/CPU checks on ${NP:-2} ranks"
  np=${NP:-2}
fi
exec env DRY_RUN="${DRY_RUN:-0}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" \
  "$root/launch/launchers/local.sh" -np "$np" doctor "$@"
