#!/usr/bin/env bash
# Builds the libFuzzer harnesses (preset `fuzz`: clang-14, ASan + UBSan + coverage) and runs each one after the
# other at low priority until it has executed RUNS inputs (default 1,000,000), starting from the seed corpus in
# tests/fuzz/corpus/<harness> (read only; new inputs go to build-fuzz/corpus/<harness>, crashes to
# build-fuzz/artifacts/<harness>/). Prints one line per harness: executions, seconds, exec/s, corpus size, crashes.
#   bash tests/fuzz/run.sh [harness ...]        (default: all four)
#   RUNS=100000 MAX_TOTAL_TIME=600 bash tests/fuzz/run.sh fuzz_idx
# Needs clang-14 and libclang-rt-14-dev (apt-get install clang-14 libclang-rt-14-dev). A crash found is fixed in
# the code and its input added to tests/fuzz/corpus/<harness>/ as a regression seed.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${RUNS:-1000000}
harnesses=("$@")
[[ ${#harnesses[@]} -gt 0 ]] || harnesses=(fuzz_config fuzz_safetensors fuzz_idx fuzz_h5_schema)
command -v clang++-14 >/dev/null || { echo "run.sh: clang++-14 not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/dualign/ccache}" CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
[[ -f build-fuzz/CMakeCache.txt ]] || cmake --preset fuzz >/dev/null
nice -n 19 cmake --build build-fuzz -j "${DUALIGN_BUILD_JOBS:-1}" --target "${harnesses[@]}"

failed=0
summary=()
for h in "${harnesses[@]}"; do
  mkdir -p "build-fuzz/corpus/$h" "build-fuzz/artifacts/$h"
  log="build-fuzz/$h.log"
  echo "[fuzz] $h: $runs runs (log: $log)"
  rc=0
  # UBSan aborts on the first report (-fno-sanitize-recover); leaks in the harness's libraries are not ours.
  # fuzz_config's RSS creeps up over a long run (1.8 GB after 840k inputs, no leak found): one input may allocate
  # at most 1 GB, the process 4 GB.
  TMPDIR=${TMPDIR:-/dev/shm} ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
    nice -n 19 "build-fuzz/bin/$h" -runs="$runs" -max_total_time="${MAX_TOTAL_TIME:-0}" -timeout=20 \
    -rss_limit_mb=4096 -malloc_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="build-fuzz/artifacts/$h/" "build-fuzz/corpus/$h" "tests/fuzz/corpus/$h" >"$log" 2>&1 || rc=$?
  execs=$(grep -oP 'stat::number_of_executed_units:\s*\K\d+' "$log" | tail -1 || true)
  secs=$(grep -oP 'Done \d+ runs in \K\d+' "$log" | tail -1 || true)
  rate=$(grep -oP 'stat::average_exec_per_sec:\s*\K\d+' "$log" | tail -1 || true)
  corpus=$(find "build-fuzz/corpus/$h" -type f | wc -l)
  # Findings are crash-/leak-/oom-/timeout- files. slow-unit- files are inputs that took long by the wall clock
  # (a paused or starved process writes them too): listed, rerun them before calling them a finding.
  crashes=$(find "build-fuzz/artifacts/$h" -type f ! -name 'slow-unit-*' | wc -l)
  slow=$(find "build-fuzz/artifacts/$h" -type f -name 'slow-unit-*' | wc -l)
  line="$h: ${execs:-?} executions in ${secs:-?} s (${rate:-?} exec/s), corpus $corpus new inputs, $crashes crash(es), $slow slow unit(s), exit $rc"
  summary+=("$line")
  echo "[fuzz] $line"
  [[ $rc == 0 && $crashes == 0 ]] || failed=$((failed + 1))
done
printf '%s\n' "${summary[@]}"
[[ $failed == 0 ]]
