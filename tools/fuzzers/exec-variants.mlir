// The functions moe-exec-fuzzer calls: a fixed set of routing and layer
// configurations, compiled ahead of time by build-exec-variants.py (the CPU
// pipeline, LLVM IR, clang -fsanitize=address,fuzzer-no-link), so that every
// load and store of the generated code is checked by AddressSanitizer and
// its branches guide the fuzzer. The fuzzer picks the variant, T and the
// values (NaN/Inf, ids and k_per_token out of range, garbage offsets).
// Experts: 6 compute, 2 null, 1 copy, 1 constant (S = 10) unless noted.

// Per-token strategies, scoring, normalisation, selection bias.
func.func @route_top_k(%l: tensor<?x10xf32>) -> (tensor<?x3xi32>, tensor<?x3xf32>) {
  %init_i_c0 = arith.constant 0 : index
  %init_i_d0 = tensor.dim %l, %init_i_c0 : tensor<?x10xf32>
  %init_i = tensor.empty(%init_i_d0) : tensor<?x3xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x10xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x3xf32>
  %i, %w = moe.route %l experts = <compute = 6, null = 2, copy = 1, const = 1> k = 3
      strategy = top_k normalize = non_null into(%init_i, %init_w) : tensor<?x10xf32> into tensor<?x3xi32>, tensor<?x3xf32>
  return %i, %w : tensor<?x3xi32>, tensor<?x3xf32>
}
func.func @route_top_p(%l: tensor<?x10xf32>) -> (tensor<?x4xi32>, tensor<?x4xf32>) {
  %init_i_c0 = arith.constant 0 : index
  %init_i_d0 = tensor.dim %l, %init_i_c0 : tensor<?x10xf32>
  %init_i = tensor.empty(%init_i_d0) : tensor<?x4xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x10xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x4xf32>
  %i, %w = moe.route %l experts = <compute = 6, null = 2, copy = 1, const = 1> k = 4
      strategy = top_p<p = 0.7> normalize = selected into(%init_i, %init_w) : tensor<?x10xf32> into tensor<?x4xi32>, tensor<?x4xf32>
  return %i, %w : tensor<?x4xi32>, tensor<?x4xf32>
}
func.func @route_adaptive(%l: tensor<?x10xf32>) -> (tensor<?x4xi32>, tensor<?x4xf32>) {
  %init_i_c0 = arith.constant 0 : index
  %init_i_d0 = tensor.dim %l, %init_i_c0 : tensor<?x10xf32>
  %init_i = tensor.empty(%init_i_d0) : tensor<?x4xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x10xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x4xf32>
  %i, %w = moe.route %l experts = <compute = 6, null = 2, copy = 1, const = 1> k = 4
      scoring = sigmoid strategy = adaptive<tau = 0.2> into(%init_i, %init_w) : tensor<?x10xf32> into tensor<?x4xi32>, tensor<?x4xf32>
  return %i, %w : tensor<?x4xi32>, tensor<?x4xf32>
}
func.func @route_threshold(%l: tensor<?x10xf32>, %b: tensor<10xf32>) -> (tensor<?x4xi32>, tensor<?x4xf32>) {
  %init_i_c0 = arith.constant 0 : index
  %init_i_d0 = tensor.dim %l, %init_i_c0 : tensor<?x10xf32>
  %init_i = tensor.empty(%init_i_d0) : tensor<?x4xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x10xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x4xf32>
  %i, %w = moe.route %l bias(%b : tensor<10xf32>) experts = <compute = 6, null = 2, copy = 1, const = 1>
      k = 4 scoring = none strategy = threshold<tau = 0.1, k_min = 1> normalize = non_null scale = 2.5 into(%init_i, %init_w)
      : tensor<?x10xf32> into tensor<?x4xi32>, tensor<?x4xf32>
  return %i, %w : tensor<?x4xi32>, tensor<?x4xf32>
}
func.func @route_dynamic_k(%l: tensor<?x10xf32>, %k: tensor<?xi32>) -> (tensor<?x4xi32>, tensor<?x4xf32>) {
  %init_i_c0 = arith.constant 0 : index
  %init_i_d0 = tensor.dim %l, %init_i_c0 : tensor<?x10xf32>
  %init_i = tensor.empty(%init_i_d0) : tensor<?x4xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x10xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x4xf32>
  %i, %w = moe.route %l k_per_token(%k : tensor<?xi32>) experts = <compute = 6, null = 2, copy = 1, const = 1>
      k = 4 strategy = dynamic_k normalize = non_null into(%init_i, %init_w) : tensor<?x10xf32> into tensor<?x4xi32>, tensor<?x4xf32>
  return %i, %w : tensor<?x4xi32>, tensor<?x4xf32>
}
// Cross-token decisions (experts only: S = E = 8).
func.func @route_expert_choice(%l: tensor<?x8xf32>) -> (tensor<?x3xi32>, tensor<?x3xf32>) {
  %init_i_c0 = arith.constant 0 : index
  %init_i_d0 = tensor.dim %l, %init_i_c0 : tensor<?x8xf32>
  %init_i = tensor.empty(%init_i_d0) : tensor<?x3xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x3xf32>
  %i, %w = moe.route %l experts = <compute = 8> k = 3 strategy = expert_choice<capacity_factor = 1.5>
      normalize = selected into(%init_i, %init_w) : tensor<?x8xf32> into tensor<?x3xi32>, tensor<?x3xf32>
  return %i, %w : tensor<?x3xi32>, tensor<?x3xf32>
}
func.func @route_capacity_score(%l: tensor<?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %init_i_c0 = arith.constant 0 : index
  %init_i_d0 = tensor.dim %l, %init_i_c0 : tensor<?x8xf32>
  %init_i = tensor.empty(%init_i_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %i, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k
      capacity = <factor = 0.75, priority = score> into(%init_i, %init_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %i, %w : tensor<?x2xi32>, tensor<?x2xf32>
}
func.func @route_capacity_position_groups(%l: tensor<?x8xf32>, %b: tensor<8xf32>) -> (tensor<?x3xi32>, tensor<?x3xf32>) {
  %init_i_c0 = arith.constant 0 : index
  %init_i_d0 = tensor.dim %l, %init_i_c0 : tensor<?x8xf32>
  %init_i = tensor.empty(%init_i_d0) : tensor<?x3xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x3xf32>
  %i, %w = moe.route %l bias(%b : tensor<8xf32>) experts = <compute = 8> k = 3 scoring = sigmoid
      strategy = top_k normalize = selected capacity = <factor = 1.0, priority = position>
      groups = <n = 4, top = 2> into(%init_i, %init_w) : tensor<?x8xf32> into tensor<?x3xi32>, tensor<?x3xf32>
  return %i, %w : tensor<?x3xi32>, tensor<?x3xf32>
}
// A static result size decided by a dynamic operand: checked at run time.
func.func @route_static_tokens(%l: tensor<?x8xf32>) -> (tensor<5x2xi32>, tensor<5x2xf32>) {
  %init_i = tensor.empty() : tensor<5x2xi32>
  %init_w = tensor.empty() : tensor<5x2xf32>
  %i, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k into(%init_i, %init_w)
      : tensor<?x8xf32> into tensor<5x2xi32>, tensor<5x2xf32>
  return %i, %w : tensor<5x2xi32>, tensor<5x2xf32>
}

// Dispatch of arbitrary ids (garbage included), dynamic and padded.
func.func @dispatch(%x: tensor<?x4xf32>, %ids: tensor<?x?xi32>) -> (tensor<?x4xf32>, tensor<7xi32>, tensor<?x?xi32>) {
  %r, %o, %s = moe.dispatch %x, %ids num_experts = 6
      : tensor<?x4xf32>, tensor<?x?xi32> -> tensor<?x4xf32>, tensor<7xi32>, tensor<?x?xi32>
  return %r, %o, %s : tensor<?x4xf32>, tensor<7xi32>, tensor<?x?xi32>
}
func.func @dispatch_padded(%x: tensor<?x4xf32>, %ids: tensor<?x3xi32>) -> (tensor<9x4xf32>, tensor<7xi32>, tensor<?x3xi32>) {
  %r, %o, %s = moe.dispatch %x, %ids num_experts = 6
      : tensor<?x4xf32>, tensor<?x3xi32> -> tensor<9x4xf32>, tensor<7xi32>, tensor<?x3xi32>
  return %r, %o, %s : tensor<9x4xf32>, tensor<7xi32>, tensor<?x3xi32>
}

// Ragged matmuls over offsets from outside (sanitised by the ops).
func.func @grouped_matmul(%l: tensor<?x?xf32>, %r: tensor<?x?x?xf32>, %o: tensor<?xi32>) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %rows = tensor.dim %l, %c0 : tensor<?x?xf32>
  %n = tensor.dim %r, %c2 : tensor<?x?x?xf32>
  %init = tensor.empty(%rows, %n) : tensor<?x?xf32>
  %0 = moe.grouped_matmul %l, %r, %o into(%init) : tensor<?x?xf32>, tensor<?x?x?xf32>, tensor<?xi32> into tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}
func.func @expert_ffn_gated(%r: tensor<?x40xf32>, %o: tensor<4xi32>, %u: tensor<3x40x36xf32>,
                            %g: tensor<3x40x36xf32>, %d: tensor<3x36x40xf32>) -> tensor<?x40xf32> {
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %r, %init_y_c0 : tensor<?x40xf32>
  %init_y = tensor.empty(%init_y_d0) : tensor<?x40xf32>
  %y = moe.expert_ffn %r, %o up(%u : tensor<3x40x36xf32>) gate(%g : tensor<3x40x36xf32>)
      down(%d : tensor<3x36x40xf32>) activation = silu gated into(%init_y) : tensor<?x40xf32>, tensor<4xi32> into tensor<?x40xf32>
  return %y : tensor<?x40xf32>
}
func.func @expert_ffn_bf16(%r: tensor<?x8xbf16>, %o: tensor<3xi32>, %u: tensor<2x8x5xbf16>,
                           %d: tensor<2x5x8xbf16>, %bu: tensor<2x5xbf16>, %bd: tensor<2x8xbf16>) -> tensor<?x8xbf16> {
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %r, %init_y_c0 : tensor<?x8xbf16>
  %init_y = tensor.empty(%init_y_d0) : tensor<?x8xbf16>
  %y = moe.expert_ffn %r, %o up(%u : tensor<2x8x5xbf16>) down(%d : tensor<2x5x8xbf16>)
      up_bias(%bu : tensor<2x5xbf16>) down_bias(%bd : tensor<2x8xbf16>) activation = gelu into(%init_y)
      : tensor<?x8xbf16>, tensor<3xi32> into tensor<?x8xbf16>
  return %y : tensor<?x8xbf16>
}

// Combine of arbitrary slots: ids and slot_rows out of range, NaN weights.
func.func @combine(%y: tensor<?x4xf32>, %s: tensor<?x3xi32>, %ids: tensor<?x3xi32>, %w: tensor<?x3xf32>,
                   %x: tensor<?x4xf32>, %wc: tensor<1x4x2xf32>, %v: tensor<1x4xf32>) -> tensor<?x4xf32> {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %x, %init_0_c0 : tensor<?x4xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x4xf32>
  %0 = moe.combine %y, %s, %ids, %w, %x const_proj(%wc : tensor<1x4x2xf32>) const_values(%v : tensor<1x4xf32>)
      experts = <compute = 6, null = 2, copy = 1, const = 1> into(%init_0)
      : tensor<?x4xf32>, tensor<?x3xi32>, tensor<?x3xi32>, tensor<?x3xf32>, tensor<?x4xf32> into tensor<?x4xf32>
  return %0 : tensor<?x4xf32>
}
func.func @aux_loss(%s: tensor<?x10xf32>, %ids: tensor<?x3xi32>) -> tensor<f32> {
  %init_0 = tensor.empty() : tensor<f32>
  %0 = moe.aux_loss %s, %ids into(%init_0) : tensor<?x10xf32>, tensor<?x3xi32> into tensor<f32>
  return %0 : tensor<f32>
}

// Whole layers: fused routing (the pipeline's default), every expert kind.
func.func @layer(%x: tensor<?x8xf32>, %wr: tensor<8x10xf32>, %wu: tensor<6x8x5xf32>, %wg: tensor<6x8x5xf32>,
                 %wd: tensor<6x5x8xf32>, %wc: tensor<1x8x2xf32>, %v: tensor<1x8xf32>) -> tensor<?x8xf32> {
  %y = moe.layer %x router(%wr : tensor<8x10xf32>) up(%wu : tensor<6x8x5xf32>) gate(%wg : tensor<6x8x5xf32>)
      down(%wd : tensor<6x5x8xf32>) const_proj(%wc : tensor<1x8x2xf32>) const_values(%v : tensor<1x8xf32>)
      experts = <compute = 6, null = 2, copy = 1, const = 1> k = 3 strategy = top_p<p = 0.8>
      normalize = non_null activation = silu gated : tensor<?x8xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}
func.func @layer_dynamic_k(%x: tensor<?x8xf32>, %wr: tensor<8x8xf32>, %k: tensor<?xi32>, %wu: tensor<6x8x5xf32>,
                           %wd: tensor<6x5x8xf32>, %bu: tensor<6x5xf32>, %bd: tensor<6x8xf32>) -> tensor<?x8xf32> {
  %y = moe.layer %x router(%wr : tensor<8x8xf32>) k_per_token(%k : tensor<?xi32>) up(%wu : tensor<6x8x5xf32>)
      down(%wd : tensor<6x5x8xf32>) up_bias(%bu : tensor<6x5xf32>) down_bias(%bd : tensor<6x8xf32>)
      experts = <compute = 6, null = 2> k = 4 strategy = dynamic_k normalize = selected activation = gelu_tanh
      : tensor<?x8xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}
func.func @layer_expert_choice(%x: tensor<?x8xf32>, %wr: tensor<8x6xf32>, %wu: tensor<6x8x5xf32>,
                               %wd: tensor<6x5x8xf32>) -> tensor<?x8xf32> {
  %y = moe.layer %x router(%wr : tensor<8x6xf32>) up(%wu : tensor<6x8x5xf32>) down(%wd : tensor<6x5x8xf32>)
      experts = <compute = 6> k = 2 strategy = expert_choice<capacity_factor = 2.0> activation = relu
      : tensor<?x8xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}
