// moe.gate through the CPU pipeline: logits[T,S] = x[T,H] @ w[H,S] (+ b[S]),
// accumulated in f32 whatever the input element type (Semantics.md 2.1).
// RUN: moe-opt %s --moe-cpu-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s
// The GPU kernels (convert-moe-to-gpu), run as host loops:
// RUN: moe-opt %s --moe-test-gpu-emulation-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s

func.func private @printMemrefF32(tensor<*xf32>) attributes { llvm.emit_c_interface }

func.func @main() {
  // Case 1: x @ w, no bias.
  //   x = [[1, 2], [3, 4]], w = [[1, 0, 2], [0, 1, -1]]
  //   row 0: [1*1 + 2*0, 1*0 + 2*1, 1*2 + 2*(-1)] = [1, 2, 0]
  //   row 1: [3*1 + 4*0, 3*0 + 4*1, 3*2 + 4*(-1)] = [3, 4, 2]
  %x = arith.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %w = arith.constant dense<[[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]]> : tensor<2x3xf32>
  %init_l1 = tensor.empty() : tensor<2x3xf32>
  %l1 = moe.gate %x, %w into(%init_l1) : tensor<2x2xf32>, tensor<2x3xf32> into tensor<2x3xf32>
  %u1 = tensor.cast %l1 : tensor<2x3xf32> to tensor<*xf32>
  call @printMemrefF32(%u1) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: rank = 2 offset = 0 sizes = [2, 3]
  // CHECK-NEXT: [1,   2,   0],
  // CHECK-NEXT: [3,   4,   2]]

  // Case 2: x @ w + b with a dynamic T.
  //   b = [0.5, -1, 10]: row 0 [1.5, 1, 10], row 1 [3.5, 3, 12]
  %b = arith.constant dense<[0.5, -1.0, 10.0]> : tensor<3xf32>
  %xd = tensor.cast %x : tensor<2x2xf32> to tensor<?x2xf32>
  %init_l2_c0 = arith.constant 0 : index
  %init_l2_d0 = tensor.dim %xd, %init_l2_c0 : tensor<?x2xf32>
  %init_l2 = tensor.empty(%init_l2_d0) : tensor<?x3xf32>
  %l2 = moe.gate %xd, %w bias(%b : tensor<3xf32>) into(%init_l2)
      : tensor<?x2xf32>, tensor<2x3xf32> into tensor<?x3xf32>
  %u2 = tensor.cast %l2 : tensor<?x3xf32> to tensor<*xf32>
  call @printMemrefF32(%u2) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: rank = 2 offset = 0 sizes = [2, 3]
  // CHECK-NEXT: [1.5,   1,   10],
  // CHECK-NEXT: [3.5,   3,   12]]

  // Case 3: bf16 x and w, f32 logits, f32 accumulation.
  //   x = [[256, 1], [0.5, 1.5]], w = [[1, 1], [1, 3]] (all exact in bf16)
  //   row 0: [256 + 1, 256 + 3] = [257, 259]; neither is a bf16 value (the
  //          bf16 spacing at 256 is 2), so a bf16 accumulator would be off.
  //   row 1: [0.5 + 1.5, 0.5 + 4.5] = [2, 5]
  %xb = arith.constant dense<[[256.0, 1.0], [0.5, 1.5]]> : tensor<2x2xbf16>
  %wb = arith.constant dense<[[1.0, 1.0], [1.0, 3.0]]> : tensor<2x2xbf16>
  %init_l3 = tensor.empty() : tensor<2x2xf32>
  %l3 = moe.gate %xb, %wb into(%init_l3) : tensor<2x2xbf16>, tensor<2x2xbf16> into tensor<2x2xf32>
  %u3 = tensor.cast %l3 : tensor<2x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u3) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: rank = 2 offset = 0 sizes = [2, 2]
  // CHECK-NEXT: [257,   259],
  // CHECK-NEXT: [2,   5]]

  // Case 4: f16 x, f32 w, f16 bias (mixed types), f32 logits.
  //   x = [[2048, 1]], w = [[1], [1]], b = [0.25]
  //   2048 + 1 + 0.25 = 2049.25 (f16 spacing at 2048 is 2, so an f16
  //   accumulator could not hold it).
  %xh = arith.constant dense<[[2048.0, 1.0]]> : tensor<1x2xf16>
  %wh = arith.constant dense<[[1.0], [1.0]]> : tensor<2x1xf32>
  %bh = arith.constant dense<[0.25]> : tensor<1xf16>
  %init_l4 = tensor.empty() : tensor<1x1xf32>
  %l4 = moe.gate %xh, %wh bias(%bh : tensor<1xf16>) into(%init_l4)
      : tensor<1x2xf16>, tensor<2x1xf32> into tensor<1x1xf32>
  %u4 = tensor.cast %l4 : tensor<1x1xf32> to tensor<*xf32>
  call @printMemrefF32(%u4) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: rank = 2 offset = 0 sizes = [1, 1]
  // CHECK-NEXT: {{\[\[}}2049.25]]
  return
}
