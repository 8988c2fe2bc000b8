// moe.dispatch_padded (the padded moe.dispatch in destination-passing
// style) through the CPU pipeline: bufferized in place into the
// destinations (the default), and through convert-moe-to-loops (selected by
// instrument-ffn), which copies rows_init.
// RUN: moe-opt %s --moe-cpu-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s
// RUN: moe-opt %s --moe-cpu-pipeline="instrument-ffn=1 status-argument=0" | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s

func.func private @printMemrefF32(tensor<*xf32> {bufferization.access = "read"}) attributes { llvm.emit_c_interface }
func.func private @printMemrefI32(tensor<*xi32> {bufferization.access = "read"}) attributes { llvm.emit_c_interface }

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
  // The inputs of test/Integration/CPU/dispatch.mlir (derivation there):
  // 5 compute slots, unpadded rows [x0, x1, x1, x0, x2], offsets
  // [0, 3, 3, 5], slot_rows t0 [3, 0, -1], t1 [1, -1, 2], t2 [-1, 4, -1].
  %x = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf32>
  %xd = tensor.cast %x : tensor<3x2xf32> to tensor<?x2xf32>
  %ids = arith.constant dense<[[2, 0, 7], [0, -1, 0], [-5, 2, 3]]> : tensor<3x3xi32>
  %idsd = tensor.cast %ids : tensor<3x3xi32> to tensor<?x3xi32>
  // Destinations full of values that must not survive (offsets, slot_rows)
  // or must survive past offsets[E] (rows).
  %o0 = arith.constant dense<77> : tensor<4xi32>
  %s0 = arith.constant dense<77> : tensor<3x3xi32>
  %s0d = tensor.cast %s0 : tensor<3x3xi32> to tensor<?x3xi32>

  // R_max = 4 (dynamic) < 5: (t2, j1) does not fit, offsets clamped to
  // [0, 3, 3, 4]; rows [x0, x1, x1, x0].
  %r4 = arith.constant dense<9.0> : tensor<4x2xf32>
  %r4d = tensor.cast %r4 : tensor<4x2xf32> to tensor<?x2xf32>
  %pr, %po, %ps = moe.dispatch_padded %xd, %idsd num_experts = 3
      into(%r4d, %o0, %s0d) : tensor<?x2xf32>, tensor<?x3xi32>
      into tensor<?x2xf32>, tensor<4xi32>, tensor<?x3xi32>
  %pr_d = tensor.cast %pr : tensor<?x2xf32> to tensor<?x?xf32>
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

  // R_max = 7 (static) > 5: everything fits; rows 5 and 6 keep rows_init's
  // values.
  %r7 = arith.constant dense<[[9.0, 9.5], [9.0, 9.5], [9.0, 9.5], [9.0, 9.5], [9.0, 9.5], [9.0, 9.5], [8.0, 8.5]]> : tensor<7x2xf32>
  %wr, %wo, %ws = moe.dispatch_padded %xd, %idsd num_experts = 3
      into(%r7, %o0, %s0d) : tensor<?x2xf32>, tensor<?x3xi32>
      into tensor<7x2xf32>, tensor<4xi32>, tensor<?x3xi32>
  %wr_d = tensor.cast %wr : tensor<7x2xf32> to tensor<?x?xf32>
  %wo_d = tensor.cast %wo : tensor<4xi32> to tensor<?xi32>
  %ws_d = tensor.cast %ws : tensor<?x3xi32> to tensor<?x?xi32>
  call @print(%wr_d, %wo_d, %ws_d) : (tensor<?x?xf32>, tensor<?xi32>, tensor<?x?xi32>) -> ()
  // CHECK-LABEL: sizes = [7, 2]
  // CHECK-NEXT: [1,   2],
  // CHECK-NEXT: [3,   4],
  // CHECK-NEXT: [3,   4],
  // CHECK-NEXT: [1,   2],
  // CHECK-NEXT: [5,   6],
  // CHECK-NEXT: [9,   9.5],
  // CHECK-NEXT: [8,   8.5]]
  // CHECK-LABEL: sizes = [4]
  // CHECK-NEXT: [0,  3,  3,  5]
  // CHECK-LABEL: sizes = [3, 3]
  // CHECK-NEXT: [3,   0,   -1],
  // CHECK-NEXT: [1,   -1,   2],
  // CHECK-NEXT: [-1,   4,   -1]]

  // The destinations themselves are unchanged values (SSA): rows_init of
  // the second case still prints as it was.
  %r7_d = tensor.cast %r7 : tensor<7x2xf32> to tensor<*xf32>
  call @printMemrefF32(%r7_d) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [7, 2]
  // CHECK-NEXT: [9,   9.5],
  // CHECK-NEXT: [9,   9.5],
  // CHECK-NEXT: [9,   9.5],
  // CHECK-NEXT: [9,   9.5],
  // CHECK-NEXT: [9,   9.5],
  // CHECK-NEXT: [9,   9.5],
  // CHECK-NEXT: [8,   8.5]]
  return
}
