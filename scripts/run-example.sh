#!/usr/bin/env bash
# The main job: installs what is missing and builds, then
#  1. builds a small AdaMoE-style model in PyTorch (examples/adamoe_torch.py:
#     2 decoder layers, hidden 256, 8 compute + 4 null experts, fixed seeds)
#     and exports it to MLIR (moe.layer + linalg/tensor/arith/math), verified
#     against PyTorch eager at export time;
#  2. compiles it with moe-opt (moe-cpu-pipeline, to the LLVM dialect);
#  3. runs it with moe-run on a 64-token input, counting expert FFN rows;
#  4. compares with PyTorch eager and reports the FFN evaluations the null
#     experts saved;
#  5. builds a small Mixtral checkpoint folder in the Hugging Face layout
#     (examples/hf_mixtral.py: bf16, 2 shards, fixed seeds), runs it with
#     moe-run from token ids to logits and compares with PyTorch eager;
#  6. converts that folder to a GGUF file as llama.cpp's converter does, with
#     the experts quantized to Q8_0, runs it with moe-run (the experts stay
#     Q8_0 tiles in the kernels) and compares with PyTorch eager.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${MOE_BUILD_DIR:-$ROOT/build}"
OUT="$BUILD_DIR/examples/adamoe"

"$ROOT/scripts/setup.sh"
mkdir -p "$OUT"
export PYTHONPATH="$BUILD_DIR/python_packages"

echo "== 1. export the PyTorch model"
/usr/bin/python3 "$ROOT/examples/adamoe_torch.py" export --out "$OUT"

echo "== 2. compile with moe-opt --moe-cpu-pipeline"
start=$(date +%s%N)
"$BUILD_DIR/bin/moe-opt" "$OUT/model.mlir" --moe-cpu-pipeline -o "$OUT/model.llvm.mlir"
echo "   model.mlir -> model.llvm.mlir in $(( ($(date +%s%N) - start) / 1000000 )) ms"

echo "== 3. run with moe-run"
"$BUILD_DIR/bin/moe-run" "$OUT/model.mlir" --weights "$OUT/model.safetensors" \
  --input "$OUT/input.npy" --output "$OUT/output.npy" --count-ffn \
  --ffn-rows-to "$OUT/ffn_rows.txt"

echo "== 4. compare with PyTorch eager"
/usr/bin/python3 "$ROOT/examples/adamoe_torch.py" check --out "$OUT"

HF="$BUILD_DIR/examples/hf"
mkdir -p "$HF"
echo "== 5. a Hugging Face Mixtral checkpoint folder, token ids to logits"
/usr/bin/python3 "$ROOT/examples/hf_mixtral.py" build --out "$HF"
"$BUILD_DIR/bin/moe-run" "$HF/mixtral-tiny" --ids "$HF/ids.npy" --output "$HF/logits.npy"
/usr/bin/python3 "$ROOT/examples/hf_mixtral.py" check --out "$HF"

echo "== 6. the same model as a GGUF file with Q8_0 experts"
/usr/bin/python3 "$ROOT/examples/hf_mixtral.py" gguf --out "$HF"
"$BUILD_DIR/bin/moe-run" "$HF/mixtral-tiny-q8_0.gguf" --ids "$HF/ids.npy" \
  --output "$HF/logits-gguf.npy"
/usr/bin/python3 "$ROOT/examples/hf_mixtral.py" check-gguf --out "$HF"

# 7. Expert parallelism (when MPI is installed): examples/adamoe.mlir with
# seeded weights in one process and with its experts split over 2 and 4
# ranks; the outputs must be bit-equal.
if command -v mpirun.openmpi >/dev/null || command -v mpirun.mpich >/dev/null; then
  echo "== 7. expert parallelism: moe-run under mpirun -np 2 and 4"
  EP="$BUILD_DIR/examples/ep"
  INPUTS=$(/usr/bin/python3 "$ROOT/examples/expert_parallel.py" prepare --out "$EP")
  # The launcher of the MPI that libmoe_ep_runtime.so links (moe_mlir.ep).
  launcher() {
    PYTHONPATH="$BUILD_DIR/python_packages" /usr/bin/python3 -c \
      "import sys; from moe_mlir import ep; print(' '.join(ep.mpirun_command(int(sys.argv[1]))))" "$1"
  }
  # shellcheck disable=SC2086
  "$BUILD_DIR/bin/moe-run" "$ROOT/examples/adamoe.mlir" --entry adamoe_model $INPUTS \
    -o "$EP/one.npy"
  for ranks in 2 4; do
    # shellcheck disable=SC2086
    $(launcher "$ranks") "$BUILD_DIR/bin/moe-run" \
      "$ROOT/examples/adamoe.mlir" --entry adamoe_model --expert-parallel balanced \
      $INPUTS -o "$EP/ranks$ranks.npy"
  done
  /usr/bin/python3 "$ROOT/examples/expert_parallel.py" check --out "$EP"
fi
