#!/usr/bin/env bash
# The GPU device check in one prepared command: build everything here (MLIR,
# CUDA toolkit, no GPU needed), run it there (a GPU machine with python3 and
# NumPy; PyTorch with CUDA for the baselines; compute-sanitizer if present).
#
#   scripts/gpu-device-check.sh prepare [--quick]   # here: build build/gpu-check
#                                                   # ($MOE_GPU_CHECK_DIR overrides it)
#   scripts/gpu-device-check.sh run [DIR]           # there: run DIR (default build/gpu-check)
#   scripts/gpu-device-check.sh dry-run [--quick]   # here: prepare, then run in dry mode
#
# `run` takes at most about 4 minutes, in this order, so that a run cut off
# early still reports the most important part:
#   1. the test matrix (scripts/gpu-test-matrix.py): every case with host
#      arguments, device arguments and the capturable form, on the chip's own
#      code, checked against the reference; the capturable form is also
#      captured in a CUDA graph and replayed;            (cap 75 s)
#      then the tensor-core case on the sm_80 kernels (MOE_CUDA_WGMMA=0:
#      on an H100/H200 the matrix ran the sm_90a ones)   (cap 15 s)
#   2. the benchmark (bench/gpu_layer.py): S1, S1-Ada, S2, Qwen3-30B-A3B-like,
#      T in {1, 16, 512, 4096, 16384}, side by side with PyTorch eager,
#      torch._grouped_mm, the dense bf16 rate and the copy bandwidth; on an
#      sm_90a device also timed on the sm_80 kernels;     (cap 95 s)
#   3. compute-sanitizer memcheck, then racecheck, on three cases
#      (each capped at 25 s; "Device not supported" is reported as skipped).
# Logs and results go to DIR/results and, when $OUT is set, to $OUT.
# --quick builds three matrix cases instead of all and one benchmark shape
# (Qwen3) instead of four (the dry run in CI).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The runner needs NumPy: python3 there; here Debian's /usr/bin/python3.
PYTHON="${PYTHON:-}"
SUBSET="top_k,expert_choice,bf16_tensor_cores"
# Where prepare builds the package (the device tool carries it).
CHECK_DIR="${MOE_GPU_CHECK_DIR:-$ROOT/build/gpu-check}"

prepare() {
  local quick="${1:-}" dir="$CHECK_DIR" only=() shapes=()
  if [ "$quick" = "--quick" ]; then
    only=(--only "$SUBSET")
    shapes=(--shapes Qwen3)
  fi
  local python=/usr/bin/python3
  export PYTHONPATH="$ROOT/build/python_packages"
  rm -rf "$dir"
  mkdir -p "$dir"
  echo "== building the test matrix (three forms per case)"
  "$python" "$ROOT/scripts/gpu-test-matrix.py" --out "$dir/matrix" "${only[@]}"
  echo "== building the benchmark libraries"
  "$python" "$ROOT/bench/gpu_layer.py" build --out "$dir/bench" "${shapes[@]}"
  rm -f "$dir"/*.tar.gz
  cp "$ROOT/scripts/gpu-device-check.sh" "$dir/"
  du -sh "$dir"
}

# step NAME SECONDS COMMAND...: runs COMMAND in its own log with a time cap;
# records PASS, FAIL (status), TIMEOUT or SKIPPED.
SUMMARY=()
step() {
  local name="$1" cap="$2"
  shift 2
  local log="$RESULTS/$name.log" status=0
  echo "== $name (at most ${cap} s)"
  timeout --signal=INT --kill-after=5 "$cap" "$@" >"$log" 2>&1 || status=$?
  cat "$log"
  if grep -q "Device not supported" "$log"; then
    SUMMARY+=("$name: SKIPPED (compute-sanitizer: Device not supported)")
  elif [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    SUMMARY+=("$name: TIMEOUT after ${cap} s (partial results above)")
  elif [ "$status" -ne 0 ]; then
    SUMMARY+=("$name: FAIL (exit status $status)")
  else
    SUMMARY+=("$name: PASS")
  fi
  if [ -n "${OUT:-}" ]; then cp "$log" "$OUT/"; fi
}

run() {
  local dir dry=""
  dir="$(cd "${1:-$CHECK_DIR}" && pwd)"
  [ "${2:-}" = "--dry-run" ] && dry="--dry-run"
  PYTHON="${PYTHON:-python3}"
  RESULTS="$dir/results"
  mkdir -p "$RESULTS"
  echo "== $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname)"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  fi
  local start=$SECONDS
  step matrix 75 env PYTHONPATH="$dir/matrix" "$PYTHON" "$dir/matrix/run_cases.py" $dry
  # The tensor-core case again on the sm_80 (mma.sync) kernels: on an
  # H100/H200 the matrix ran the sm_90a (wgmma) ones.
  step matrix-mma-sync 15 env MOE_CUDA_WGMMA=0 PYTHONPATH="$dir/matrix" "$PYTHON" \
    "$dir/matrix/run_cases.py" --only bf16_tensor_cores $dry
  step bench 95 env PYTHONPATH="$dir/bench" "$PYTHON" "$dir/bench/gpu_layer.py" run $dry
  if [ -n "$dry" ]; then
    SUMMARY+=("sanitizer: SKIPPED (dry run)")
  else
    local sanitizer
    sanitizer="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
    if [ -x "$sanitizer" ]; then
      for tool in memcheck racecheck; do
        step "$tool" 25 env PYTHONPATH="$dir/matrix" "$sanitizer" --tool "$tool" \
          --error-exitcode 3 "$PYTHON" "$dir/matrix/run_cases.py" --only "$SUBSET" --repeat 1
      done
    else
      SUMMARY+=("sanitizer: SKIPPED (compute-sanitizer not found)")
    fi
  fi
  for file in "$dir/bench/gpu_layer.md" "$dir/bench/gpu_layer.json"; do
    if [ -f "$file" ]; then
      cp "$file" "$RESULTS/"
      if [ -n "${OUT:-}" ]; then cp "$file" "$OUT/"; fi
    fi
  done
  echo "== summary ($((SECONDS - start)) s)"
  printf '  %s\n' "${SUMMARY[@]}"
  ! printf '%s\n' "${SUMMARY[@]}" | grep -q ": FAIL"
}

case "${1:-}" in
  prepare) prepare "${2:-}" ;;
  run)
    shift
    run "$@"
    ;;
  dry-run)
    PYTHON="${PYTHON:-/usr/bin/python3}"
    prepare "${2:-}"
    run "$CHECK_DIR" --dry-run
    ;;
  *)
    sed -n '2,8p' "${BASH_SOURCE[0]}"
    exit 2
    ;;
esac
