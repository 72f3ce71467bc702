#!/usr/bin/env bash
# ASan + UBSan over the unit and MPI suites: configures the `sanitize` preset (build-sanitize/, -O1),
# builds the test binaries and runs `ctest -L 'unit|mpi'` with every sanitizer report fatal. Prints the number of
# reports found in the test logs (0 expected) and exits non-zero on any report or failed test.
#   bash launch/sanitize.sh                         # everything (a cold build takes hours on 2 cores)
#   DUALIGN_SKIP_MODULES="$upper" bash launch/sanitize.sh   # the lower modules only (util, config, data, dist, ckpt),
#     upper="app;train;compose;ddo;methods;eval;rewards;dual;models;diffusion;constrained;mixture;evaluation;lora;preference;reliability;sdtools;tools;unet;arch;optim"
#     (test fragments named after a feature, not a module, must be skipped by their own names)
#   CTEST_ARGS="-R dist_" bash launch/sanitize.sh   # a subset of the tests
# Not in CI: a cold sanitizer build of the tree on the CI machine (2 cores) does not fit the 45-minute budget.
# LibTorch, MPI and HDF5 are not instrumented: leaks inside them are suppressed (launch/sanitize.supp), and
# container-overflow checks are off because libtorch's std::vector code is built without ASan's annotations.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh >/dev/null
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/dualign/ccache}" CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
cmake --preset sanitize -DDUALIGN_SKIP_MODULES="${DUALIGN_SKIP_MODULES:-}" >/dev/null
nice -n 19 cmake --build build-sanitize -j "${DUALIGN_BUILD_JOBS:-1}"

# fast_unwind_on_malloc=0: the frame-pointer unwinder stops at the first library built without frame pointers
# (libmpi, libevent), so an MPI allocation's stack never named the library and sanitize.supp did not match it.
export ASAN_OPTIONS="detect_leaks=1:detect_container_overflow=0:protect_shadow_gap=0:halt_on_error=1:abort_on_error=1:fast_unwind_on_malloc=0"
export LSAN_OPTIONS="suppressions=$PWD/launch/sanitize.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
rc=0
# shellcheck disable=SC2086  # CTEST_ARGS is a list of arguments
ctest --test-dir build-sanitize -L 'unit|mpi' --output-on-failure -j "${CTEST_JOBS:-1}" ${CTEST_ARGS:-} \
  | tee build-sanitize/sanitize.log || rc=$?
reports=$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' build-sanitize/Testing/Temporary/LastTest.log || true)
echo "[sanitize] sanitizer reports in the test logs: $reports (build-sanitize/Testing/Temporary/LastTest.log)"
[[ $rc == 0 && $reports == 0 ]]
