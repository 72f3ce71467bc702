#!/usr/bin/env bash
# The test command (README, CI): setup + build if needed, then every ctest suite (unit, mpi, parity, e2e).
# Extra arguments go to ctest, e.g. `bash launch/test.sh -L unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash launch/build.sh
built=$(date +%s)
echo "[test] setup+build took $((built - start)) s"
ctest --test-dir build --output-on-failure --no-tests=error -j "${DUALIGN_TEST_JOBS:-2}" "$@"
echo "[test] tests took $(( $(date +%s) - built )) s; total $(( $(date +%s) - start )) s"
