// moe.route with groups and a selection bias through the CPU pipeline
// (Semantics.md 2.2 steps 2, 3, 8). scoring = none.
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
  // ---- groups<n = 2, top = 1>, 6 experts in groups {0,1,2} {3,4,5}, K = 2.
  //      A group's score is the sum of its two largest keys.
  //   t0 [4, 0, 0, 3, 2, 2]: g0 = 4 + 0 = 4, g1 = 3 + 2 = 5 -> g1;
  //      order 3, 4, 5 (tie 4/5: lower index) -> ids [3, 4], w [3, 2]
  //      (plain top-2 would give [0, 3])
  //   t1 [3, 3, -10, 5, 0, 0]: g0 = 3 + 3 = 6, g1 = 5 + 0 = 5 -> g0
  //      -> ids [0, 1], w [3, 3] (a max-of-group rule or a sum over the
  //      whole group (-4) would pick g1)
  //   t2 [1, 1, 0, 2, 0, 0]: g0 = 2, g1 = 2: tie -> lower group g0
  //      -> ids [0, 1], w [1, 1] (plain top-2 would give [3, 0])
  //   t3 [NaN, 5, NaN, 1, 1, 0]: NaN keys count as -inf in the group sum:
  //      g0 = 5 + (-inf) = -inf, g1 = 1 + 1 = 2 -> g1 -> ids [3, 4], w [1, 1]
  %lg = arith.constant dense<[[4.0, 0.0, 0.0, 3.0, 2.0, 2.0],
                              [3.0, 3.0, -10.0, 5.0, 0.0, 0.0],
                              [1.0, 1.0, 0.0, 2.0, 0.0, 0.0],
                              [0x7FC00000, 5.0, 0x7FC00000, 1.0, 1.0, 0.0]]> : tensor<4x6xf32>
  %init_gi = tensor.empty() : tensor<4x2xi32>
  %init_gw = tensor.empty() : tensor<4x2xf32>
  %gi, %gw = moe.route %lg experts = <compute = 6> k = 2 scoring = none
      strategy = top_k groups = <n = 2, top = 1> into(%init_gi, %init_gw)
      : tensor<4x6xf32> into tensor<4x2xi32>, tensor<4x2xf32>
  %gid = tensor.cast %gi : tensor<4x2xi32> to tensor<?x?xi32>
  %gwd = tensor.cast %gw : tensor<4x2xf32> to tensor<?x?xf32>
  call @print(%gid, %gwd) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [4, 2]
  // CHECK-NEXT: [3,   4],
  // CHECK-NEXT: [0,   1],
  // CHECK-NEXT: [0,   1],
  // CHECK-NEXT: [3,   4]]
  // CHECK-LABEL: sizes = [4, 2]
  // CHECK-NEXT: [3,   2],
  // CHECK-NEXT: [3,   3],
  // CHECK-NEXT: [1,   1],
  // CHECK-NEXT: [1,   1]]

  // ---- selection bias [0, -1, 2.5, 0], K = 2, normalize = selected,
  //      scale = 2.5. Keys u = s + bias pick the experts; the weights are the
  //      raw scores s.
  //   t0 s [4, 3, 1, 2] -> u [4, 2, 3.5, 2] -> order 0, 2 -> ids [0, 2],
  //      raw [4, 1] -> [0.8, 0.2] -> * 2.5 = [2, 0.5]
  //      (without the bias: ids [0, 1])
  //   t1 s [1, 2, 0, 3] -> u [1, 1, 2.5, 3] -> ids [3, 2], raw [3, 0]
  //      -> [1, 0] -> [2.5, 0]
  //   t2 s [1, 1, 1, 1] -> u [1, 0, 3.5, 1] -> order 2, 0, 3, 1 -> ids [2, 0],
  //      raw [1, 1] -> [0.5, 0.5] -> [1.25, 1.25]
  %lb = arith.constant dense<[[4.0, 3.0, 1.0, 2.0], [1.0, 2.0, 0.0, 3.0],
                              [1.0, 1.0, 1.0, 1.0]]> : tensor<3x4xf32>
  %sb = arith.constant dense<[0.0, -1.0, 2.5, 0.0]> : tensor<4xf32>
  %init_bi = tensor.empty() : tensor<3x2xi32>
  %init_bw = tensor.empty() : tensor<3x2xf32>
  %bi, %bw = moe.route %lb bias(%sb : tensor<4xf32>) experts = <compute = 4> k = 2
      scoring = none strategy = top_k normalize = selected scale = 2.5 into(%init_bi, %init_bw)
      : tensor<3x4xf32> into tensor<3x2xi32>, tensor<3x2xf32>
  %bid = tensor.cast %bi : tensor<3x2xi32> to tensor<?x?xi32>
  %bwd = tensor.cast %bw : tensor<3x2xf32> to tensor<?x?xf32>
  call @print(%bid, %bwd) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [3, 2]
  // CHECK-NEXT: [0,   2],
  // CHECK-NEXT: [3,   2],
  // CHECK-NEXT: [2,   0]]
  // CHECK-LABEL: sizes = [3, 2]
  // CHECK-NEXT: [2,   0.5],
  // CHECK-NEXT: [2.5,   0],
  // CHECK-NEXT: [1.25,   1.25]]

  // ---- groups<n = 2, top = 1> on biased keys: 4 experts {0,1} {2,3},
  //      bias [0, 0, 0, -1], K = 2, normalize = selected.
  //   t0 s [1, 1, 2, 0.5] -> u [1, 1, 2, -0.5]: g0 = 2, g1 = 1.5 -> g0
  //      -> ids [0, 1], raw [1, 1] -> [0.5, 0.5]
  //      (on unbiased scores g1 = 2.5 would win)
  //   t1 s [0, 3, 2, 2] -> u [0, 3, 2, 1]: g0 = 3, g1 = 3: tie -> g0
  //      -> ids [1, 0], raw [3, 0] -> [1, 0]
  %lc = arith.constant dense<[[1.0, 1.0, 2.0, 0.5], [0.0, 3.0, 2.0, 2.0]]> : tensor<2x4xf32>
  %sc = arith.constant dense<[0.0, 0.0, 0.0, -1.0]> : tensor<4xf32>
  %init_ci = tensor.empty() : tensor<2x2xi32>
  %init_cw = tensor.empty() : tensor<2x2xf32>
  %ci, %cw = moe.route %lc bias(%sc : tensor<4xf32>) experts = <compute = 4> k = 2
      scoring = none strategy = top_k normalize = selected groups = <n = 2, top = 1> into(%init_ci, %init_cw)
      : tensor<2x4xf32> into tensor<2x2xi32>, tensor<2x2xf32>
  %cid = tensor.cast %ci : tensor<2x2xi32> to tensor<?x?xi32>
  %cwd = tensor.cast %cw : tensor<2x2xf32> to tensor<?x?xf32>
  call @print(%cid, %cwd) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [0,   1],
  // CHECK-NEXT: [1,   0]]
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [0.5,   0.5],
  // CHECK-NEXT: [1,   0]]
  return
}
