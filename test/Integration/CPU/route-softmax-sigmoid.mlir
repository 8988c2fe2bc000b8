// moe.route scoring functions through the CPU pipeline (Semantics.md 2.2
// step 1): softmax = exp(l - max(l)) / sum over all S entries, a NaN anywhere
// poisons the whole softmax row; sigmoid is elementwise.
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
  // ---- softmax, top_k K = 2 over 4 compute experts, normalize = none
  //      (ln 3 = 1.0986123, exp(-ln 3) = 1/3).
  //   t0 [ln3, 0, ln3, 0]: exp(l - ln3) = [1, 1/3, 1, 1/3], sum 8/3
  //      -> s = [0.375, 0.125, 0.375, 0.125] -> ids [0, 2] (tie), w [0.375, 0.375]
  //   t1 [0, ln3, -inf, 0]: exp(l - ln3) = [1/3, 1, 0, 1/3], sum 5/3
  //      -> s = [0.2, 0.6, 0, 0.2] -> ids [1, 0] (0 ties 3: lower index),
  //         w [0.6, 0.2]
  //   t2 [5, 5, 5, 5]: s = 0.25 each -> ids [0, 1], w [0.25, 0.25]
  //   t3 [1000, 0, 1000, -1000]: max subtracted first, so no overflow:
  //      exp = [1, 0, 1, 0] -> s = [0.5, 0, 0.5, 0] -> ids [0, 2], w [0.5, 0.5]
  //   t4 [1, NaN, 0, 2]: the NaN makes every score of the row NaN; NaN keys
  //      sort by index -> ids [0, 1], w [NaN, NaN]
  %l = arith.constant dense<[[1.0986123, 0.0, 1.0986123, 0.0],
                             [0.0, 1.0986123, 0xFF800000, 0.0],
                             [5.0, 5.0, 5.0, 5.0],
                             [1000.0, 0.0, 1000.0, -1000.0],
                             [1.0, 0x7FC00000, 0.0, 2.0]]> : tensor<5x4xf32>
  %init_si = tensor.empty() : tensor<5x2xi32>
  %init_sw = tensor.empty() : tensor<5x2xf32>
  %si, %sw = moe.route %l experts = <compute = 4> k = 2 scoring = softmax
      strategy = top_k into(%init_si, %init_sw) : tensor<5x4xf32> into tensor<5x2xi32>, tensor<5x2xf32>
  %si_d = tensor.cast %si : tensor<5x2xi32> to tensor<?x?xi32>
  %sw_d = tensor.cast %sw : tensor<5x2xf32> to tensor<?x?xf32>
  call @print(%si_d, %sw_d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [5, 2]
  // CHECK-NEXT: [0,   2],
  // CHECK-NEXT: [1,   0],
  // CHECK-NEXT: [0,   1],
  // CHECK-NEXT: [0,   2],
  // CHECK-NEXT: [0,   1]]
  // CHECK-LABEL: sizes = [5, 2]
  // CHECK-NEXT: [0.375,   0.375],
  // CHECK-NEXT: [0.6,   0.2],
  // CHECK-NEXT: [0.25,   0.25],
  // CHECK-NEXT: [0.5,   0.5],
  // CHECK-NEXT: [{{-?}}nan,   {{-?}}nan]]

  // ---- softmax + adaptive<tau = 0.1>, K = 2, 3 compute experts.
  //   t0 [ln3, 0, ln3]: exp = [1, 1/3, 1], sum 7/3 -> s = [3/7, 1/7, 3/7];
  //      order 0, 2, 1; gaps 0, 0, 2/7 > 0.1 -> n = 2 -> ids [0, 2],
  //      w [3/7, 3/7] = [0.428571, 0.428571]
  //   t1 [0, NaN, 0]: the whole row is NaN, s[o_1] is NaN -> n = 0
  //      -> ids [-1, -1], w [0, 0]
  %la = arith.constant dense<[[1.0986123, 0.0, 1.0986123],
                              [0.0, 0x7FC00000, 0.0]]> : tensor<2x3xf32>
  %init_ai = tensor.empty() : tensor<2x2xi32>
  %init_aw = tensor.empty() : tensor<2x2xf32>
  %ai, %aw = moe.route %la experts = <compute = 3> k = 2 scoring = softmax
      strategy = adaptive<tau = 0.1> into(%init_ai, %init_aw) : tensor<2x3xf32> into tensor<2x2xi32>, tensor<2x2xf32>
  %ai_d = tensor.cast %ai : tensor<2x2xi32> to tensor<?x?xi32>
  %aw_d = tensor.cast %aw : tensor<2x2xf32> to tensor<?x?xf32>
  call @print(%ai_d, %aw_d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [0,   2],
  // CHECK-NEXT: [-1,   -1]]
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [0.428571,   0.428571],
  // CHECK-NEXT: [0,   0]]

  // ---- sigmoid, K = 2, 3 compute experts, dynamic T.
  //   t0 [0, -inf, +inf]: sigmoid = [0.5, 0, 1] -> ids [2, 0], w [1, 0.5]
  //   t1 [0, 0, NaN]: elementwise, only entry 2 is NaN: s = [0.5, 0.5, NaN]
  //      -> ids [0, 1], w [0.5, 0.5]
  //   t2 [ln3, -ln3, 0]: 1/(1 + 1/3) = 0.75, 1/(1 + 3) = 0.25, 0.5
  //      -> ids [0, 2], w [0.75, 0.5]
  %lg = arith.constant dense<[[0.0, 0xFF800000, 0x7F800000],
                              [0.0, 0.0, 0x7FC00000],
                              [1.0986123, -1.0986123, 0.0]]> : tensor<3x3xf32>
  %lgd = tensor.cast %lg : tensor<3x3xf32> to tensor<?x3xf32>
  %init_gi_c0 = arith.constant 0 : index
  %init_gi_d0 = tensor.dim %lgd, %init_gi_c0 : tensor<?x3xf32>
  %init_gi = tensor.empty(%init_gi_d0) : tensor<?x2xi32>
  %init_gw_c0 = arith.constant 0 : index
  %init_gw_d0 = tensor.dim %lgd, %init_gw_c0 : tensor<?x3xf32>
  %init_gw = tensor.empty(%init_gw_d0) : tensor<?x2xf32>
  %gi, %gw = moe.route %lgd experts = <compute = 3> k = 2 scoring = sigmoid
      strategy = top_k into(%init_gi, %init_gw) : tensor<?x3xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  %gi_d = tensor.cast %gi : tensor<?x2xi32> to tensor<?x?xi32>
  %gw_d = tensor.cast %gw : tensor<?x2xf32> to tensor<?x?xf32>
  call @print(%gi_d, %gw_d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [3, 2]
  // CHECK-NEXT: [2,   0],
  // CHECK-NEXT: [0,   1],
  // CHECK-NEXT: [0,   2]]
  // CHECK-LABEL: sizes = [3, 2]
  // CHECK-NEXT: [1,   0.5],
  // CHECK-NEXT: [0.5,   0.5],
  // CHECK-NEXT: [0.75,   0.5]]

  // ---- sigmoid + normalize = selected, scale = 3, K = 2.
  //   t0 [0, ln3, -inf]: s = [0.5, 0.75, 0] -> ids [1, 0], raw [0.75, 0.5]
  //      -> / 1.25 = [0.6, 0.4] -> * 3 = [1.8, 1.2]
  %ln = arith.constant dense<[[0.0, 1.0986123, 0xFF800000]]> : tensor<1x3xf32>
  %init_ni = tensor.empty() : tensor<1x2xi32>
  %init_nw = tensor.empty() : tensor<1x2xf32>
  %ni, %nw = moe.route %ln experts = <compute = 3> k = 2 scoring = sigmoid
      strategy = top_k normalize = selected scale = 3.0 into(%init_ni, %init_nw)
      : tensor<1x3xf32> into tensor<1x2xi32>, tensor<1x2xf32>
  %ni_d = tensor.cast %ni : tensor<1x2xi32> to tensor<?x?xi32>
  %nw_d = tensor.cast %nw : tensor<1x2xf32> to tensor<?x?xf32>
  call @print(%ni_d, %nw_d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [1, 2]
  // CHECK-NEXT: {{\[\[}}1,   0]]
  // CHECK-LABEL: sizes = [1, 2]
  // CHECK-NEXT: {{\[\[}}1.8,   1.2]]
  return
}
