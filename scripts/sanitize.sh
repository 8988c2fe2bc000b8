#!/usr/bin/env bash
# Runs the tests under AddressSanitizer and UndefinedBehaviorSanitizer:
#  * the project's C++ (dialect, verifiers, passes, lowering, the Python
#    extension) is built with clang -fsanitize=address,undefined in
#    build-sanitize/ (-O1 with line tables: ASan's usual setting, and a
#    fifth faster to build than -O2 -g);
#  * the code generated for every compiled test function is built with
#    -fsanitize=address too (MOE_MLIR_SANITIZE=1 makes moe_mlir.compile lower
#    to LLVM IR, mark every function sanitize_address and compile it with
#    clang), so an out-of-bounds read or write of a moe kernel is reported;
#  * the lit suite (moe-opt and the plugin under ASan), the IR of the
#    lowering and pipeline tests compared with the gcc build's
#    (scripts/compare-builds.py), and the Python tests
#    that execute compiled code (differential, edge cases, API, null
#    elision, AOT) run with the ASan runtime preloaded into Python.
# Any report fails the run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${MOE_SANITIZE_BUILD_DIR:-$ROOT/build-sanitize}"
# The LLVM/MLIR 22 install (Debian's packages; MOE_MLIR_LLVM_PREFIX overrides it,
# as it does for the Python package).
LLVM_PREFIX="${MOE_MLIR_LLVM_PREFIX:-/usr/lib/llvm-22}"

"$ROOT/scripts/setup.sh" --packages-only

if [ ! -f "$BUILD_DIR/build.ninja" ] || ! grep -q "MOE_ENABLE_FUZZERS:BOOL=ON" "$BUILD_DIR/CMakeCache.txt"; then
  PATH="$LLVM_PREFIX/bin:$PATH" cmake -G Ninja -S "$ROOT" -B "$BUILD_DIR" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only -DNDEBUG" \
    "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only -DNDEBUG" \
    -DCMAKE_C_COMPILER="$LLVM_PREFIX/bin/clang" \
    -DCMAKE_CXX_COMPILER="$LLVM_PREFIX/bin/clang++" \
    -DMOE_ENABLE_SANITIZERS=ON -DMOE_ENABLE_FUZZERS=ON \
    -DMLIR_DIR="$LLVM_PREFIX/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$LLVM_PREFIX/bin/lit" \
    -DLLVM_USE_LINKER=lld -DPython3_EXECUTABLE=/usr/bin/python3
fi
PATH="$LLVM_PREFIX/bin:$PATH" cmake --build "$BUILD_DIR"
if [ -n "${MOE_SANITIZE_BUILD_ONLY:-}" ]; then
  exit 0
fi

ASAN_RUNTIME="$("$LLVM_PREFIX/bin/clang" -print-file-name=libclang_rt.asan-x86_64.so)"
# libMLIR.so is not instrumented: the poisoning and container annotations
# that LLVM headers compile into our code would disagree with it.
# allocator_may_return_null: malloc of more than the machine has returns null,
# as glibc's does (generated code must cope; ASan would abort instead).
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:exitcode=99:allow_user_poisoning=0:detect_container_overflow=0:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"

echo "== lit under ASan/UBSan"
LD_PRELOAD="$ASAN_RUNTIME" "$LLVM_PREFIX/bin/lit" -sv "$BUILD_DIR/test"

# Deterministic IR: the gcc build (build/) and this clang build print the
# same IR for every lowering and pipeline input of the lit suite.
MAIN_BUILD_DIR="${MOE_BUILD_DIR:-$ROOT/build}"
if [ -x "$MAIN_BUILD_DIR/bin/moe-opt" ]; then
  echo "== gcc and clang builds print the same IR"
  LD_PRELOAD="$ASAN_RUNTIME" /usr/bin/python3 "$ROOT/scripts/compare-builds.py" \
    "$MAIN_BUILD_DIR/bin/moe-opt" "$BUILD_DIR/bin/moe-opt"
else
  echo "== no gcc build in $MAIN_BUILD_DIR: builds not compared"
fi

echo "== compiled-code tests under ASan (generated code instrumented too)"
# One pytest process per core with pytest-xdist (installed by setup.sh).
PYTEST_JOBS=()
if /usr/bin/python3 -c "import xdist" 2>/dev/null; then PYTEST_JOBS=(-n auto); fi
MOE_BUILD_DIR="$BUILD_DIR" MOE_MLIR_SANITIZE=1 LD_PRELOAD="$ASAN_RUNTIME" \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider "${PYTEST_JOBS[@]}" "$ROOT/test/python" "$@"
# The fuzz targets (built above): replay of the committed corpora plus a
# fixed-seed run of each, deterministic (scripts/fuzz.sh --ci).
"$ROOT/scripts/fuzz.sh" --ci
echo "== sanitizers: clean"
