// moe.route strategies through the CPU pipeline (Semantics.md 2.2 steps 4-6,
// 2.2.1). scoring = none everywhere, so the scores are the logits and every
// expected number is exact.
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
  // ---- top_p<p = 0.5>, K = 3, 4 compute experts. Running sums in sort order:
  //   t0 [0.125, 0.625, 0.25, 0]: order 1, 2, 0, 3; 0.625 >= 0.5 at m = 1
  //      -> ids [1, -1, -1], w [0.625, 0, 0]
  //   t1 [0.375, 0.25, 0.25, 0.125]: order 0, 1 (tie 0.25: lower index), 2, 3;
  //      0.375 < 0.5, 0.625 >= 0.5 at m = 2 -> ids [0, 1, -1], w [0.375, 0.25, 0]
  //   t2 [0.125 x4]: 0.125, 0.25, 0.375 never reach 0.5 -> n = K = 3
  //      -> ids [0, 1, 2], w [0.125, 0.125, 0.125]
  //   t3 [0.25, 0.25, 0, 0]: 0.25, then 0.5 >= 0.5 (equality counts) at m = 2
  //      -> ids [0, 1, -1], w [0.25, 0.25, 0]
  %lp = arith.constant dense<[[0.125, 0.625, 0.25, 0.0], [0.375, 0.25, 0.25, 0.125],
                              [0.125, 0.125, 0.125, 0.125], [0.25, 0.25, 0.0, 0.0]]> : tensor<4x4xf32>
  %init_pi = tensor.empty() : tensor<4x3xi32>
  %init_pw = tensor.empty() : tensor<4x3xf32>
  %pi, %pw = moe.route %lp experts = <compute = 4> k = 3 scoring = none
      strategy = top_p<p = 0.5> into(%init_pi, %init_pw) : tensor<4x4xf32> into tensor<4x3xi32>, tensor<4x3xf32>
  %pi_d = tensor.cast %pi : tensor<4x3xi32> to tensor<?x?xi32>
  %pw_d = tensor.cast %pw : tensor<4x3xf32> to tensor<?x?xf32>
  call @print(%pi_d, %pw_d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [4, 3]
  // CHECK-NEXT: [1,   -1,   -1],
  // CHECK-NEXT: [0,   1,   -1],
  // CHECK-NEXT: [0,   1,   2],
  // CHECK-NEXT: [0,   1,   -1]]
  // CHECK-LABEL: sizes = [4, 3]
  // CHECK-NEXT: [0.625,   0,   0],
  // CHECK-NEXT: [0.375,   0.25,   0],
  // CHECK-NEXT: [0.125,   0.125,   0.125],
  // CHECK-NEXT: [0.25,   0.25,   0]]

  // ---- top_p<p = 1.0> gives K slots even when the sum reaches 1 early.
  //   t0 [1, 0, 0, 0]: the running sum is 1 at m = 1, but p == 1 -> n = K = 2;
  //      order 0, then 1 (the tie at 0 goes to the lower index)
  //      -> ids [0, 1], w [1, 0]
  //   t1 [2, 3, 0, 0]: order 1, 0 -> ids [1, 0], w [3, 2]
  %l1 = arith.constant dense<[[1.0, 0.0, 0.0, 0.0], [2.0, 3.0, 0.0, 0.0]]> : tensor<2x4xf32>
  %init_p1i = tensor.empty() : tensor<2x2xi32>
  %init_p1w = tensor.empty() : tensor<2x2xf32>
  %p1i, %p1w = moe.route %l1 experts = <compute = 4> k = 2 scoring = none
      strategy = top_p<p = 1.0> into(%init_p1i, %init_p1w) : tensor<2x4xf32> into tensor<2x2xi32>, tensor<2x2xf32>
  %p1i_d = tensor.cast %p1i : tensor<2x2xi32> to tensor<?x?xi32>
  %p1w_d = tensor.cast %p1w : tensor<2x2xf32> to tensor<?x?xf32>
  call @print(%p1i_d, %p1w_d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [0,   1],
  // CHECK-NEXT: [1,   0]]
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [1,   0],
  // CHECK-NEXT: [3,   2]]

  // ---- adaptive<tau = 0.5>, K = 4: longest prefix with s[o_1] - s[o_i] <= 0.5.
  //   t0 [1, 0.75, 0.25, 0.875]: order 0, 3, 1, 2; gaps 0, 0.125, 0.25, 0.75
  //      -> prefix 3 -> ids [0, 3, 1, -1], w [1, 0.875, 0.75, 0]
  //   t1 [NaN x4]: s[o_1] is NaN -> n = 0 -> all empty
  //   t2 [NaN, 1, 1, 0.75]: NaN sorts last: order 1, 2, 3, 0; gaps 0, 0, 0.25,
  //      NaN (fails: NaN <= 0.5 is false) -> ids [1, 2, 3, -1], w [1, 1, 0.75, 0]
  //   t3 [0, 2, 1, 1.5]: order 1, 3, 2, 0; gaps 0, 0.5 (passes, <=), 1
  //      -> ids [1, 3, -1, -1], w [2, 1.5, 0, 0]
  %la = arith.constant dense<[[1.0, 0.75, 0.25, 0.875],
                              [0x7FC00000, 0x7FC00000, 0x7FC00000, 0x7FC00000],
                              [0x7FC00000, 1.0, 1.0, 0.75],
                              [0.0, 2.0, 1.0, 1.5]]> : tensor<4x4xf32>
  %init_ai = tensor.empty() : tensor<4x4xi32>
  %init_aw = tensor.empty() : tensor<4x4xf32>
  %ai, %aw = moe.route %la experts = <compute = 4> k = 4 scoring = none
      strategy = adaptive<tau = 0.5> into(%init_ai, %init_aw) : tensor<4x4xf32> into tensor<4x4xi32>, tensor<4x4xf32>
  %ai_d = tensor.cast %ai : tensor<4x4xi32> to tensor<?x?xi32>
  %aw_d = tensor.cast %aw : tensor<4x4xf32> to tensor<?x?xf32>
  call @print(%ai_d, %aw_d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [4, 4]
  // CHECK-NEXT: [0,   3,   1,   -1],
  // CHECK-NEXT: [-1,   -1,   -1,   -1],
  // CHECK-NEXT: [1,   2,   3,   -1],
  // CHECK-NEXT: [1,   3,   -1,   -1]]
  // CHECK-LABEL: sizes = [4, 4]
  // CHECK-NEXT: [1,   0.875,   0.75,   0],
  // CHECK-NEXT: [0,   0,   0,   0],
  // CHECK-NEXT: [1,   1,   0.75,   0],
  // CHECK-NEXT: [2,   1.5,   0,   0]]

  // ---- threshold<tau = -0.5, k_min = 2>, K = 3: prefix with s >= -0.5, then
  //      n = max(2, prefix), capped at K.
  //   t0 [-1, 0, -0.25, -2]: order 1, 2, 0, 3; 0 and -0.25 pass, -1 fails
  //      -> prefix 2 -> ids [1, 2, -1], w [0, -0.25, 0]
  //   t1 [-3, -1, -2, -0.5]: order 3, 1, 2, 0; -0.5 passes (>=), -1 fails
  //      -> prefix 1, k_min extends to 2 -> ids [3, 1, -1], w [-0.5, -1, 0]
  //   t2 [1, 1, 1, 1]: all pass, prefix 4, capped at K -> ids [0, 1, 2], w [1, 1, 1]
  //   t3 [-5 x4]: prefix 0, k_min 2 -> ids [0, 1, -1], w [-5, -5, 0]
  %lt = arith.constant dense<[[-1.0, 0.0, -0.25, -2.0], [-3.0, -1.0, -2.0, -0.5],
                              [1.0, 1.0, 1.0, 1.0], [-5.0, -5.0, -5.0, -5.0]]> : tensor<4x4xf32>
  %init_ti = tensor.empty() : tensor<4x3xi32>
  %init_tw = tensor.empty() : tensor<4x3xf32>
  %ti, %tw = moe.route %lt experts = <compute = 4> k = 3 scoring = none
      strategy = threshold<tau = -0.5, k_min = 2> into(%init_ti, %init_tw)
      : tensor<4x4xf32> into tensor<4x3xi32>, tensor<4x3xf32>
  %ti_d = tensor.cast %ti : tensor<4x3xi32> to tensor<?x?xi32>
  %tw_d = tensor.cast %tw : tensor<4x3xf32> to tensor<?x?xf32>
  call @print(%ti_d, %tw_d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [4, 3]
  // CHECK-NEXT: [1,   2,   -1],
  // CHECK-NEXT: [3,   1,   -1],
  // CHECK-NEXT: [0,   1,   2],
  // CHECK-NEXT: [0,   1,   -1]]
  // CHECK-LABEL: sizes = [4, 3]
  // CHECK-NEXT: [0,   -0.25,   0],
  // CHECK-NEXT: [-0.5,   -1,   0],
  // CHECK-NEXT: [1,   1,   1],
  // CHECK-NEXT: [-5,   -5,   0]]

  // ---- dynamic_k, K = 2, normalize = selected, dynamic T.
  //   every token has scores [0.25, 1, 0.5, 0]: order 1, 2, 0, 3
  //   k_per_token [-3, 0, 1, 7] -> clamp to [0, 2] -> n = 0, 0, 1, 2
  //   t0, t1: all empty; empty set -> weights 0
  //   t2: ids [1, -1], w 1/1 = 1
  //   t3: ids [1, 2], w [1/1.5, 0.5/1.5] = [0.666667, 0.333333]
  %ld = arith.constant dense<[[0.25, 1.0, 0.5, 0.0], [0.25, 1.0, 0.5, 0.0],
                              [0.25, 1.0, 0.5, 0.0], [0.25, 1.0, 0.5, 0.0]]> : tensor<4x4xf32>
  %ldd = tensor.cast %ld : tensor<4x4xf32> to tensor<?x4xf32>
  %kpt = arith.constant dense<[-3, 0, 1, 7]> : tensor<4xi32>
  %kptd = tensor.cast %kpt : tensor<4xi32> to tensor<?xi32>
  %init_di_c0 = arith.constant 0 : index
  %init_di_d0 = tensor.dim %ldd, %init_di_c0 : tensor<?x4xf32>
  %init_di = tensor.empty(%init_di_d0) : tensor<?x2xi32>
  %init_dw_c0 = arith.constant 0 : index
  %init_dw_d0 = tensor.dim %ldd, %init_dw_c0 : tensor<?x4xf32>
  %init_dw = tensor.empty(%init_dw_d0) : tensor<?x2xf32>
  %di, %dw = moe.route %ldd k_per_token(%kptd : tensor<?xi32>) experts = <compute = 4>
      k = 2 scoring = none strategy = dynamic_k normalize = selected into(%init_di, %init_dw)
      : tensor<?x4xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  %di_d = tensor.cast %di : tensor<?x2xi32> to tensor<?x?xi32>
  %dw_d = tensor.cast %dw : tensor<?x2xf32> to tensor<?x?xf32>
  call @print(%di_d, %dw_d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [4, 2]
  // CHECK-NEXT: [-1,   -1],
  // CHECK-NEXT: [-1,   -1],
  // CHECK-NEXT: [1,   -1],
  // CHECK-NEXT: [1,   2]]
  // CHECK-LABEL: sizes = [4, 2]
  // CHECK-NEXT: [0,   0],
  // CHECK-NEXT: [0,   0],
  // CHECK-NEXT: [1,   0],
  // CHECK-NEXT: [0.666667,   0.333333]]

  // ---- expert_choice<capacity_factor = 1.5>, 3 experts, T = 4, K = 2,
  //      normalize = selected. C = min(4, ceil(1.5 * 4 / 3)) = 2.
  //   scores t0 [4, 3, 3], t1 [3, 5, 3], t2 [1, 1, 0], t3 [0, 0, 3]
  //   expert 0 column [4, 3, 1, 0] -> picks t0, t1
  //   expert 1 column [3, 5, 1, 0] -> picks t1, t0
  //   expert 2 column [3, 3, 0, 3] -> three-way tie at 3: lower t -> t0, t1
  //   t0: experts 0 (4), 1 (3), 2 (3); tie 1 vs 2 -> lower e; truncate to K
  //       -> ids [0, 1], w [4/7, 3/7] = [0.571429, 0.428571]
  //   t1: experts 1 (5), 0 (3), 2 (3) -> ids [1, 0], w [5/8, 3/8]
  //   t2, t3: picked by nobody -> 0 experts, ids -1, weights 0
  %le = arith.constant dense<[[4.0, 3.0, 3.0], [3.0, 5.0, 3.0],
                              [1.0, 1.0, 0.0], [0.0, 0.0, 3.0]]> : tensor<4x3xf32>
  %init_ei = tensor.empty() : tensor<4x2xi32>
  %init_ew = tensor.empty() : tensor<4x2xf32>
  %ei, %ew = moe.route %le experts = <compute = 3> k = 2 scoring = none
      strategy = expert_choice<capacity_factor = 1.5> normalize = selected into(%init_ei, %init_ew)
      : tensor<4x3xf32> into tensor<4x2xi32>, tensor<4x2xf32>
  %ei_d = tensor.cast %ei : tensor<4x2xi32> to tensor<?x?xi32>
  %ew_d = tensor.cast %ew : tensor<4x2xf32> to tensor<?x?xf32>
  call @print(%ei_d, %ew_d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [4, 2]
  // CHECK-NEXT: [0,   1],
  // CHECK-NEXT: [1,   0],
  // CHECK-NEXT: [-1,   -1],
  // CHECK-NEXT: [-1,   -1]]
  // CHECK-LABEL: sizes = [4, 2]
  // CHECK-NEXT: [0.571429,   0.428571],
  // CHECK-NEXT: [0.625,   0.375],
  // CHECK-NEXT: [0,   0],
  // CHECK-NEXT: [0,   0]]

  // ---- Ties, -0 vs +0 and NaN order, top_k K = 3, normalize = none.
  //   t0 [1, 2, 2, 1]: order 1, 2 (tie: lower index), 0, 3 -> ids [1, 2, 0]
  //   t1 [-0, +0, -1, -0]: -0 == +0, so 0, 1, 3 tie and keep index order
  //      -> ids [0, 1, 3], raw weights [-0, 0, -0] (the signs are kept)
  //   t2 [NaN, 1, NaN, 0]: NaN below everything, NaNs by index: 1, 3, 0, 2
  //      -> ids [1, 3, 0], w [1, 0, NaN]
  //   t3 [-inf, -1, +inf, -inf]: order 2, 1, 0, 3 -> ids [2, 1, 0], w [inf, -1, -inf]
  %lz = arith.constant dense<[[1.0, 2.0, 2.0, 1.0], [-0.0, 0.0, -1.0, -0.0],
                              [0x7FC00000, 1.0, 0x7FC00000, 0.0],
                              [0xFF800000, -1.0, 0x7F800000, 0xFF800000]]> : tensor<4x4xf32>
  %init_zi = tensor.empty() : tensor<4x3xi32>
  %init_zw = tensor.empty() : tensor<4x3xf32>
  %zi, %zw = moe.route %lz experts = <compute = 4> k = 3 scoring = none
      strategy = top_k into(%init_zi, %init_zw) : tensor<4x4xf32> into tensor<4x3xi32>, tensor<4x3xf32>
  %zi_d = tensor.cast %zi : tensor<4x3xi32> to tensor<?x?xi32>
  %zw_d = tensor.cast %zw : tensor<4x3xf32> to tensor<?x?xf32>
  call @print(%zi_d, %zw_d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [4, 3]
  // CHECK-NEXT: [1,   2,   0],
  // CHECK-NEXT: [0,   1,   3],
  // CHECK-NEXT: [1,   3,   0],
  // CHECK-NEXT: [2,   1,   0]]
  // CHECK-LABEL: sizes = [4, 3]
  // CHECK-NEXT: [2,   2,   1],
  // CHECK-NEXT: [-0,   0,   -0],
  // CHECK-NEXT: [1,   0,   {{-?}}nan],
  // CHECK-NEXT: [inf,   -1,   -inf]]
  return
}
