// Executes moe.route through the CPU pipeline and mlir-runner.
// RUN: moe-opt %s --moe-cpu-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s
// The GPU kernels (convert-moe-to-gpu), run as host loops:
// RUN: moe-opt %s --moe-test-gpu-emulation-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s

func.func private @printMemrefF32(tensor<*xf32>) attributes { llvm.emit_c_interface }
func.func private @printMemrefI32(tensor<*xi32>) attributes { llvm.emit_c_interface }

// AdaMoE-style: 3 compute experts and 1 null expert (id 3), top-2 over all
// four, weights renormalised over the real experts.
//   token 0: scores [1, 3, 2, 0] -> experts 1 (3), 2 (2); 3/5 = 0.6, 2/5 = 0.4
//   token 1: scores [0, 0, 5, 5] -> tie at 5: lower index first, 2 then the
//            null expert 3; non_null: 5/5 = 1 and the null slot gets 0
func.func @main() {
  %l = arith.constant dense<[[1.0, 3.0, 2.0, 0.0], [0.0, 0.0, 5.0, 5.0]]> : tensor<2x4xf32>
  %init_ids = tensor.empty() : tensor<2x2xi32>
  %init_w = tensor.empty() : tensor<2x2xf32>
  %ids, %w = moe.route %l experts = <compute = 3, null = 1> k = 2 scoring = none
      strategy = top_k normalize = non_null into(%init_ids, %init_w)
      : tensor<2x4xf32> into tensor<2x2xi32>, tensor<2x2xf32>
  %ui = tensor.cast %ids : tensor<2x2xi32> to tensor<*xi32>
  %uw = tensor.cast %w : tensor<2x2xf32> to tensor<*xf32>
  call @printMemrefI32(%ui) : (tensor<*xi32>) -> ()
  call @printMemrefF32(%uw) : (tensor<*xf32>) -> ()
  return
}
// CHECK-LABEL: rank = 2 offset = 0 sizes = [2, 2]
// CHECK-NEXT: [1,   2],
// CHECK-NEXT: [2,   3]]
// CHECK-LABEL: rank = 2 offset = 0 sizes = [2, 2]
// CHECK-NEXT: [0.6,   0.4],
// CHECK-NEXT: [1,   0]]
