#!/usr/bin/env bash
# The main job: installs what is missing, builds, then takes the example
# AdaMoE model (examples/adamoe.mlir) through moe-opt (verify, decompose
# moe.layer into its parts), compiles it to native code with the CPU
# pipeline, runs it, checks it against the NumPy reference and reports the
# compute slots its null experts save.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${MOE_BUILD_DIR:-$ROOT/build}"

"$ROOT/scripts/setup.sh"

mkdir -p "$BUILD_DIR/examples"
out="$BUILD_DIR/examples/adamoe.decomposed.mlir"
echo "== moe-opt --moe-decompose-layer examples/adamoe.mlir -o $out"
"$BUILD_DIR/bin/moe-opt" "$ROOT/examples/adamoe.mlir" --moe-decompose-layer -o "$out"
for op in moe.layer moe.gate moe.route moe.dispatch moe.expert_ffn moe.combine; do
  printf '   %-15s %d\n' "$op" "$(grep -c " $op " "$out" || true)"
done

echo "== compiling (moe-cpu-pipeline), running and checking the model"
PYTHONPATH="$BUILD_DIR/python_packages" /usr/bin/python3 "$ROOT/examples/run_adamoe.py" "$@"
