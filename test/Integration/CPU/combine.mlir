// moe.combine through the CPU pipeline (Semantics.md 2.6):
// out[t] = sum over j = 0..K-1, in slot order, from +0.0, of
// weights[t,j] * c(t,j). Null, empty and out-of-range slots, and compute slots
// whose slot_rows is outside [0, R), are skipped (their weights are never read).
// RUN: moe-opt %s --moe-cpu-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s
// The GPU kernels (convert-moe-to-gpu), run as host loops:
// RUN: moe-opt %s --moe-test-gpu-emulation-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s

func.func private @printMemrefF32(tensor<*xf32>) attributes { llvm.emit_c_interface }

// Expert space <compute = 2, null = 1, copy = 1, const = 2>: ids 0, 1 compute,
// 2 null, 3 copy, 4 and 5 constant; S = 6, so 7 and -5 are out of range.
// y (R = 3) = [[10, 20], [30, 40], [50, 60]]
// Wc[0] = 0 -> x @ Wc[0] = [0, 0] -> [a1, a2] = softmax = [0.5, 0.5];  v[0] = [100, 200]
// Wc[1] = [[ln3, 0], [0, 0]], v[1] = [4, 8]
//
// t0 x [1, 2], ids [0, 3, 4, 2], slot_rows [1, -1, -1, 0], w [0.5, 2, 1, NaN]
//    0.5 * y[1] = [15, 20]; copy 2 * x = [2, 4];
//    const 0: 1 * (0.5 * [1, 2] + 0.5 * [100, 200]) = [50.5, 101];
//    null slot (NaN weight, valid-looking slot_rows 0) skipped
//    -> [67.5, 125]
// t1 x [3, 4], ids [-1, 7, 1, -5], slot_rows [0, 0, 2, 0], w [NaN, NaN, 0.25, NaN]
//    empty and out-of-range slots skipped; 0.25 * y[2] = [12.5, 15]
// t2 x [5, 6], ids [1, 0, 3, -1], slot_rows [5, -1, -1, -1], w [NaN, NaN, 1, 0]
//    compute slots with slot_rows 5 (>= R) and -1 skipped; copy 1 * x -> [5, 6]
// t3 x [1, -1], ids [3, 3, 3, 2], w [1, 1e8, -1e8, NaN]: three copy slots,
//    summed in slot order in f32 (1e8 + 1 rounds to 1e8):
//    col 0: ((0 + 1) + 1e8) - 1e8 = 0; col 1: ((0 - 1) - 1e8) + 1e8 = 0
//    -> [0, 0] (the reverse order would give [1, -1])
// t4 x [7, 8], ids [0, -1, -1, -1], slot_rows [0, ...], w [-0, 0, 0, 0]:
//    -0 * y[0] = [-0, -0]; +0.0 + (-0) = +0 -> [0, 0] (not -0)
// t5 x [1, 0], ids [5, -1, -1, -1], w [2, 0, 0, 0]: x @ Wc[1] = [ln3, 0]
//    -> softmax [3/4, 1/4] -> 2 * (0.75 * [1, 0] + 0.25 * [4, 8]) = [3.5, 4]
func.func @main() {
  %y = arith.constant dense<[[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]]> : tensor<3x2xf32>
  %yd = tensor.cast %y : tensor<3x2xf32> to tensor<?x2xf32>
  %sr = arith.constant dense<[[1, -1, -1, 0], [0, 0, 2, 0], [5, -1, -1, -1],
                              [-1, -1, -1, -1], [0, -1, -1, -1], [-1, -1, -1, -1]]> : tensor<6x4xi32>
  %ids = arith.constant dense<[[0, 3, 4, 2], [-1, 7, 1, -5], [1, 0, 3, -1],
                               [3, 3, 3, 2], [0, -1, -1, -1], [5, -1, -1, -1]]> : tensor<6x4xi32>
  %w = arith.constant dense<[[0.5, 2.0, 1.0, 0x7FC00000],
                             [0x7FC00000, 0x7FC00000, 0.25, 0x7FC00000],
                             [0x7FC00000, 0x7FC00000, 1.0, 0.0],
                             [1.0, 1.0e8, -1.0e8, 0x7FC00000],
                             [-0.0, 0.0, 0.0, 0.0],
                             [2.0, 0.0, 0.0, 0.0]]> : tensor<6x4xf32>
  %x = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [1.0, -1.0],
                             [7.0, 8.0], [1.0, 0.0]]> : tensor<6x2xf32>
  %wc = arith.constant dense<[[[0.0, 0.0], [0.0, 0.0]],
                              [[1.0986123, 0.0], [0.0, 0.0]]]> : tensor<2x2x2xf32>
  %v = arith.constant dense<[[100.0, 200.0], [4.0, 8.0]]> : tensor<2x2xf32>
  %init_out = tensor.empty() : tensor<6x2xf32>
  %out = moe.combine %yd, %sr, %ids, %w, %x
      const_proj(%wc : tensor<2x2x2xf32>) const_values(%v : tensor<2x2xf32>)
      experts = <compute = 2, null = 1, copy = 1, const = 2> into(%init_out)
      : tensor<?x2xf32>, tensor<6x4xi32>, tensor<6x4xi32>, tensor<6x4xf32>,
        tensor<6x2xf32> into tensor<6x2xf32>
  %u = tensor.cast %out : tensor<6x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [6, 2]
  // CHECK-NEXT: [67.5,   125],
  // CHECK-NEXT: [12.5,   15],
  // CHECK-NEXT: [5,   6],
  // CHECK-NEXT: [0,   0],
  // CHECK-NEXT: [0,   0],
  // CHECK-NEXT: [3.5,   4]]

  // Plain MoE (<compute = 2>, no constant operands), dynamic T, K = 2:
  //   t0 ids [1, 0], slot_rows [2, 0], w [0.75, 0.25]
  //      -> 0.75 * [50, 60] + 0.25 * [10, 20] = [37.5 + 2.5, 45 + 5] = [40, 50]
  //   t1 ids [2, 1], slot_rows [0, 1], w [NaN, 2]: id 2 >= S = 2 is out of
  //      range -> skipped; 2 * y[1] = [60, 80]
  %ids2 = arith.constant dense<[[1, 0], [2, 1]]> : tensor<2x2xi32>
  %sr2 = arith.constant dense<[[2, 0], [0, 1]]> : tensor<2x2xi32>
  %w2 = arith.constant dense<[[0.75, 0.25], [0x7FC00000, 2.0]]> : tensor<2x2xf32>
  %x2 = arith.constant dense<[[1.0, 1.0], [1.0, 1.0]]> : tensor<2x2xf32>
  %ids2d = tensor.cast %ids2 : tensor<2x2xi32> to tensor<?x2xi32>
  %sr2d = tensor.cast %sr2 : tensor<2x2xi32> to tensor<?x2xi32>
  %w2d = tensor.cast %w2 : tensor<2x2xf32> to tensor<?x2xf32>
  %x2d = tensor.cast %x2 : tensor<2x2xf32> to tensor<?x2xf32>
  %init_out2_c0 = arith.constant 0 : index
  %init_out2_d0 = tensor.dim %x2d, %init_out2_c0 : tensor<?x2xf32>
  %init_out2 = tensor.empty(%init_out2_d0) : tensor<?x2xf32>
  %out2 = moe.combine %yd, %sr2d, %ids2d, %w2d, %x2d experts = <compute = 2> into(%init_out2)
      : tensor<?x2xf32>, tensor<?x2xi32>, tensor<?x2xi32>, tensor<?x2xf32>,
        tensor<?x2xf32> into tensor<?x2xf32>
  %u2 = tensor.cast %out2 : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u2) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [40,   50],
  // CHECK-NEXT: [60,   80]]
  return
}
