#!/usr/bin/env bash
# One-command setup for a fresh Debian 12 machine (idempotent; a second run takes seconds).
#   - Debian packages: compiler, build tools, MPI, HDF5, yaml-cpp, GoogleTest, CLI11, json, libpng, zlib,
#     Fashion-MNIST. (fmt comes with torch: the build uses torch's bundled copy, cmake/DualignDeps.cmake.)
#   - A Python venv OUTSIDE the clone (default ~/.cache/dualign/venv, override with DUALIGN_VENV) holding the
#     pinned torch whose bundled LibTorch we build against, plus the Python tools pinned in requirements.txt.
# Standalone on purpose (no launch/common.sh): the Docker image runs it with only this file and requirements.txt.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# torch 2.14.1 is the CUDA 13 build (runs on CPU too; its CMake config needs the CUDA toolkit to build
# against). Without a toolkit we fall back to the CPU build 2.13.0. Override with DUALIGN_TORCH_VERSION.
if [ -x /usr/local/cuda/bin/nvcc ]; then default_torch=2.14.1; else default_torch=2.13.0; fi
TORCH_VERSION="${DUALIGN_TORCH_VERSION:-$default_torch}"
# torchvision (the scorers' image models) must be the release built for that torch.
case "${TORCH_VERSION}" in
  2.14.1) TORCHVISION_VERSION=0.29.1 ;;
  2.13.0) TORCHVISION_VERSION=0.28.0 ;;
  *) TORCHVISION_VERSION="${DUALIGN_TORCHVISION_VERSION:?set DUALIGN_TORCHVISION_VERSION to the torchvision release of torch ${TORCH_VERSION}}" ;;
esac
VENV="${DUALIGN_VENV:-$HOME/.cache/dualign/venv}"
REQUIREMENTS="${here}/requirements.txt"
[ -f "${REQUIREMENTS}" ] || { echo "setup.sh: ${REQUIREMENTS} is missing (the pinned Python packages)" >&2; exit 2; }
DEB_PACKAGES=(
  build-essential cmake ninja-build ccache git pkg-config python3-venv
  libopenmpi-dev openmpi-bin libhdf5-dev libyaml-cpp-dev libgtest-dev libgmock-dev
  libcli11-dev nlohmann-json3-dev libpng-dev zlib1g-dev
  dataset-fashion-mnist
)
STAMP_DIR="${VENV}/.dualign-stamps"
say() { printf '[setup] %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  say "Debian packages: all ${#DEB_PACKAGES[@]} present"
fi

# The stamp names the torch version and the requirements file's content: a change to either reinstalls.
want="$({ echo "torch==${TORCH_VERSION} torchvision==${TORCHVISION_VERSION}"; cat "${REQUIREMENTS}"; } | sha1sum | cut -c1-12)"
if [ -f "${STAMP_DIR}/${want}" ]; then
  say "Python venv ${VENV}: up to date (torch ${TORCH_VERSION})"
else
  if [ ! -x "${VENV}/bin/python" ]; then
    say "creating Python venv at ${VENV}"
    python3 -m venv "${VENV}"
  fi
  say "installing torch==${TORCH_VERSION}, torchvision==${TORCHVISION_VERSION} and the pins of launch/requirements.txt into ${VENV}"
  "${VENV}/bin/pip" install -q "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" -r "${REQUIREMENTS}"
  mkdir -p "${STAMP_DIR}" && touch "${STAMP_DIR}/${want}"
fi
say "done: venv=${VENV} torch=$("${VENV}/bin/python" -c 'import torch;print(torch.__version__)')"
