#!/usr/bin/env bash
# Configure and build dualign with the default preset (build/bin/dualign). Runs setup first (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/dualign/ccache}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
# Hit the cache from any clone path (CI clones to a fresh directory each time): hash paths relative to the
# clone, and do not hash the working directory.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-true}"
if [ ! -f build/CMakeCache.txt ]; then
  cmake --preset default
fi
cmake --build build -j "${DUALIGN_BUILD_JOBS:-$(nproc)}"
