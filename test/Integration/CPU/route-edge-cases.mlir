// moe.route on edge values through the CPU pipeline (Semantics.md 2.2 and
// section 4; the choices of docs/Reference.md "Choices where the spec is
// silent" where the contract does not decide). scoring = none.
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
  // ---- top_p<p = 0.5> with a NaN score, K = 4: NaN sorts last; the running
  //      sum 0.25, 0.375, 0.375, NaN never reaches p -> n = K.
  //   t0 [NaN, 0.25, 0, 0.125] -> order 1, 3, 2, 0 -> ids [1, 3, 2, 0],
  //      w [0.25, 0.125, 0, NaN]
  %l1 = arith.constant dense<[[0x7FC00000, 0.25, 0.0, 0.125]]> : tensor<1x4xf32>
  %init_i1 = tensor.empty() : tensor<1x4xi32>
  %init_w1 = tensor.empty() : tensor<1x4xf32>
  %i1, %w1 = moe.route %l1 experts = <compute = 4> k = 4 scoring = none
      strategy = top_p<p = 0.5> into(%init_i1, %init_w1) : tensor<1x4xf32> into tensor<1x4xi32>, tensor<1x4xf32>
  %i1d = tensor.cast %i1 : tensor<1x4xi32> to tensor<?x?xi32>
  %w1d = tensor.cast %w1 : tensor<1x4xf32> to tensor<?x?xf32>
  call @print(%i1d, %w1d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [1, 4]
  // CHECK-NEXT: {{\[\[}}1,   3,   2,   0]]
  // CHECK-LABEL: sizes = [1, 4]
  // CHECK-NEXT: {{\[\[}}0.25,   0.125,   0,   {{-?}}nan]]

  // ---- threshold<tau = 0.5, k_min = 0> with NaN, K = 4:
  //   t0 [NaN, 1, 1, 1]: order 1, 2, 3, 0; NaN >= 0.5 is false -> n = 3
  //      -> ids [1, 2, 3, -1], w [1, 1, 1, 0]
  %l2 = arith.constant dense<[[0x7FC00000, 1.0, 1.0, 1.0]]> : tensor<1x4xf32>
  %init_i2 = tensor.empty() : tensor<1x4xi32>
  %init_w2 = tensor.empty() : tensor<1x4xf32>
  %i2, %w2 = moe.route %l2 experts = <compute = 4> k = 4 scoring = none
      strategy = threshold<tau = 0.5, k_min = 0> into(%init_i2, %init_w2)
      : tensor<1x4xf32> into tensor<1x4xi32>, tensor<1x4xf32>
  %i2d = tensor.cast %i2 : tensor<1x4xi32> to tensor<?x?xi32>
  %w2d = tensor.cast %w2 : tensor<1x4xf32> to tensor<?x?xf32>
  call @print(%i2d, %w2d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [1, 4]
  // CHECK-NEXT: {{\[\[}}1,   2,   3,   -1]]
  // CHECK-LABEL: sizes = [1, 4]
  // CHECK-NEXT: {{\[\[}}1,   1,   1,   0]]

  // ---- dynamic_k with extreme k_per_token [2147483647, -2147483648], K = 2:
  //      clamp to [0, 2] -> n = 2, 0. scores [0, 1, 2] -> order 2, 1, 0.
  //   t0 ids [2, 1], w [2, 1]; t1 all empty
  %l3 = arith.constant dense<[[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]> : tensor<2x3xf32>
  %k3 = arith.constant dense<[2147483647, -2147483648]> : tensor<2xi32>
  %init_i3 = tensor.empty() : tensor<2x2xi32>
  %init_w3 = tensor.empty() : tensor<2x2xf32>
  %i3, %w3 = moe.route %l3 k_per_token(%k3 : tensor<2xi32>) experts = <compute = 3>
      k = 2 scoring = none strategy = dynamic_k into(%init_i3, %init_w3)
      : tensor<2x3xf32> into tensor<2x2xi32>, tensor<2x2xf32>
  %i3d = tensor.cast %i3 : tensor<2x2xi32> to tensor<?x?xi32>
  %w3d = tensor.cast %w3 : tensor<2x2xf32> to tensor<?x?xf32>
  call @print(%i3d, %w3d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [2,   1],
  // CHECK-NEXT: [-1,   -1]]
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [2,   1],
  // CHECK-NEXT: [0,   0]]

  // ---- capacity priority = score with a NaN raw weight (NaN ranks last).
  //      2 compute experts, T = 2, K = 2, cf = 0.5: C = ceil(0.5*2*2/2) = 1.
  //   t0 [NaN, 1] -> order 1, 0 -> ids [1, 0], raw [1, NaN]
  //   t1 [2, 0]   -> ids [0, 1], raw [2, 0]
  //   expert 0: t0 j1 (NaN), t1 j0 (2) -> keeps t1
  //   expert 1: t0 j0 (1), t1 j1 (0)   -> keeps t0
  //   t0 [1, -1] w [1, 0]; t1 [0, -1] w [2, 0]
  %l4 = arith.constant dense<[[0x7FC00000, 1.0], [2.0, 0.0]]> : tensor<2x2xf32>
  %init_i4 = tensor.empty() : tensor<2x2xi32>
  %init_w4 = tensor.empty() : tensor<2x2xf32>
  %i4, %w4 = moe.route %l4 experts = <compute = 2> k = 2 scoring = none
      strategy = top_k capacity = <factor = 0.5, priority = score> into(%init_i4, %init_w4)
      : tensor<2x2xf32> into tensor<2x2xi32>, tensor<2x2xf32>
  %i4d = tensor.cast %i4 : tensor<2x2xi32> to tensor<?x?xi32>
  %w4d = tensor.cast %w4 : tensor<2x2xf32> to tensor<?x?xf32>
  call @print(%i4d, %w4d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [1,   -1],
  // CHECK-NEXT: [0,   -1]]
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [1,   0],
  // CHECK-NEXT: [2,   0]]

  // ---- capacity priority = score: -0 and +0 raw weights tie, so the lower
  //      t wins. 1 compute expert, K = 1, T = 4, cf = 0.5: C = ceil(0.5*4) = 2.
  //   t0 [-0], t1 [+0], t2 [-0], t3 [+0]: all tie -> keeps t0, t1
  //   (an order with +0 above -0 would keep t1, t3) -> ids [0, 0, -1, -1]
  %l5 = arith.constant dense<[[-0.0], [0.0], [-0.0], [0.0]]> : tensor<4x1xf32>
  %init_i5 = tensor.empty() : tensor<4x1xi32>
  %init_w5 = tensor.empty() : tensor<4x1xf32>
  %i5, %w5 = moe.route %l5 experts = <compute = 1> k = 1 scoring = none
      strategy = top_k capacity = <factor = 0.5, priority = score> into(%init_i5, %init_w5)
      : tensor<4x1xf32> into tensor<4x1xi32>, tensor<4x1xf32>
  %i5u = tensor.cast %i5 : tensor<4x1xi32> to tensor<*xi32>
  call @printMemrefI32(%i5u) : (tensor<*xi32>) -> ()
  // CHECK-LABEL: sizes = [4, 1]
  // CHECK-NEXT: {{\[\[}}0],
  // CHECK-NEXT: [0],
  // CHECK-NEXT: [-1],
  // CHECK-NEXT: [-1]]

  // ---- normalize = non_null, scale = 2, experts <compute = 1, null = 1,
  //      copy = 1>, K = 2.
  //   t0 [1, 3, 2]: ids [1 (null), 2 (copy)], raw [3, 2]: the copy expert is
  //      not in Z -> copy gets 2/2 * 2 = 2, null 0 -> w [0, 2]
  //   t1 [0, 5, 4]: ids [1 (null), 2 (copy)], raw [5, 4] -> copy 4/4 * 2 -> w [0, 2]
  //   t2 [1, 5, -1]: ids [1 (null), 0], raw [5, 1] -> w [0, 1/1 * 2] = [0, 2]
  //   t3 [0, 5, 0]: ids [1 (null), 0], raw [5, 0] -> V \ Z sums to 0
  //      -> zero denominator -> w [0, 0]
  %l6 = arith.constant dense<[[1.0, 3.0, 2.0], [0.0, 5.0, 4.0], [1.0, 5.0, -1.0],
                              [0.0, 5.0, 0.0]]> : tensor<4x3xf32>
  %init_i6 = tensor.empty() : tensor<4x2xi32>
  %init_w6 = tensor.empty() : tensor<4x2xf32>
  %i6, %w6 = moe.route %l6 experts = <compute = 1, null = 1, copy = 1> k = 2
      scoring = none strategy = top_k normalize = non_null scale = 2.0 into(%init_i6, %init_w6)
      : tensor<4x3xf32> into tensor<4x2xi32>, tensor<4x2xf32>
  %i6d = tensor.cast %i6 : tensor<4x2xi32> to tensor<?x?xi32>
  %w6d = tensor.cast %w6 : tensor<4x2xf32> to tensor<?x?xf32>
  call @print(%i6d, %w6d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [4, 2]
  // CHECK-NEXT: [1,   2],
  // CHECK-NEXT: [1,   2],
  // CHECK-NEXT: [1,   0],
  // CHECK-NEXT: [1,   0]]
  // CHECK-LABEL: sizes = [4, 2]
  // CHECK-NEXT: [0,   2],
  // CHECK-NEXT: [0,   2],
  // CHECK-NEXT: [0,   2],
  // CHECK-NEXT: [0,   0]]

  // ---- adaptive and threshold test the scores s, in the order of the keys
  //      u = s + bias (Reference.md choice 4). bias [1, 0], K = 2.
  //   s [0.25, 0.75] -> u [1.25, 0.75] -> order 0, 1
  //   adaptive<tau = 0.1>: gaps s[o_1] - s[o_i] = 0, 0.25 - 0.75 = -0.5
  //      (<= 0.1, passes) -> n = 2 -> ids [0, 1], w [0.25, 0.75]
  //   threshold<tau = 0.5, k_min = 0>: s[o_1] = 0.25 < 0.5 fails first
  //      -> prefix 0 -> n = 0 -> ids [-1, -1], w [0, 0]
  %l7 = arith.constant dense<[[0.25, 0.75]]> : tensor<1x2xf32>
  %b7 = arith.constant dense<[1.0, 0.0]> : tensor<2xf32>
  %init_i7 = tensor.empty() : tensor<1x2xi32>
  %init_w7 = tensor.empty() : tensor<1x2xf32>
  %i7, %w7 = moe.route %l7 bias(%b7 : tensor<2xf32>) experts = <compute = 2> k = 2
      scoring = none strategy = adaptive<tau = 0.1> into(%init_i7, %init_w7)
      : tensor<1x2xf32> into tensor<1x2xi32>, tensor<1x2xf32>
  %i7d = tensor.cast %i7 : tensor<1x2xi32> to tensor<?x?xi32>
  %w7d = tensor.cast %w7 : tensor<1x2xf32> to tensor<?x?xf32>
  call @print(%i7d, %w7d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [1, 2]
  // CHECK-NEXT: {{\[\[}}0,   1]]
  // CHECK-LABEL: sizes = [1, 2]
  // CHECK-NEXT: {{\[\[}}0.25,   0.75]]
  %init_i8 = tensor.empty() : tensor<1x2xi32>
  %init_w8 = tensor.empty() : tensor<1x2xf32>
  %i8, %w8 = moe.route %l7 bias(%b7 : tensor<2xf32>) experts = <compute = 2> k = 2
      scoring = none strategy = threshold<tau = 0.5, k_min = 0> into(%init_i8, %init_w8)
      : tensor<1x2xf32> into tensor<1x2xi32>, tensor<1x2xf32>
  %i8d = tensor.cast %i8 : tensor<1x2xi32> to tensor<?x?xi32>
  %w8d = tensor.cast %w8 : tensor<1x2xf32> to tensor<?x?xf32>
  call @print(%i8d, %w8d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [1, 2]
  // CHECK-NEXT: {{\[\[}}-1,   -1]]
  // CHECK-LABEL: sizes = [1, 2]
  // CHECK-NEXT: {{\[\[}}0,   0]]

  // ---- softmax with +inf: exp(l - max) has inf - inf = NaN, so the whole row
  //      is NaN (Reference.md choice 1); a single -inf next to a finite max
  //      scores 0 (checked in route-softmax-sigmoid.mlir).
  //   t0 [+inf, 0, 0] -> all NaN -> NaN keys by index -> ids [0, 1], w NaN
  %l9 = arith.constant dense<[[0x7F800000, 0.0, 0.0]]> : tensor<1x3xf32>
  %init_i9 = tensor.empty() : tensor<1x2xi32>
  %init_w9 = tensor.empty() : tensor<1x2xf32>
  %i9, %w9 = moe.route %l9 experts = <compute = 3> k = 2 scoring = softmax
      strategy = top_k into(%init_i9, %init_w9) : tensor<1x3xf32> into tensor<1x2xi32>, tensor<1x2xf32>
  %i9d = tensor.cast %i9 : tensor<1x2xi32> to tensor<?x?xi32>
  %w9d = tensor.cast %w9 : tensor<1x2xf32> to tensor<?x?xf32>
  call @print(%i9d, %w9d) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [1, 2]
  // CHECK-NEXT: {{\[\[}}0,   1]]
  // CHECK-LABEL: sizes = [1, 2]
  // CHECK-NEXT: {{\[\[}}{{-?}}nan,   {{-?}}nan]]
  // ---- expert_choice with NaN scores (NaN ranks last), 2 experts, T = 3,
  //      K = 2, cf = 0.5: C = min(3, ceil(0.5 * 3 / 2)) = ceil(0.75) = 1.
  //   scores t0 [NaN, 1], t1 [0, NaN], t2 [-1, 0]
  //   expert 0 column [NaN, 0, -1] -> picks t1; expert 1 [1, NaN, 0] -> t0
  //   t0 [1, -1] w [1, 0]; t1 [0, -1] w [0, 0]; t2 picked by nobody
  %la = arith.constant dense<[[0x7FC00000, 1.0], [0.0, 0x7FC00000], [-1.0, 0.0]]> : tensor<3x2xf32>
  %init_ia = tensor.empty() : tensor<3x2xi32>
  %init_wa = tensor.empty() : tensor<3x2xf32>
  %ia, %wa = moe.route %la experts = <compute = 2> k = 2 scoring = none
      strategy = expert_choice<capacity_factor = 0.5> into(%init_ia, %init_wa)
      : tensor<3x2xf32> into tensor<3x2xi32>, tensor<3x2xf32>
  %iad = tensor.cast %ia : tensor<3x2xi32> to tensor<?x?xi32>
  %wad = tensor.cast %wa : tensor<3x2xf32> to tensor<?x?xf32>
  call @print(%iad, %wad) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [3, 2]
  // CHECK-NEXT: [1,   -1],
  // CHECK-NEXT: [0,   -1],
  // CHECK-NEXT: [-1,   -1]]
  // CHECK-LABEL: sizes = [3, 2]
  // CHECK-NEXT: [1,   0],
  // CHECK-NEXT: [0,   0],
  // CHECK-NEXT: [0,   0]]

  // ---- The same with cf = +inf (project decision 2): C = T = 3, every
  //      expert picks every token; each token orders its experts, NaN last.
  //   t0 [1 (e1), NaN (e0)] -> [1, 0] w [1, NaN]
  //   t1 [0 (e0), NaN (e1)] -> [0, 1] w [0, NaN]
  //   t2 e1 (0) before e0 (-1) -> [1, 0] w [0, -1]
  %init_ib = tensor.empty() : tensor<3x2xi32>
  %init_wb = tensor.empty() : tensor<3x2xf32>
  %ib, %wb = moe.route %la experts = <compute = 2> k = 2 scoring = none
      strategy = expert_choice<capacity_factor = 0x7FF0000000000000> into(%init_ib, %init_wb)
      : tensor<3x2xf32> into tensor<3x2xi32>, tensor<3x2xf32>
  %ibd = tensor.cast %ib : tensor<3x2xi32> to tensor<?x?xi32>
  %wbd = tensor.cast %wb : tensor<3x2xf32> to tensor<?x?xf32>
  call @print(%ibd, %wbd) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [3, 2]
  // CHECK-NEXT: [1,   0],
  // CHECK-NEXT: [0,   1],
  // CHECK-NEXT: [1,   0]]
  // CHECK-LABEL: sizes = [3, 2]
  // CHECK-NEXT: [1,   {{-?}}nan],
  // CHECK-NEXT: [0,   {{-?}}nan],
  // CHECK-NEXT: [0,   -1]]

  // ---- capacity with cf = +inf: no limit. 1 compute expert, K = 1, T = 3,
  //      every token keeps its slot -> ids [0, 0, 0]
  %lc = arith.constant dense<[[1.0], [2.0], [3.0]]> : tensor<3x1xf32>
  %init_ic = tensor.empty() : tensor<3x1xi32>
  %init_wc = tensor.empty() : tensor<3x1xf32>
  %ic, %wc = moe.route %lc experts = <compute = 1> k = 1 scoring = none
      strategy = top_k capacity = <factor = 0x7FF0000000000000, priority = score> into(%init_ic, %init_wc)
      : tensor<3x1xf32> into tensor<3x1xi32>, tensor<3x1xf32>
  %icu = tensor.cast %ic : tensor<3x1xi32> to tensor<*xi32>
  call @printMemrefI32(%icu) : (tensor<*xi32>) -> ()
  // CHECK-LABEL: sizes = [3, 1]
  // CHECK-NEXT: {{\[\[}}0],
  // CHECK-NEXT: [0],
  // CHECK-NEXT: [0]]

  // ---- groups<n = 3, top = 2>, 6 experts {0,1} {2,3} {4,5}, K = 3
  //      (<= top * E / n = 4).
  //   t0 [1, 1, 5, -10, 2, 2]: g0 = 2, g1 = -5, g2 = 4 -> keep g2, g0
  //      -> selectable 0, 1, 4, 5 -> order 4, 5, 0, 1 -> ids [4, 5, 0],
  //      w [2, 2, 1] (expert 2, the best single score, is excluded)
  %lg = arith.constant dense<[[1.0, 1.0, 5.0, -10.0, 2.0, 2.0]]> : tensor<1x6xf32>
  %init_ig = tensor.empty() : tensor<1x3xi32>
  %init_wg = tensor.empty() : tensor<1x3xf32>
  %ig, %wg = moe.route %lg experts = <compute = 6> k = 3 scoring = none
      strategy = top_k groups = <n = 3, top = 2> into(%init_ig, %init_wg)
      : tensor<1x6xf32> into tensor<1x3xi32>, tensor<1x3xf32>
  %igd = tensor.cast %ig : tensor<1x3xi32> to tensor<?x?xi32>
  %wgd = tensor.cast %wg : tensor<1x3xf32> to tensor<?x?xf32>
  call @print(%igd, %wgd) : (tensor<?x?xi32>, tensor<?x?xf32>) -> ()
  // CHECK-LABEL: sizes = [1, 3]
  // CHECK-NEXT: {{\[\[}}4,   5,   0]]
  // CHECK-LABEL: sizes = [1, 3]
  // CHECK-NEXT: {{\[\[}}2,   2,   1]]
  return
}
