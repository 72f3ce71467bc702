#!/usr/bin/env bash
# Configure and build dualign with the default preset (build/bin/dualign). Runs setup first (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/dualign/ccache}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
if [ ! -f build/CMakeCache.txt ]; then
  cmake --preset default
fi
cmake --build build -j "${DUALIGN_BUILD_JOBS:-$(nproc)}"
