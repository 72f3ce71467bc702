#!/usr/bin/env bash
# A rank that throws, or goes silent, must bring every rank down non-zero within 30 s with its message in
# the log. Usage: dist_failure_test.sh <mpirun command...> -- <probe binary>
set -u
mpirun=()
while [[ $1 != -- ]]; do mpirun+=("$1"); shift; done
shift
probe=$1
status=0

check() {  # mode expected-message [env...]
  local mode=$1 want=$2; shift 2
  local log; log=$(mktemp)
  local start end rc
  start=$(date +%s.%N)
  env "$@" timeout 90 "${mpirun[@]}" -np 3 "$probe" "$mode" >"$log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  local elapsed; elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
  echo "mode=$mode exit=$rc elapsed=${elapsed}s"
  if [[ $rc -eq 0 || $rc -eq 124 ]]; then echo "FAIL: expected a non-zero exit from mpirun (not a timeout), got $rc"; status=1; fi
  if awk -v e="$elapsed" 'BEGIN { exit !(e > 30) }'; then echo "FAIL: took ${elapsed}s (limit 30 s)"; status=1; fi
  if ! grep -q "$want" "$log"; then echo "FAIL: message '$want' not in the output:"; status=1; fi
  grep -m3 -E "fatal|MPI_ABORT" "$log" | sed 's/^/  | /'
  rm -f "$log"
}

check throw "injected failure on rank 2 at step 3"
check hang "collective watchdog: all_reduce of 1024 x Float on rank" DUALIGN_COMM_TIMEOUT_S=3
exit $status
