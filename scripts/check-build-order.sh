#!/usr/bin/env bash
# Checks that the build graph orders every C++ object of the project after
# the TableGen headers it may include. A missing DEPENDS goes unnoticed on a
# 2-core machine (the headers happen to be generated first) and breaks a
# parallel build on a large one. Configures a scratch build directory and
# asks ninja, without building anything, what building each object alone
# would run: the last generated header must be among it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LLVM_PREFIX="${MOE_MLIR_LLVM_PREFIX:-${LLVM_PREFIX:-/usr/lib/llvm-22}}"
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

PATH="$LLVM_PREFIX/bin:$PATH" cmake -G Ninja -S "$ROOT" -B "$SCRATCH" \
  -DCMAKE_BUILD_TYPE=Release -DMLIR_DIR="$LLVM_PREFIX/lib/cmake/mlir" \
  -DLLVM_EXTERNAL_LIT="$LLVM_PREFIX/bin/lit" \
  -DPython3_EXECUTABLE=/usr/bin/python3 >"$SCRATCH/configure.log" 2>&1 ||
  { cat "$SCRATCH/configure.log"; exit 1; }

# Objects that include no moe header (standalone runtime and benchmark code).
standalone='moe_cuda_runtime.dir|moe_ep_runtime.dir|moe-ep-runtime-test.dir|moe_bench_baselines.dir'
generated='MoEOpInterfaces.h.inc|MoEAttrs.h.inc|MoEEnums.h.inc|MoEOps.h.inc'
status=0
checked=0
while read -r obj; do
  if [[ "$obj" =~ $standalone ]]; then continue; fi
  plan="$(ninja -C "$SCRATCH" -n "$obj")"
  for header in MoEOpInterfaces.h.inc MoEAttrs.h.inc MoEEnums.h.inc \
                MoEOps.h.inc; do
    if ! grep -q "$header" <<<"$plan"; then
      echo "error: $obj may compile before $header is generated" \
           "(add MoEGeneratedHeaders to its DEPENDS)"
      status=1
    fi
  done
  # The dialect itself includes no pass header.
  if [[ ! "$obj" =~ obj.MLIRMoEDialect.dir ]] &&
     [ "$(grep -c 'Building Passes.h.inc' <<<"$plan")" -lt 2 ]; then
    echo "error: $obj may compile before the pass headers are generated"
    status=1
  fi
  checked=$((checked + 1))
done < <(ninja -C "$SCRATCH" -t targets all | grep -o '^[^:]*\.o:' | sed 's/:$//' | sort -u)
[ "$checked" -gt 20 ] || { echo "error: only $checked objects found"; exit 1; }
echo "build order: $checked objects wait for the generated headers"
exit $status
