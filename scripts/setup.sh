#!/usr/bin/env bash
# Installs what is missing on a Debian machine (apt), then configures and
# builds moe-mlir in build/. Safe to run again: it only installs missing
# packages and rebuilds what changed.
#
#   scripts/setup.sh                 # install + configure + build
#   scripts/setup.sh --packages-only # install what is missing, nothing else
#   MOE_BUILD_DIR=out scripts/setup.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${MOE_BUILD_DIR:-$ROOT/build}"
# The LLVM/MLIR 22 install (Debian's packages; MOE_MLIR_LLVM_PREFIX overrides it,
# as it does for the Python package).
LLVM_PREFIX="${MOE_MLIR_LLVM_PREFIX:-/usr/lib/llvm-22}"

# Toolchain (MLIR/LLVM 22 with mlir-opt, FileCheck and lit), build tools and
# the Python packages of the reference and its tests. All from Debian.
PACKAGES=(
  libmlir-22-dev mlir-22-tools llvm-22-dev llvm-22-tools clang-22 lld-22
  libclang-rt-22-dev
  cmake ninja-build g++ python3 python3-dev python3-numpy python3-pytest python3-pytest-xdist
  python3-hypothesis
  python3-pybind11 pybind11-dev python3-torch python3-matplotlib
  libopenblas-dev libomp-22-dev
  openmpi-bin libopenmpi-dev
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if ((${#missing[@]})); then
  echo "== installing: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
else
  echo "== all required packages are installed"
fi

if [ "${1:-}" = "--packages-only" ]; then
  exit 0
fi

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  echo "== configuring $BUILD_DIR"
  PATH="$LLVM_PREFIX/bin:$PATH" cmake -G Ninja -S "$ROOT" -B "$BUILD_DIR" \
    -DCMAKE_BUILD_TYPE=Release \
    -DMLIR_DIR="$LLVM_PREFIX/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$LLVM_PREFIX/bin/lit" \
    -DLLVM_USE_LINKER=lld \
    -DPython3_EXECUTABLE=/usr/bin/python3
fi

echo "== building"
start=$(date +%s)
PATH="$LLVM_PREFIX/bin:$PATH" cmake --build "$BUILD_DIR"
echo "== built in $(( $(date +%s) - start )) s"
