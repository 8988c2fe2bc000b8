// moe.aux_loss through the CPU pipeline (Semantics.md 2.8, project decision
// 5): L = S * sum_i f_i * P_i, f_i = count_i / max(1, valid slots),
// P_i = (sum_t scores[t,i]) / max(1, T); a slot is valid when 0 <= id < S.
// RUN: moe-opt %s --moe-cpu-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s
// The GPU kernels (convert-moe-to-gpu), run as host loops:
// RUN: moe-opt %s --moe-test-gpu-emulation-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s

func.func private @printMemrefF32(tensor<*xf32>) attributes { llvm.emit_c_interface }

func.func @main() {
  // ---- S = 3, T = 3, K = 3, dynamic T.
  //   scores t0 [0.5, 0.25, 0.25], t1 [0.25, 0.25, 0.5], t2 [0.5, 0.5, 0]
  //   ids    t0 [0, 2, -1], t1 [0, -7, -1], t2 [5, 1, 3]
  //   valid slots (0 <= id < 3): 0, 2 | 0 | 1 -> 4 slots, counts [2, 1, 1]
  //   f = [0.5, 0.25, 0.25]; P = [1.25, 1, 0.75] / 3
  //   L = 3 * (0.5 * 1.25 + 0.25 * 1 + 0.25 * 0.75) / 3
  //     = 0.625 + 0.25 + 0.1875 = 1.0625
  //   (counting all 9 slots, or the 7 non-empty ones, would change f)
  %s = arith.constant dense<[[0.5, 0.25, 0.25], [0.25, 0.25, 0.5], [0.5, 0.5, 0.0]]> : tensor<3x3xf32>
  %sd = tensor.cast %s : tensor<3x3xf32> to tensor<?x3xf32>
  %i = arith.constant dense<[[0, 2, -1], [0, -7, -1], [5, 1, 3]]> : tensor<3x3xi32>
  %id = tensor.cast %i : tensor<3x3xi32> to tensor<?x3xi32>
  %init_l1 = tensor.empty() : tensor<f32>
  %l1 = moe.aux_loss %sd, %id into(%init_l1) : tensor<?x3xf32>, tensor<?x3xi32> into tensor<f32>
  %u1 = tensor.cast %l1 : tensor<f32> to tensor<*xf32>
  call @printMemrefF32(%u1) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: rank = 0
  // CHECK-NEXT: [1.0625]

  // ---- Balanced: S = 2, scores all 0.5, ids [[0], [1]]:
  //   f = [0.5, 0.5], P = [0.5, 0.5] -> L = 2 * (0.25 + 0.25) = 1
  %s2 = arith.constant dense<0.5> : tensor<2x2xf32>
  %i2 = arith.constant dense<[[0], [1]]> : tensor<2x1xi32>
  %init_l2 = tensor.empty() : tensor<f32>
  %l2 = moe.aux_loss %s2, %i2 into(%init_l2) : tensor<2x2xf32>, tensor<2x1xi32> into tensor<f32>
  %u2 = tensor.cast %l2 : tensor<f32> to tensor<*xf32>
  call @printMemrefF32(%u2) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: rank = 0
  // CHECK-NEXT: [1]

  // ---- Collapsed: S = 2, scores [[1, 0], [1, 0]], ids [[0], [0]]:
  //   f = [1, 0], P = [1, 0] -> L = 2 * 1 = 2
  %s3 = arith.constant dense<[[1.0, 0.0], [1.0, 0.0]]> : tensor<2x2xf32>
  %i3 = arith.constant dense<[[0], [0]]> : tensor<2x1xi32>
  %init_l3 = tensor.empty() : tensor<f32>
  %l3 = moe.aux_loss %s3, %i3 into(%init_l3) : tensor<2x2xf32>, tensor<2x1xi32> into tensor<f32>
  %u3 = tensor.cast %l3 : tensor<f32> to tensor<*xf32>
  call @printMemrefF32(%u3) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: rank = 0
  // CHECK-NEXT: [2]

  // ---- No valid slot: ids [[-1], [9]] -> counts 0, divided by max(1, 0) = 1
  //   -> f = 0 -> L = 0
  %i4 = arith.constant dense<[[-1], [9]]> : tensor<2x1xi32>
  %init_l4 = tensor.empty() : tensor<f32>
  %l4 = moe.aux_loss %s3, %i4 into(%init_l4) : tensor<2x2xf32>, tensor<2x1xi32> into tensor<f32>
  %u4 = tensor.cast %l4 : tensor<f32> to tensor<*xf32>
  call @printMemrefF32(%u4) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: rank = 0
  // CHECK-NEXT: [0]
  return
}
