// moe.grouped_matmul through the CPU pipeline (Semantics.md 2.4):
// out[r] = lhs[r] @ rhs[e(r)] for offsets[e] <= r < offsets[e+1]; rows at or
// past offsets[E] are 0; offsets are sanitised first:
// o[0] = 0, o[e+1] = clamp(o[e+1], o[e], R).
// RUN: moe-opt %s --moe-cpu-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s
// The GPU kernels (convert-moe-to-gpu), run as host loops:
// RUN: moe-opt %s --moe-test-gpu-emulation-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s

func.func private @printMemrefF32(tensor<*xf32>) attributes { llvm.emit_c_interface }

func.func @gmm(%lhs: tensor<?x2xf32>, %rhs: tensor<3x2x3xf32>, %off: tensor<4xi32>) {
  %c0 = arith.constant 0 : index
  %r = tensor.dim %lhs, %c0 : tensor<?x2xf32>
  %init = tensor.empty(%r) : tensor<?x3xf32>
  %out = moe.grouped_matmul %lhs, %rhs, %off into(%init)
      : tensor<?x2xf32>, tensor<3x2x3xf32>, tensor<4xi32> into tensor<?x3xf32>
  %u = tensor.cast %out : tensor<?x3xf32> to tensor<*xf32>
  call @printMemrefF32(%u) : (tensor<*xf32>) -> ()
  return
}

func.func @main() {
  // lhs rows [a, b]: [1, 2], [3, 4], [5, 6], [7, 8], [9, 10]  (R = 5)
  // rhs[0] = [[1, 0, 1], [0, 1, 1]]  -> [a, b, a + b]
  // rhs[1] = [[2, 0, 0], [0, 2, 0]]  -> [2a, 2b, 0]
  // rhs[2] = [[0, 1, 0], [1, 0, -1]] -> [b, a, -b]
  %lhs = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0],
                               [9.0, 10.0]]> : tensor<5x2xf32>
  %lhsd = tensor.cast %lhs : tensor<5x2xf32> to tensor<?x2xf32>
  %rhs = arith.constant dense<[[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]],
                               [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]],
                               [[0.0, 1.0, 0.0], [1.0, 0.0, -1.0]]]> : tensor<3x2x3xf32>

  // Case 1: offsets [0, 2, 2, 4]: rows 0-1 expert 0, expert 1 empty, rows 2-3
  // expert 2, row 4 past offsets[E] = 4 -> 0.
  //   [1, 2, 3], [3, 4, 7], [6, 5, -6], [8, 7, -8], [0, 0, 0]
  %o1 = arith.constant dense<[0, 2, 2, 4]> : tensor<4xi32>
  call @gmm(%lhsd, %rhs, %o1) : (tensor<?x2xf32>, tensor<3x2x3xf32>, tensor<4xi32>) -> ()
  // CHECK-LABEL: sizes = [5, 3]
  // CHECK-NEXT: [1,   2,   3],
  // CHECK-NEXT: [3,   4,   7],
  // CHECK-NEXT: [6,   5,   -6],
  // CHECK-NEXT: [8,   7,   -8],
  // CHECK-NEXT: [0,   0,   0]]

  // Case 2: offsets [0, 1, 3, 3]: row 0 expert 0, rows 1-2 expert 1,
  // expert 2 empty, rows 3-4 -> 0.
  //   [1, 2, 3], [6, 8, 0], [10, 12, 0], [0, 0, 0], [0, 0, 0]
  %o2 = arith.constant dense<[0, 1, 3, 3]> : tensor<4xi32>
  call @gmm(%lhsd, %rhs, %o2) : (tensor<?x2xf32>, tensor<3x2x3xf32>, tensor<4xi32>) -> ()
  // CHECK-LABEL: sizes = [5, 3]
  // CHECK-NEXT: [1,   2,   3],
  // CHECK-NEXT: [6,   8,   0],
  // CHECK-NEXT: [10,   12,   0],
  // CHECK-NEXT: [0,   0,   0],
  // CHECK-NEXT: [0,   0,   0]]

  // Case 3: garbage offsets [3, 1, -2, 9] (o[0] != 0, negative, > R):
  //   o0 = 0; o1 = clamp(1, 0, 5) = 1; o2 = clamp(-2, 1, 5) = 1;
  //   o3 = clamp(9, 1, 5) = 5 -> row 0 expert 0, expert 1 empty,
  //   rows 1-4 expert 2:
  //   [1, 2, 3], [4, 3, -4], [6, 5, -6], [8, 7, -8], [10, 9, -10]
  %o3 = arith.constant dense<[3, 1, -2, 9]> : tensor<4xi32>
  call @gmm(%lhsd, %rhs, %o3) : (tensor<?x2xf32>, tensor<3x2x3xf32>, tensor<4xi32>) -> ()
  // CHECK-LABEL: sizes = [5, 3]
  // CHECK-NEXT: [1,   2,   3],
  // CHECK-NEXT: [4,   3,   -4],
  // CHECK-NEXT: [6,   5,   -6],
  // CHECK-NEXT: [8,   7,   -8],
  // CHECK-NEXT: [10,   9,   -10]]

  // Case 4: decreasing offsets [0, 4, 2, 3]: o1 = 4, o2 = clamp(2, 4, 5) = 4,
  // o3 = clamp(3, 4, 5) = 4 -> rows 0-3 expert 0, row 4 -> 0:
  //   [1, 2, 3], [3, 4, 7], [5, 6, 11], [7, 8, 15], [0, 0, 0]
  %o4 = arith.constant dense<[0, 4, 2, 3]> : tensor<4xi32>
  call @gmm(%lhsd, %rhs, %o4) : (tensor<?x2xf32>, tensor<3x2x3xf32>, tensor<4xi32>) -> ()
  // CHECK-LABEL: sizes = [5, 3]
  // CHECK-NEXT: [1,   2,   3],
  // CHECK-NEXT: [3,   4,   7],
  // CHECK-NEXT: [5,   6,   11],
  // CHECK-NEXT: [7,   8,   15],
  // CHECK-NEXT: [0,   0,   0]]

  // Case 5: huge and negative values [-7, 2147483647, -2147483648, 1]:
  //   o1 = clamp(2147483647, 0, 5) = 5, o2 = clamp(INT_MIN, 5, 5) = 5,
  //   o3 = clamp(1, 5, 5) = 5 -> every row expert 0:
  //   [1, 2, 3], [3, 4, 7], [5, 6, 11], [7, 8, 15], [9, 10, 19]
  %o5 = arith.constant dense<[-7, 2147483647, -2147483648, 1]> : tensor<4xi32>
  call @gmm(%lhsd, %rhs, %o5) : (tensor<?x2xf32>, tensor<3x2x3xf32>, tensor<4xi32>) -> ()
  // CHECK-LABEL: sizes = [5, 3]
  // CHECK-NEXT: [1,   2,   3],
  // CHECK-NEXT: [3,   4,   7],
  // CHECK-NEXT: [5,   6,   11],
  // CHECK-NEXT: [7,   8,   15],
  // CHECK-NEXT: [9,   10,   19]]

  // Case 6: bf16 lhs and rhs, one expert, Kd = 3, N = 1, rhs = ones.
  // Accumulate in f32, then round the result to bf16 (RNE; the bf16 spacing
  // between 256 and 512 is 2):
  //   [256, 1, 1] -> 258 (exact; a bf16 accumulator would give 256)
  //   [256, 1, 0] -> 257 -> tie between 256 and 258 -> even -> 256
  //   [256, 3, 0] -> 259 -> tie between 258 and 260 -> even -> 260
  %bl = arith.constant dense<[[256.0, 1.0, 1.0], [256.0, 1.0, 0.0],
                              [256.0, 3.0, 0.0]]> : tensor<3x3xbf16>
  %br = arith.constant dense<1.0> : tensor<1x3x1xbf16>
  %bo = arith.constant dense<[0, 3]> : tensor<2xi32>
  %binit = tensor.empty() : tensor<3x1xbf16>
  %bout = moe.grouped_matmul %bl, %br, %bo into(%binit)
      : tensor<3x3xbf16>, tensor<1x3x1xbf16>, tensor<2xi32> into tensor<3x1xbf16>
  %bf = arith.extf %bout : tensor<3x1xbf16> to tensor<3x1xf32>
  %bu = tensor.cast %bf : tensor<3x1xf32> to tensor<*xf32>
  call @printMemrefF32(%bu) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [3, 1]
  // CHECK-NEXT: {{\[\[}}258],
  // CHECK-NEXT: [256],
  // CHECK-NEXT: [260]]
  return
}
