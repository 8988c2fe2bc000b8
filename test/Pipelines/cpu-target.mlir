// The CPU pipeline schedules its kernels for target-cpu and tells LLVM: the
// functions carry LLVM's target_cpu, so llc (no -mcpu) emits the ISA's
// instructions: for AVX-512 16-lane FMAs on zmm registers, for AVX2 8 lanes
// on ymm and no zmm, for x86-64 (SSE only, no FMA unit) 4 lanes, separate
// multiplies and adds.
// RUN: moe-opt %s --moe-cpu-pipeline="target-cpu=znver4" | FileCheck %s --check-prefix=IR512
// RUN: moe-opt %s --moe-cpu-pipeline="target-cpu=x86-64-v3" | FileCheck %s --check-prefix=IR256
// RUN: moe-opt %s --moe-cpu-pipeline="target-cpu=znver4" | mlir-translate --mlir-to-llvmir | llc -O3 -o - | FileCheck %s --check-prefix=AVX512
// RUN: moe-opt %s --moe-cpu-pipeline="target-cpu=x86-64-v3" | mlir-translate --mlir-to-llvmir | llc -O3 -o - | FileCheck %s --check-prefix=AVX2
// RUN: moe-opt %s --moe-cpu-pipeline="target-cpu=x86-64" | mlir-translate --mlir-to-llvmir | llc -O3 -o - | FileCheck %s --check-prefix=SSE

// IR512-LABEL: llvm.func @gate
// IR512-SAME:  target_cpu = "znver4"
// IR512:       llvm.intr.fmuladd{{.*}} : (vector<16xf32>, vector<16xf32>, vector<16xf32>)
// IR256-LABEL: llvm.func @gate
// IR256-SAME:  target_cpu = "x86-64-v3"
// IR256-NOT:   vector<16xf32>
// IR256:       llvm.intr.fmuladd{{.*}} : (vector<8xf32>, vector<8xf32>, vector<8xf32>)
// AVX512-LABEL: gate:
// AVX512:       vfmadd231ps {{.*}}%zmm
// AVX2-LABEL:  gate:
// AVX2-NOT:    zmm
// AVX2:        vfmadd231ps {{.*}}%ymm
// AVX2-NOT:    zmm
// AVX2-LABEL:  _mlir_ciface_gate:
// SSE-LABEL:   gate:
// SSE-NOT:     vfmadd
// SSE:         mulps
// SSE:         addps
func.func @gate(%x: tensor<?x64xf32>, %w: tensor<64x64xf32>) -> tensor<?x64xf32> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  %init = tensor.empty(%t) : tensor<?x64xf32>
  %l = moe.gate %x, %w into(%init) : tensor<?x64xf32>, tensor<64x64xf32> into tensor<?x64xf32>
  return %l : tensor<?x64xf32>
}
