// RUN: moe-opt %s -canonicalize --split-input-file | FileCheck %s

// top_p with p = 1 gives K slots (the contract's special case): top_k.
// CHECK-LABEL: func.func @top_p_one
// CHECK: moe.route %{{.*}} experts = <compute = 8> k = 2 strategy = top_k into(
func.func @top_p_one(%l: tensor<?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %init_i_c0 = arith.constant 0 : index
  %init_i_d0 = tensor.dim %l, %init_i_c0 : tensor<?x8xf32>
  %init_i = tensor.empty(%init_i_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %i, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_p<p = 1.0> into(%init_i, %init_w)
      : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %i, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// -----

// The largest p below 1 is not top_k: a running sum may stop earlier.
// CHECK-LABEL: func.func @top_p_below_one
// CHECK: strategy = top_p<p = 0.99999994>
func.func @top_p_below_one(%l: tensor<?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %init_i_c0 = arith.constant 0 : index
  %init_i_d0 = tensor.dim %l, %init_i_c0 : tensor<?x8xf32>
  %init_i = tensor.empty(%init_i_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %i, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_p<p = 0x3F7FFFFF> into(%init_i, %init_w)
      : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %i, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// -----

// top_p with K = 1 always keeps one slot.
// CHECK-LABEL: func.func @top_p_single_slot
// CHECK: k = 1 strategy = top_k normalize = selected into(
func.func @top_p_single_slot(%l: tensor<?x8xf32>) -> (tensor<?x1xi32>, tensor<?x1xf32>) {
  %init_i_c0 = arith.constant 0 : index
  %init_i_d0 = tensor.dim %l, %init_i_c0 : tensor<?x8xf32>
  %init_i = tensor.empty(%init_i_d0) : tensor<?x1xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x1xf32>
  %i, %w = moe.route %l experts = <compute = 8> k = 1 strategy = top_p<p = 0.3>
      normalize = selected into(%init_i, %init_w) : tensor<?x8xf32> into tensor<?x1xi32>, tensor<?x1xf32>
  return %i, %w : tensor<?x1xi32>, tensor<?x1xf32>
}

// -----

// threshold with k_min = K keeps K slots; with k_min < K it does not fold.
// CHECK-LABEL: func.func @threshold
// CHECK: k = 3 scoring = none strategy = top_k into(
// CHECK: k = 3 scoring = none strategy = threshold<tau = 5.000000e-01, k_min = 2> into(
func.func @threshold(%l: tensor<?x8xf32>) -> (tensor<?x3xi32>, tensor<?x3xi32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x3xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x3xf32>
  %0:2 = moe.route %l experts = <compute = 8> k = 3 scoring = none
      strategy = threshold<tau = 0.5, k_min = 3> into(%init_0_ids, %init_0_w)
      : tensor<?x8xf32> into tensor<?x3xi32>, tensor<?x3xf32>
  %init_1_c0 = arith.constant 0 : index
  %init_1_t = tensor.dim %l, %init_1_c0 : tensor<?x8xf32>
  %init_1_ids = tensor.empty(%init_1_t) : tensor<?x3xi32>
  %init_1_w = tensor.empty(%init_1_t) : tensor<?x3xf32>
  %1:2 = moe.route %l experts = <compute = 8> k = 3 scoring = none
      strategy = threshold<tau = 0.5, k_min = 2> into(%init_1_ids, %init_1_w)
      : tensor<?x8xf32> into tensor<?x3xi32>, tensor<?x3xf32>
  return %0#0, %1#0 : tensor<?x3xi32>, tensor<?x3xi32>
}

// -----

// dynamic_k with a constant k_per_token >= K is top_k; the operand is gone.
// CHECK-LABEL: func.func @constant_k_per_token
// CHECK-NOT: k_per_token
// CHECK: moe.route %{{.*}} experts = <compute = 8> k = 2 strategy = top_k into(
func.func @constant_k_per_token(%l: tensor<4x8xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>) {
  %k = arith.constant dense<[2, 7, 2, 100]> : tensor<4xi32>
  %init_i = tensor.empty() : tensor<4x2xi32>
  %init_w = tensor.empty() : tensor<4x2xf32>
  %i, %w = moe.route %l k_per_token(%k : tensor<4xi32>) experts = <compute = 8>
      k = 2 strategy = dynamic_k into(%init_i, %init_w) : tensor<4x8xf32> into tensor<4x2xi32>, tensor<4x2xf32>
  return %i, %w : tensor<4x2xi32>, tensor<4x2xf32>
}

// -----

// One token asking for fewer than K slots keeps dynamic_k.
// CHECK-LABEL: func.func @constant_k_per_token_below
// CHECK: k_per_token(%{{.*}} : tensor<4xi32>) {{.*}} strategy = dynamic_k
func.func @constant_k_per_token_below(%l: tensor<4x8xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>) {
  %k = arith.constant dense<[2, 7, 1, 100]> : tensor<4xi32>
  %init_i = tensor.empty() : tensor<4x2xi32>
  %init_w = tensor.empty() : tensor<4x2xf32>
  %i, %w = moe.route %l k_per_token(%k : tensor<4xi32>) experts = <compute = 8>
      k = 2 strategy = dynamic_k into(%init_i, %init_w) : tensor<4x8xf32> into tensor<4x2xi32>, tensor<4x2xf32>
  return %i, %w : tensor<4x2xi32>, tensor<4x2xf32>
}

// -----

// C = ceil(1.0 * 16 * 2 / 2) = 16 >= T = 16: the capacity cannot bind.
// CHECK-LABEL: func.func @capacity_non_binding
// CHECK-NOT: capacity
func.func @capacity_non_binding(%l: tensor<16x2xf32>) -> (tensor<16x2xi32>, tensor<16x2xf32>) {
  %init_i = tensor.empty() : tensor<16x2xi32>
  %init_w = tensor.empty() : tensor<16x2xf32>
  %i, %w = moe.route %l experts = <compute = 2> k = 2 strategy = top_k
      capacity = <factor = 1.0, priority = score> into(%init_i, %init_w)
      : tensor<16x2xf32> into tensor<16x2xi32>, tensor<16x2xf32>
  return %i, %w : tensor<16x2xi32>, tensor<16x2xf32>
}

// -----

// C = ceil(1.0 * 16 * 2 / 8) = 4 < T = 16 binds; with a dynamic T nothing is
// known: both stay.
// CHECK-LABEL: func.func @capacity_binding
// CHECK: capacity = <factor = 1.000000e+00, priority = score>
// CHECK: capacity = <factor = 4.000000e+00, priority = position>
func.func @capacity_binding(%l: tensor<16x8xf32>, %d: tensor<?x8xf32>)
    -> (tensor<16x2xi32>, tensor<?x2xi32>) {
  %init_0_ids = tensor.empty() : tensor<16x2xi32>
  %init_0_w = tensor.empty() : tensor<16x2xf32>
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = top_k
      capacity = <factor = 1.0, priority = score> into(%init_0_ids, %init_0_w)
      : tensor<16x8xf32> into tensor<16x2xi32>, tensor<16x2xf32>
  %init_1_c0 = arith.constant 0 : index
  %init_1_t = tensor.dim %d, %init_1_c0 : tensor<?x8xf32>
  %init_1_ids = tensor.empty(%init_1_t) : tensor<?x2xi32>
  %init_1_w = tensor.empty(%init_1_t) : tensor<?x2xf32>
  %1:2 = moe.route %d experts = <compute = 8> k = 2 strategy = top_k
      capacity = <factor = 4.0, priority = position> into(%init_1_ids, %init_1_w)
      : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %0#0, %1#0 : tensor<16x2xi32>, tensor<?x2xi32>
}

// -----

// Keeping every group excludes nothing.
// CHECK-LABEL: func.func @groups
// CHECK: moe.route %{{.*}} experts = <compute = 8> k = 2 strategy = top_k into(
// CHECK: groups = <n = 4, top = 3>
func.func @groups(%l: tensor<?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xi32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = top_k
      groups = <n = 4, top = 4> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  %init_1_c0 = arith.constant 0 : index
  %init_1_t = tensor.dim %l, %init_1_c0 : tensor<?x8xf32>
  %init_1_ids = tensor.empty(%init_1_t) : tensor<?x2xi32>
  %init_1_w = tensor.empty(%init_1_t) : tensor<?x2xf32>
  %1:2 = moe.route %l experts = <compute = 8> k = 2 strategy = top_k
      groups = <n = 4, top = 3> into(%init_1_ids, %init_1_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %0#0, %1#0 : tensor<?x2xi32>, tensor<?x2xi32>
}

// -----

// non_null without null experts is selected (copy experts are not null).
// CHECK-LABEL: func.func @non_null
// CHECK: experts = <compute = 8, copy = 2> k = 2 strategy = top_k normalize = selected into(
// CHECK: experts = <compute = 8, null = 2> k = 2 strategy = top_k normalize = non_null into(
func.func @non_null(%l: tensor<?x10xf32>) -> (tensor<?x2xf32>, tensor<?x2xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x10xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  %0:2 = moe.route %l experts = <compute = 8, copy = 2> k = 2 strategy = top_k
      normalize = non_null into(%init_0_ids, %init_0_w) : tensor<?x10xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  %init_1_c0 = arith.constant 0 : index
  %init_1_t = tensor.dim %l, %init_1_c0 : tensor<?x10xf32>
  %init_1_ids = tensor.empty(%init_1_t) : tensor<?x2xi32>
  %init_1_w = tensor.empty(%init_1_t) : tensor<?x2xf32>
  %1:2 = moe.route %l experts = <compute = 8, null = 2> k = 2 strategy = top_k
      normalize = non_null into(%init_1_ids, %init_1_w) : tensor<?x10xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %0#1, %1#1 : tensor<?x2xf32>, tensor<?x2xf32>
}

// -----

// moe.layer gets the same rewrites.
// CHECK-LABEL: func.func @layer
// CHECK: moe.layer {{.*}} experts = <compute = 4> k = 2 strategy = top_k normalize = selected activation = relu
func.func @layer(%x: tensor<8x16xf32>, %wr: tensor<16x4xf32>, %wu: tensor<4x16x8xf32>,
                 %wd: tensor<4x8x16xf32>) -> tensor<8x16xf32> {
  %y = moe.layer %x router(%wr : tensor<16x4xf32>) up(%wu : tensor<4x16x8xf32>)
      down(%wd : tensor<4x8x16xf32>) experts = <compute = 4> k = 2
      strategy = top_p<p = 1.0> normalize = non_null
      capacity = <factor = 2.0, priority = position> activation = relu
      : tensor<8x16xf32> -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}

// -----

// Back-to-back layers of a model whose activations are [B, S, H]: the
// reshapes between them fold (collapse(expand(y)) is y), so the second layer
// and its decomposed parts read the first layer's [T, H] result directly.
// The parts themselves carry no reshapes: every MoE op is rank 2 in tokens.
// CHECK-LABEL: func.func @back_to_back
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<2x8x16xf32>
// CHECK:      %[[XT:.*]] = tensor.collapse_shape %[[X]] {{\[\[}}0, 1], [2]]
// CHECK-NEXT: %[[Y:.*]] = moe.layer %[[XT]]
// CHECK-NEXT: %[[Z:.*]] = moe.layer %[[Y]]
// CHECK-NEXT: %[[OUT:.*]] = tensor.expand_shape %[[Z]] {{\[\[}}0, 1], [2]]
// CHECK-NEXT: return %[[OUT]]
func.func @back_to_back(%x: tensor<2x8x16xf32>, %wr: tensor<16x4xf32>,
                        %wu: tensor<4x16x8xf32>, %wd: tensor<4x8x16xf32>)
    -> tensor<2x8x16xf32> {
  %xt = tensor.collapse_shape %x [[0, 1], [2]]
      : tensor<2x8x16xf32> into tensor<16x16xf32>
  %y = moe.layer %xt router(%wr : tensor<16x4xf32>) up(%wu : tensor<4x16x8xf32>)
      down(%wd : tensor<4x8x16xf32>) experts = <compute = 4> k = 2
      strategy = top_k activation = relu : tensor<16x16xf32> -> tensor<16x16xf32>
  %y3 = tensor.expand_shape %y [[0, 1], [2]] output_shape [2, 8, 16]
      : tensor<16x16xf32> into tensor<2x8x16xf32>
  %yt = tensor.collapse_shape %y3 [[0, 1], [2]]
      : tensor<2x8x16xf32> into tensor<16x16xf32>
  %z = moe.layer %yt router(%wr : tensor<16x4xf32>) up(%wu : tensor<4x16x8xf32>)
      down(%wd : tensor<4x8x16xf32>) experts = <compute = 4> k = 2
      strategy = top_k activation = relu : tensor<16x16xf32> -> tensor<16x16xf32>
  %z3 = tensor.expand_shape %z [[0, 1], [2]] output_shape [2, 8, 16]
      : tensor<16x16xf32> into tensor<2x8x16xf32>
  return %z3 : tensor<2x8x16xf32>
}
