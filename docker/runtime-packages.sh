#!/usr/bin/env bash
# Prints, one per line, the Debian/Ubuntu packages holding the shared libraries BINARY loads (per ldd), so the
# runtime image installs exactly those instead of a hand-kept list of package names.
# Skipped: libraries inside the Python venv (torch, NCCL: the image copies the venv) and under /usr/local/cuda
# (the CUDA base image has them). Fails naming any other library that is missing or that no package holds.
#   bash docker/runtime-packages.sh build/bin/dualign
set -euo pipefail
bin=${1:?usage: docker/runtime-packages.sh BINARY}
[[ -x $bin ]] || { echo "runtime-packages.sh: $bin is not an executable" >&2; exit 2; }

# `ldd` lines: "libfoo.so.1 => /path/libfoo.so.1 (0x...)", or "=> not found".
missing=$(ldd "$bin" | awk '/=> not found/ { print $1 }')
[[ -z $missing ]] || { echo "runtime-packages.sh: $bin needs libraries that are not installed: $missing" >&2; exit 1; }

owner() {  # the package that installed PATH; dpkg may know it under /lib or /usr/lib (merged /usr)
  local p out
  for p in "$1" "/usr${1#/usr}" "${1#/usr}"; do
    out=$(dpkg-query -S "$p" 2>/dev/null) || continue
    # "pkg:arch: /path" or "pkg1, pkg2: /path"; skip "diversion by ..." lines
    grep -v '^diversion' <<<"$out" | sed -n '1{s/[:,].*//;p}'
    return 0
  done
  return 1
}

ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | while read -r lib; do
  case $(readlink -f "$lib") in
    /usr/local/cuda*|*/site-packages/*) continue ;;
  esac
  pkg=$(owner "$lib") && [[ -n $pkg ]] || { echo "runtime-packages.sh: no package holds $lib" >&2; exit 1; }
  echo "$pkg"
done | sort -u
