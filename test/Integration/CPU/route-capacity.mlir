// moe.route with capacity through the CPU pipeline (Semantics.md 2.2 step 7):
// each compute expert keeps at most C = ceil(cf * T * K / E) of the slots that
// chose it (exact ceiling, cf as f64); dropped slots become empty and each
// token's remaining slots are compacted to the front. scoring = none.
// RUN: moe-opt %s --moe-cpu-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s
// The GPU kernels (convert-moe-to-gpu), run as host loops:
// RUN: moe-opt %s --moe-test-gpu-emulation-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s

func.func private @printMemrefF32(tensor<*xf32>) attributes { llvm.emit_c_interface }
func.func private @printMemrefI32(tensor<*xi32>) attributes { llvm.emit_c_interface }

func.func @print(%ids: tensor<?x?xi32>, %w: tensor<?x?xf32>) {
  %ui = tensor.cast %ids : tensor<?x?xi32> to tensor<*xi32>
  %uw = tensor.cast %w : tensor<?x?xf32> to tensor<*xf32>
  call @printMemrefI32(%ui) : (tensor<*xi32>) -> ()
  call @printMemrefF32(%uw) : (tensor<*xf32>) -> ()
  return
}

func.func @main() {
  // ---- priority = position, 2 compute + 1 null expert (id 2), T = 4, K = 2,
  //      cf = 0.5: C = ceil(0.5 * 4 * 2 / 2) = 2.
  //   before capacity (top-2):
  //     t0 [5, 1, 0] -> [0, 1]     t1 [4, 1, 0] -> [0, 1]
  //     t2 [3, 0, 1] -> [0, 2]     t3 [0, 2, 1] -> [1, 2]
  //   expert 0 slots, ranked by (j, t): (0,t0) (0,t1) (0,t2) -> keeps t0, t1,
  //     drops t2's slot 0
  //   expert 1 slots: (0,t3) (1,t0) (1,t1) -> keeps t3, t0, drops t1's slot 1
  //   the null expert is never capped.
  //   t0 [0, 1] w [5, 1]; t1 [0, -1] w [4, 0];
  //   t2: slot 0 dropped, the null slot moves to the front: [2, -1] w [1, 0]
  //   t3 [1, 2] w [2, 1]
  %l1 = arith.constant dense<[[5.0, 1.0, 0.0], [4.0, 1.0, 0.0],
                              [3.0, 0.0, 1.0], [0.0, 2.0, 1.0]]> : tensor<4x3xf32>
  %init_i1 = tensor.empty() : tensor<4x2xi32>
  %init_w1 = tensor.empty() : tensor<4x2xf32>
  %i1, %w1 = moe.route %l1 experts = <compute = 2, null = 1> k = 2 scoring = none
      strategy = top_k capacity = <factor = 0.5, priority = position> into(%init_i1, %init_w1)
      : tensor<4x3xf32> into tensor<4x2xi32>, tensor<4x2xf32>
  %i1d = tensor.cast %i1 : tensor<4x2xi32> to tensor<?x?xi32>
  %w1d = tensor.cast %w1 : tensor<4x2xf32> to tensor<?x?xf32>
  call @print(%i1d, %w1d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [4, 2]
  // CHECK-NEXT: [0,   1],
  // CHECK-NEXT: [0,   -1],
  // CHECK-NEXT: [2,   -1],
  // CHECK-NEXT: [1,   2]]
  // CHECK-LABEL: sizes = [4, 2]
  // CHECK-NEXT: [5,   1],
  // CHECK-NEXT: [4,   0],
  // CHECK-NEXT: [1,   0],
  // CHECK-NEXT: [2,   1]]

  // ---- K = 1, 2 compute experts, T = 4, cf = 0.5: C = ceil(0.5*4*1/2) = 1.
  //   top-1: t0 [1, 0] -> 0 (1); t1 [3, 0] -> 0 (3); t2 [0, 2] -> 1 (2);
  //          t3 [0, 2] -> 1 (2)
  //   priority = score: expert 0 keeps t1 (3 > 1); expert 1: tie 2 = 2, lower
  //     t -> keeps t2.   ids [-1, 0, 1, -1], w [0, 3, 2, 0]
  //   priority = position (token order for K = 1): expert 0 keeps t0, expert
  //     1 keeps t2.      ids [0, -1, 1, -1], w [1, 0, 2, 0]
  %l2 = arith.constant dense<[[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 2.0]]> : tensor<4x2xf32>
  %init_i2 = tensor.empty() : tensor<4x1xi32>
  %init_w2 = tensor.empty() : tensor<4x1xf32>
  %i2, %w2 = moe.route %l2 experts = <compute = 2> k = 1 scoring = none
      strategy = top_k capacity = <factor = 0.5, priority = score> into(%init_i2, %init_w2)
      : tensor<4x2xf32> into tensor<4x1xi32>, tensor<4x1xf32>
  %i2d = tensor.cast %i2 : tensor<4x1xi32> to tensor<?x?xi32>
  %w2d = tensor.cast %w2 : tensor<4x1xf32> to tensor<?x?xf32>
  call @print(%i2d, %w2d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [4, 1]
  // CHECK-NEXT: {{\[\[}}-1],
  // CHECK-NEXT: [0],
  // CHECK-NEXT: [1],
  // CHECK-NEXT: [-1]]
  // CHECK-LABEL: sizes = [4, 1]
  // CHECK-NEXT: {{\[\[}}0],
  // CHECK-NEXT: [3],
  // CHECK-NEXT: [2],
  // CHECK-NEXT: [0]]
  %init_i3 = tensor.empty() : tensor<4x1xi32>
  %init_w3 = tensor.empty() : tensor<4x1xf32>
  %i3, %w3 = moe.route %l2 experts = <compute = 2> k = 1 scoring = none
      strategy = top_k capacity = <factor = 0.5, priority = position> into(%init_i3, %init_w3)
      : tensor<4x2xf32> into tensor<4x1xi32>, tensor<4x1xf32>
  %i3d = tensor.cast %i3 : tensor<4x1xi32> to tensor<?x?xi32>
  %w3d = tensor.cast %w3 : tensor<4x1xf32> to tensor<?x?xf32>
  call @print(%i3d, %w3d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [4, 1]
  // CHECK-NEXT: {{\[\[}}0],
  // CHECK-NEXT: [-1],
  // CHECK-NEXT: [1],
  // CHECK-NEXT: [-1]]
  // CHECK-LABEL: sizes = [4, 1]
  // CHECK-NEXT: {{\[\[}}1],
  // CHECK-NEXT: [0],
  // CHECK-NEXT: [2],
  // CHECK-NEXT: [0]]

  // ---- priority = score with compaction, then normalize = selected,
  //      scale = 2. 2 compute experts, T = 2, K = 2, cf = 0.5:
  //      C = ceil(0.5 * 2 * 2 / 2) = 1.
  //   top-2: t0 [5, 4] -> [0, 1]; t1 [6, 1] -> [0, 1]
  //   expert 0: raw 5 (t0), 6 (t1) -> keeps t1, drops t0's slot 0
  //   expert 1: raw 4 (t0), 1 (t1) -> keeps t0, drops t1's slot 1
  //   t0: compacted to [1, -1], raw [4, 0] -> normalised after capacity:
  //       4/4 * 2 = 2 (not 4/9 * 2)
  //   t1: [0, -1], raw [6, 0] -> 6/6 * 2 = 2
  %l4 = arith.constant dense<[[5.0, 4.0], [6.0, 1.0]]> : tensor<2x2xf32>
  %init_i4 = tensor.empty() : tensor<2x2xi32>
  %init_w4 = tensor.empty() : tensor<2x2xf32>
  %i4, %w4 = moe.route %l4 experts = <compute = 2> k = 2 scoring = none
      strategy = top_k normalize = selected scale = 2.0
      capacity = <factor = 0.5, priority = score> into(%init_i4, %init_w4)
      : tensor<2x2xf32> into tensor<2x2xi32>, tensor<2x2xf32>
  %i4d = tensor.cast %i4 : tensor<2x2xi32> to tensor<?x?xi32>
  %w4d = tensor.cast %w4 : tensor<2x2xf32> to tensor<?x?xf32>
  call @print(%i4d, %w4d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [1,   -1],
  // CHECK-NEXT: [0,   -1]]
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [2,   0],
  // CHECK-NEXT: [2,   0]]

  // ---- The exact ceiling: cf = 0.1, T = 10, K = 1, E = 1. The f64 nearest
  //      to 0.1 is 0.1000000000000000055..., so cf * 10 is slightly above 1
  //      and C = ceil(1.000...0055) = 2 (a rounded f64 product would give
  //      exactly 1.0 and C = 1). position priority keeps t0 and t1 only.
  //   every token's top-1 is expert 0 with raw weight 1
  %l5 = arith.constant dense<1.0> : tensor<10x1xf32>
  %l5d = tensor.cast %l5 : tensor<10x1xf32> to tensor<?x1xf32>
  %init_i5_c0 = arith.constant 0 : index
  %init_i5_d0 = tensor.dim %l5d, %init_i5_c0 : tensor<?x1xf32>
  %init_i5 = tensor.empty(%init_i5_d0) : tensor<?x1xi32>
  %init_w5_c0 = arith.constant 0 : index
  %init_w5_d0 = tensor.dim %l5d, %init_w5_c0 : tensor<?x1xf32>
  %init_w5 = tensor.empty(%init_w5_d0) : tensor<?x1xf32>
  %i5, %w5 = moe.route %l5d experts = <compute = 1> k = 1 scoring = none
      strategy = top_k capacity = <factor = 0.1, priority = position> into(%init_i5, %init_w5)
      : tensor<?x1xf32> into tensor<?x1xi32>, tensor<?x1xf32>
  %i5u = tensor.cast %i5 : tensor<?x1xi32> to tensor<*xi32>
  call @printMemrefI32(%i5u) : (tensor<*xi32>) -> ()
  // CHECK-LABEL: sizes = [10, 1]
  // CHECK-NEXT: {{\[\[}}0],
  // CHECK-NEXT: [0],
  // CHECK-NEXT: [-1],
  // CHECK-NEXT: [-1],
  // CHECK-NEXT: [-1],
  // CHECK-NEXT: [-1],
  // CHECK-NEXT: [-1],
  // CHECK-NEXT: [-1],
  // CHECK-NEXT: [-1],
  // CHECK-NEXT: [-1]]
  return
}
