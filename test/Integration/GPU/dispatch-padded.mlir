// The padded moe.dispatch through the GPU kernels (convert-moe-to-gpu), run
// as host loops; the cases and numbers of test/Integration/CPU/dispatch.mlir.
// (The unpadded form cannot return its rows from a GPU function: see
// test/Conversion/MoEToGPU/invalid.mlir.)
// RUN: moe-opt %s --moe-test-gpu-emulation-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s


func.func private @printMemrefF32(tensor<*xf32>) attributes { llvm.emit_c_interface }
func.func private @printMemrefI32(tensor<*xi32>) attributes { llvm.emit_c_interface }

func.func @print(%rows: tensor<?x?xf32>, %off: tensor<?xi32>, %sr: tensor<?x?xi32>) {
  %ur = tensor.cast %rows : tensor<?x?xf32> to tensor<*xf32>
  %uo = tensor.cast %off : tensor<?xi32> to tensor<*xi32>
  %us = tensor.cast %sr : tensor<?x?xi32> to tensor<*xi32>
  call @printMemrefF32(%ur) : (tensor<*xf32>) -> ()
  call @printMemrefI32(%uo) : (tensor<*xi32>) -> ()
  call @printMemrefI32(%us) : (tensor<*xi32>) -> ()
  return
}

func.func @main() {
  // x rows: t0 [1, 2], t1 [3, 4], t2 [5, 6]; E = 3, K = 3.
  //   ids t0 [2, 0, 7]    (7 >= E: out of range)
  //       t1 [0, -1, 0]   (empty slot; expert 0 twice)
  //       t2 [-5, 2, 3]   (-5: garbage; 3 is a zero-computation id, not < E)
  //   compute slots (t, j, e): (0,0,2) (0,1,0) (1,0,0) (1,2,0) (2,1,2)
  //   sorted by (e, t, j): e0: (0,1) (1,0) (1,2) -> rows 0, 1, 2
  //                        e1: none
  //                        e2: (0,0) (2,1)       -> rows 3, 4
  //   rows = [x0, x1, x1, x0, x2], R = 5, offsets = [0, 3, 3, 5]
  //   slot_rows t0 [3, 0, -1], t1 [1, -1, 2], t2 [-1, 4, -1]
  %x = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf32>
  %xd = tensor.cast %x : tensor<3x2xf32> to tensor<?x2xf32>
  %ids = arith.constant dense<[[2, 0, 7], [0, -1, 0], [-5, 2, 3]]> : tensor<3x3xi32>
  %idsd = tensor.cast %ids : tensor<3x3xi32> to tensor<?x3xi32>
  // Padded form, R_max = 4 < 5 compute slots: a slot fits when its unpadded
  // row is < 4, so (t2, j1) (row 4) is not dispatched; offsets are clamped
  // to R_max: min([0, 3, 3, 5], 4) = [0, 3, 3, 4].
  //   rows = [x0, x1, x1, x0]; slot_rows t0 [3, 0, -1], t1 [1, -1, 2],
  //   t2 [-1, -1, -1]
  %pr, %po, %ps = moe.dispatch %xd, %idsd num_experts = 3
      : tensor<?x2xf32>, tensor<?x3xi32> -> tensor<4x2xf32>, tensor<4xi32>, tensor<?x3xi32>
  %pr_d = tensor.cast %pr : tensor<4x2xf32> to tensor<?x?xf32>
  %po_d = tensor.cast %po : tensor<4xi32> to tensor<?xi32>
  %ps_d = tensor.cast %ps : tensor<?x3xi32> to tensor<?x?xi32>
  call @print(%pr_d, %po_d, %ps_d) : (tensor<?x?xf32>, tensor<?xi32>, tensor<?x?xi32>) -> ()
  // CHECK-LABEL: sizes = [4, 2]
  // CHECK-NEXT: [1,   2],
  // CHECK-NEXT: [3,   4],
  // CHECK-NEXT: [3,   4],
  // CHECK-NEXT: [1,   2]]
  // CHECK-LABEL: sizes = [4]
  // CHECK-NEXT: [0,  3,  3,  4]
  // CHECK-LABEL: sizes = [3, 3]
  // CHECK-NEXT: [3,   0,   -1],
  // CHECK-NEXT: [1,   -1,   2],
  // CHECK-NEXT: [-1,   -1,   -1]]

  // Padded form, R_max = 2: only rows 0 and 1 fit, expert 0's third row
  // (t1, j2) does not. offsets = min([0, 3, 3, 5], 2) = [0, 2, 2, 2].
  //   rows = [x0, x1]; slot_rows t0 [-1, 0, -1], t1 [1, -1, -1], t2 all -1
  %qr, %qo, %qs = moe.dispatch %xd, %idsd num_experts = 3
      : tensor<?x2xf32>, tensor<?x3xi32> -> tensor<2x2xf32>, tensor<4xi32>, tensor<?x3xi32>
  %qr_d = tensor.cast %qr : tensor<2x2xf32> to tensor<?x?xf32>
  %qo_d = tensor.cast %qo : tensor<4xi32> to tensor<?xi32>
  %qs_d = tensor.cast %qs : tensor<?x3xi32> to tensor<?x?xi32>
  call @print(%qr_d, %qo_d, %qs_d) : (tensor<?x?xf32>, tensor<?xi32>, tensor<?x?xi32>) -> ()
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [1,   2],
  // CHECK-NEXT: [3,   4]]
  // CHECK-LABEL: sizes = [4]
  // CHECK-NEXT: [0,  2,  2,  2]
  // CHECK-LABEL: sizes = [3, 3]
  // CHECK-NEXT: [-1,   0,   -1],
  // CHECK-NEXT: [1,   -1,   -1],
  // CHECK-NEXT: [-1,   -1,   -1]]

  // Padded form, R_max = 8 > 5: everything fits, offsets [0, 3, 3, 5]
  // unchanged, slot_rows as in the unpadded case. Rows past offsets[E] = 5
  // are unspecified, so only rows [0, 5) are printed.
  %wr, %wo, %ws = moe.dispatch %xd, %idsd num_experts = 3
      : tensor<?x2xf32>, tensor<?x3xi32> -> tensor<8x2xf32>, tensor<4xi32>, tensor<?x3xi32>
  %wr5 = tensor.extract_slice %wr[0, 0] [5, 2] [1, 1] : tensor<8x2xf32> to tensor<5x2xf32>
  %wr_d = tensor.cast %wr5 : tensor<5x2xf32> to tensor<?x?xf32>
  %wo_d = tensor.cast %wo : tensor<4xi32> to tensor<?xi32>
  %ws_d = tensor.cast %ws : tensor<?x3xi32> to tensor<?x?xi32>
  call @print(%wr_d, %wo_d, %ws_d) : (tensor<?x?xf32>, tensor<?xi32>, tensor<?x?xi32>) -> ()
  // CHECK-LABEL: sizes = [5, 2]
  // CHECK-NEXT: [1,   2],
  // CHECK-NEXT: [3,   4],
  // CHECK-NEXT: [3,   4],
  // CHECK-NEXT: [1,   2],
  // CHECK-NEXT: [5,   6]]
  // CHECK-LABEL: sizes = [4]
  // CHECK-NEXT: [0,  3,  3,  5]
  // CHECK-LABEL: sizes = [3, 3]
  // CHECK-NEXT: [3,   0,   -1],
  // CHECK-NEXT: [1,   -1,   2],
  // CHECK-NEXT: [-1,   4,   -1]]

  return
}
