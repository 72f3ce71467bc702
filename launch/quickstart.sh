#!/usr/bin/env bash
# The main job, one command on a fresh machine: setup + build (idempotent), then the Fashion-MNIST preference
# pipeline (launch/experiments/fmnist_pipeline.sh): data -> reward classifiers -> pretrain -> preference pairs -> DMPO under
# `mpirun -np 2` -> evaluation against the reference -> report (outputs/fmnist/report/report.md).
# Arguments go to the alignment step (e.g. method.beta=1000); METHOD=dpo|kto switches the method.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/build.sh
bash launch/experiments/fmnist_pipeline.sh "$@"
