// Every verifier rule of section 3 of the semantics contract has at least one
// case here, labelled with the rule it checks (see docs/Verifier.md):
//   [shapes]     shapes and ranks agree (T, H, F, E, S, K across operands)
//   [k-range]    1 <= K <= S
//   [top_p]      0 < p <= 1
//   [adaptive]   adaptive tau >= 0
//   [threshold]  threshold tau finite and 0 <= k_min <= K
//   [cf]         capacity factors > 0
//   [groups]     S = E, E % n == 0, E / n >= 2 (top2_sum), 1 <= top <= n, K <= top*E/n
//   [ec-space]   expert_choice only with S = E
//   [ec-alone]   expert_choice without selection_bias, capacity or groups
//   [k_per_token] k_per_token iff dynamic_k
//   [gated]      w_gate iff gated, biases only when not gated
//   [const]      constant-expert operands iff N_const > 0
//   [types]      element types are supported ones
//   [experts]    an expert space has a compute expert and no negative count
//   [fusion]     moe.route_dispatch only with per-token routing, 1 <= tile <= 65536
//                (project rule)
//   [packed]     packed weights: [E, ceil(F/32), H, 32] and [E, ceil(H/32), F, 32]
//                (project rule)
//   [size]       static dimensions describe at most 2^48 bytes (project rule)
//   [schedule]   #moe.matmul_schedule fields in range; moe.matmul_schedule holds
//                one (project rule)
//   [quant]      quantized weights: packed tiles of i8, [E, F/32, H/32, B] and
//                [E, H/32, F/32, B], B = 1088 (q8_0) or 576 (q4_0); H and F
//                multiples of 32 (project rule)
//   ([segments], operand segment sizes, are in invalid-segments.mlir: generic form)
// RUN: moe-opt %s -split-input-file -verify-diagnostics

// [shapes] gate: w's first dimension is x's hidden size.
func.func @gate_hidden(%x: tensor<4x64xf32>, %w: tensor<32x8xf32>) {
  %init_0 = tensor.empty() : tensor<4x8xf32>
  // expected-error @below {{'moe.gate' op operand 'w' dimension 0 must be H = 64 (H from dimension 1 of operand 'x'), got 32}}
  %0 = moe.gate %x, %w into(%init_0) : tensor<4x64xf32>, tensor<32x8xf32> into tensor<4x8xf32>
  return
}

// -----

// [shapes] gate: the bias has S entries.
func.func @gate_bias(%x: tensor<?x64xf32>, %w: tensor<64x8xf32>, %b: tensor<9xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %x, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x8xf32>
  // expected-error @below {{operand 'bias' dimension 0 must be S = 8 (S from dimension 1 of operand 'w'), got 9}}
  %0 = moe.gate %x, %w bias(%b : tensor<9xf32>) into(%init_0) : tensor<?x64xf32>, tensor<64x8xf32> into tensor<?x8xf32>
  return
}

// -----

// [shapes] gate: the logits keep x's token count.
func.func @gate_tokens(%x: tensor<4x64xf32>, %w: tensor<64x8xf32>) {
  %init_0 = tensor.empty() : tensor<5x8xf32>
  // expected-error @below {{operand 'init' dimension 0 must be T = 4 (T from dimension 0 of operand 'x'), got 5}}
  %0 = moe.gate %x, %w into(%init_0) : tensor<4x64xf32>, tensor<64x8xf32> into tensor<5x8xf32>
  return
}

// -----

// [types] gate: logits are always f32.
func.func @gate_logits_type(%x: tensor<4x64xbf16>, %w: tensor<64x8xbf16>) {
  %init_0 = tensor.empty() : tensor<4x8xbf16>
  // expected-error @below {{'moe.gate' op operand #2 must be tensor<T x S x f32>, but got 'tensor<4x8xbf16>'}}
  %0 = moe.gate %x, %w into(%init_0) : tensor<4x64xbf16>, tensor<64x8xbf16> into tensor<4x8xbf16>
  return
}

// -----

// [types] gate: f64 activations are not supported.
func.func @gate_f64(%x: tensor<4x64xf64>, %w: tensor<64x8xf32>) {
  %init_0 = tensor.empty() : tensor<4x8xf32>
  // expected-error @below {{'moe.gate' op operand #0 must be tensor<T x H x f32/f16/bf16>, but got 'tensor<4x64xf64>'}}
  %0 = moe.gate %x, %w into(%init_0) : tensor<4x64xf64>, tensor<64x8xf32> into tensor<4x8xf32>
  return
}

// -----

// [shapes] gate: ranks.
func.func @gate_rank(%x: tensor<4x2x64xf32>, %w: tensor<64x8xf32>) {
  %init_0 = tensor.empty() : tensor<4x8xf32>
  // expected-error @below {{'moe.gate' op operand #0 must be tensor<T x H x f32/f16/bf16>, but got 'tensor<4x2x64xf32>'}}
  %0 = moe.gate %x, %w into(%init_0) : tensor<4x2x64xf32>, tensor<64x8xf32> into tensor<4x8xf32>
  return
}

// -----

// [shapes] route: the logits have S = E + N_null + N_copy + N_const columns.
func.func @route_width(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{operand 'logits' dimension 1 must be S = 12 (S from attribute 'experts'), got 8}}
  %0:2 = moe.route %l experts = <compute = 8, null = 4> k = 2 strategy = top_k into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [shapes] route: ids have K columns.
func.func @route_k_columns(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x3xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{operand 'ids_init' dimension 1 must be K = 2 (K from attribute 'k'), got 3}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = top_k into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x3xi32>, tensor<?x2xf32>
  return
}

// -----

// [shapes] route: ids and weights agree on T.
func.func @route_tokens(%l: tensor<4x8xf32>) {
  %init_0_ids = tensor.empty() : tensor<4x2xi32>
  %init_0_w = tensor.empty() : tensor<3x2xf32>
  // expected-error @below {{operand 'weights_init' dimension 0 must be T = 4 (T from dimension 0 of operand 'logits'), got 3}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = top_k into(%init_0_ids, %init_0_w) : tensor<4x8xf32> into tensor<4x2xi32>, tensor<3x2xf32>
  return
}

// -----

// [types] route: ids are i32.
func.func @route_ids_type(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi64>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{'moe.route' op operand #1 must be tensor<T x K x i32>, but got 'tensor<?x2xi64>'}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = top_k into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi64>, tensor<?x2xf32>
  return
}

// -----

// [types] route: logits are f32 (scores are computed in f32).
func.func @route_logits_type(%l: tensor<?x8xbf16>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xbf16>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{'moe.route' op operand #0 must be tensor<T x S x f32>, but got 'tensor<?x8xbf16>'}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = top_k into(%init_0_ids, %init_0_w) : tensor<?x8xbf16> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [shapes] route: the selection bias has S entries.
func.func @route_bias_width(%l: tensor<?x8xf32>, %b: tensor<4xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{operand 'selection_bias' dimension 0 must be S = 8 (S from attribute 'experts'), got 4}}
  %0:2 = moe.route %l bias(%b : tensor<4xf32>) experts = <compute = 8> k = 2 strategy = top_k into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [shapes] route: k_per_token has T entries.
func.func @route_kpt_tokens(%l: tensor<4x8xf32>, %k: tensor<5xi32>) {
  %init_0_ids = tensor.empty() : tensor<4x2xi32>
  %init_0_w = tensor.empty() : tensor<4x2xf32>
  // expected-error @below {{operand 'k_per_token' dimension 0 must be T = 4 (T from dimension 0 of operand 'logits'), got 5}}
  %0:2 = moe.route %l k_per_token(%k : tensor<5xi32>) experts = <compute = 8> k = 2 strategy = dynamic_k into(%init_0_ids, %init_0_w) : tensor<4x8xf32> into tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

// [types] route: k_per_token is i32.
func.func @route_kpt_type(%l: tensor<?x8xf32>, %k: tensor<?xi64>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{'moe.route' op operand #1 must be tensor<T x i32>, but got 'tensor<?xi64>'}}
  %0:2 = moe.route %l k_per_token(%k : tensor<?xi64>) experts = <compute = 8> k = 2 strategy = dynamic_k into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [k-range] K >= 1.
func.func @k_zero(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x0xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x0xf32>
  // expected-error @below {{'moe.route' op attribute 'k' expects 1 <= k <= S = 8 (all experts of #moe.experts<compute = 8>), got k = 0}}
  %0:2 = moe.route %l experts = <compute = 8> k = 0 strategy = top_k into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x0xi32>, tensor<?x0xf32>
  return
}

// -----

// [k-range] K <= S, where S counts the zero-computation experts too.
func.func @k_too_large(%l: tensor<?x10xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x10xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x11xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x11xf32>
  // expected-error @below {{attribute 'k' expects 1 <= k <= S = 10 (all experts of #moe.experts<compute = 8, null = 2>), got k = 11}}
  %0:2 = moe.route %l experts = <compute = 8, null = 2> k = 11 strategy = top_k into(%init_0_ids, %init_0_w) : tensor<?x10xf32> into tensor<?x11xi32>, tensor<?x11xf32>
  return
}

// -----

// [top_p] p > 0.
func.func @top_p_zero(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{#moe.top_p expects 0 < p <= 1, got p = 0}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = top_p<p = 0.0> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [top_p] p <= 1.
func.func @top_p_large(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{#moe.top_p expects 0 < p <= 1, got p = 1.5}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = top_p<p = 1.5> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [top_p] a NaN p is not in (0, 1].
func.func @top_p_nan(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{#moe.top_p expects 0 < p <= 1, got p = nan}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = top_p<p = 0x7FC00000> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [adaptive] tau >= 0.
func.func @adaptive_negative(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{#moe.adaptive expects tau >= 0, got tau = -0.1}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = adaptive<tau = -0.1> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [threshold] tau is finite.
func.func @threshold_inf(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{#moe.threshold expects a finite tau, got tau = inf}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = threshold<tau = 0x7F800000, k_min = 1> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [threshold] tau is not NaN.
func.func @threshold_nan(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{#moe.threshold expects a finite tau, got tau = nan}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = threshold<tau = 0x7FC00000, k_min = 1> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [threshold] k_min <= K.
func.func @threshold_kmin_large(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{'moe.route' op strategy threshold expects k_min <= K = 2, got k_min = 3}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = threshold<tau = 0.1, k_min = 3> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [threshold] k_min >= 0.
func.func @threshold_kmin_negative(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{#moe.threshold expects k_min >= 0, got k_min = -1}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = threshold<tau = 0.1, k_min = -1> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [cf] capacity factor > 0.
func.func @capacity_zero(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{#moe.capacity expects factor > 0, got factor = 0}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = top_k capacity = <factor = 0.0, priority = score> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [cf] expert_choice capacity factor > 0.
func.func @expert_choice_cf(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{#moe.expert_choice expects capacity_factor > 0, got capacity_factor = -1}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = expert_choice<capacity_factor = -1.0> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [groups] groups need S = E.
func.func @groups_space(%l: tensor<?x10xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x10xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{'moe.route' op attribute 'groups' requires an expert space of compute experts only (S = E), got S = 10, E = 8}}
  %0:2 = moe.route %l experts = <compute = 8, null = 2> k = 2 strategy = top_k groups = <n = 2, top = 1> into(%init_0_ids, %init_0_w) : tensor<?x10xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [groups] n divides E.
func.func @groups_divide(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{attribute 'groups' expects n dividing E = 8, got n = 3}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = top_k groups = <n = 3, top = 1> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [groups] n >= 1 (and no division by zero in the verifier).
func.func @groups_zero(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{#moe.groups expects n >= 1, got n = 0}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = top_k groups = <n = 0, top = 1> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [groups] at least two experts per group for the top2_sum score (score =
// max allows one: see ops.mlir).
func.func @groups_size(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{attribute 'groups' expects at least 2 experts per group (E / n >= 2) with score = top2_sum, got E / n = 1}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = top_k groups = <n = 8, top = 4> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [groups] an unknown group score.
func.func @groups_score(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{expected one of [top2_sum, max] for how group-limited routing scores a group of experts, got: sum}}
  // expected-error @below {{failed to parse MoE_GroupsAttr parameter 'score'}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = top_k groups = <n = 2, top = 1, score = sum> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [groups] top <= n.
func.func @groups_top_large(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{#moe.groups expects 1 <= top <= n = 4, got top = 5}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = top_k groups = <n = 4, top = 5> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [groups] top >= 1.
func.func @groups_top_zero(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{#moe.groups expects 1 <= top <= n = 4, got top = 0}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = top_k groups = <n = 4, top = 0> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [groups] K <= top * E / n: the kept groups must hold K experts.
func.func @groups_reach(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x3xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x3xf32>
  // expected-error @below {{'moe.route' op attribute 'k' expects k <= top * E / n = 2 (the experts of the kept groups), got k = 3}}
  %0:2 = moe.route %l experts = <compute = 8> k = 3 strategy = top_k groups = <n = 4, top = 1> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x3xi32>, tensor<?x3xf32>
  return
}

// -----

// [ec-space] expert_choice needs S = E.
func.func @expert_choice_space(%l: tensor<?x10xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x10xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{'moe.route' op strategy expert_choice requires an expert space of compute experts only (S = E), got S = 10, E = 8}}
  %0:2 = moe.route %l experts = <compute = 8, copy = 2> k = 2 strategy = expert_choice<capacity_factor = 1.0> into(%init_0_ids, %init_0_w) : tensor<?x10xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [ec-alone] expert_choice rejects a selection bias.
func.func @expert_choice_bias(%l: tensor<?x8xf32>, %b: tensor<8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{'moe.route' op strategy expert_choice does not accept operand 'selection_bias'; expected no selection bias}}
  %0:2 = moe.route %l bias(%b : tensor<8xf32>) experts = <compute = 8> k = 2 strategy = expert_choice<capacity_factor = 1.0> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [ec-alone] expert_choice rejects capacity.
func.func @expert_choice_capacity(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{strategy expert_choice does not accept attribute 'capacity'; expected no capacity (the strategy sets its own)}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = expert_choice<capacity_factor = 1.0> capacity = <factor = 1.0, priority = score> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [ec-alone] expert_choice rejects groups.
func.func @expert_choice_groups(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{strategy expert_choice does not accept attribute 'groups'; expected no groups}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = expert_choice<capacity_factor = 1.0> groups = <n = 2, top = 1> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [k_per_token] dynamic_k needs k_per_token.
func.func @dynamic_k_missing(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{'moe.route' op operand 'k_per_token' is required by strategy dynamic_k}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = dynamic_k into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [k_per_token] only dynamic_k takes k_per_token.
func.func @k_per_token_unused(%l: tensor<?x8xf32>, %k: tensor<?xi32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{'moe.route' op operand 'k_per_token' is only accepted with strategy dynamic_k, got strategy top_p}}
  %0:2 = moe.route %l k_per_token(%k : tensor<?xi32>) experts = <compute = 8> k = 2 strategy = top_p<p = 0.5> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [experts] at least one compute expert.
func.func @no_compute_expert(%l: tensor<?x4xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x4xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{#moe.experts expects at least one compute expert and non-negative counts, got compute = 0, null = 4, copy = 0, const = 0}}
  %0:2 = moe.route %l experts = <compute = 0, null = 4> k = 2 strategy = top_k into(%init_0_ids, %init_0_w) : tensor<?x4xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [experts] no negative counts.
func.func @negative_count(%y: tensor<?x64xf32>, %s: tensor<?x2xi32>, %w: tensor<?x2xf32>, %x: tensor<?x64xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %x, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x64xf32>
  // expected-error @below {{#moe.experts expects at least one compute expert and non-negative counts, got compute = 8, null = -1, copy = 0, const = 0}}
  %0 = moe.combine %y, %s, %s, %w, %x experts = <compute = 8, null = -1> into(%init_0) : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x64xf32> into tensor<?x64xf32>
  return
}

// -----

// [experts] the width S must fit i32 ids (and its sum must not overflow).
func.func @huge_expert_space(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{#moe.experts expects at most 2147483647 experts in all (ids are i32), got compute = 4611686018427387904, null = 4611686018427387904, copy = 0, const = 0}}
  %0:2 = moe.route %l experts = <compute = 4611686018427387904, null = 4611686018427387904> k = 2 strategy = top_k into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [experts] dispatch: num_experts + 1 must not overflow.
func.func @dispatch_huge(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>) {
  // expected-error @below {{attribute 'num_experts' expects 1 <= num_experts <= 2147483647, got 9223372036854775807}}
  %0:3 = moe.dispatch %x, %ids num_experts = 9223372036854775807 : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xi32>
  return
}

// -----

// A strategy must be one of the six.
func.func @unknown_strategy(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{expected a routing strategy (top_k, top_p, adaptive, threshold, dynamic_k or expert_choice), got 'top_q'}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = top_q into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// Another moe attribute is not a strategy either.
func.func @not_a_strategy(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{expected a routing strategy (top_k, top_p, adaptive, threshold, dynamic_k or expert_choice), got #moe.groups<n = 2, top = 1>}}
  %0:2 = moe.route %l experts = <compute = 8> k = 2 strategy = groups<n = 2, top = 1> into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// The zero-computation counts come in a fixed order.
func.func @expert_space_order(%l: tensor<?x8xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %l, %init_0_c0 : tensor<?x8xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x2xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x2xf32>
  // expected-error @below {{expected 'null', 'copy' or 'const' (in this order, each at most once), got 'null'}}
  %0:2 = moe.route %l experts = <compute = 4, copy = 2, null = 2> k = 2 strategy = top_k into(%init_0_ids, %init_0_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

// [experts] dispatch needs at least one compute expert.
func.func @dispatch_no_experts(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>) {
  // expected-error @below {{'moe.dispatch' op attribute 'num_experts' expects 1 <= num_experts <= 2147483647, got 0}}
  %0:3 = moe.dispatch %x, %ids num_experts = 0 : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<1xi32>, tensor<?x2xi32>
  return
}

// -----

// [shapes] dispatch: offsets has E + 1 entries.
func.func @dispatch_offsets(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>) {
  // expected-error @below {{'moe.dispatch' op result 'offsets' dimension 0 must be E+1 = 9 (E from attribute 'num_experts'), got 8}}
  %0:3 = moe.dispatch %x, %ids num_experts = 8 : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<8xi32>, tensor<?x2xi32>
  return
}

// -----

// [shapes] dispatch: rows keep x's hidden size.
func.func @dispatch_rows(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>) {
  // expected-error @below {{result 'rows' dimension 1 must be H = 64 (H from dimension 1 of operand 'x'), got 32}}
  %0:3 = moe.dispatch %x, %ids num_experts = 8 : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x32xf32>, tensor<9xi32>, tensor<?x2xi32>
  return
}

// -----

// [types] dispatch: rows keep x's element type.
func.func @dispatch_rows_type(%x: tensor<?x64xbf16>, %ids: tensor<?x2xi32>) {
  // expected-error @below {{result 'rows' must have element type 'bf16' (the element type of 'x'), got 'f32'}}
  %0:3 = moe.dispatch %x, %ids num_experts = 8 : tensor<?x64xbf16>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<9xi32>, tensor<?x2xi32>
  return
}

// -----

// [shapes] dispatch: slot_rows has ids' shape.
func.func @dispatch_slot_rows(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>) {
  // expected-error @below {{result 'slot_rows' dimension 1 must be K = 2 (K from dimension 1 of operand 'ids'), got 4}}
  %0:3 = moe.dispatch %x, %ids num_experts = 8 : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<9xi32>, tensor<?x4xi32>
  return
}

// -----

// [shapes] grouped_matmul: the contraction sizes agree.
func.func @gmm_contraction(%lhs: tensor<?x64xf32>, %rhs: tensor<8x32x16xf32>, %o: tensor<9xi32>, %init: tensor<?x16xf32>) {
  // expected-error @below {{'moe.grouped_matmul' op operand 'lhs' dimension 1 must be Kd = 32 (Kd from dimension 1 of operand 'rhs'), got 64}}
  %0 = moe.grouped_matmul %lhs, %rhs, %o into(%init) : tensor<?x64xf32>, tensor<8x32x16xf32>, tensor<9xi32> into tensor<?x16xf32>
  return
}

// -----

// [shapes] grouped_matmul: offsets has one more entry than rhs has experts.
func.func @gmm_offsets(%lhs: tensor<?x32xf32>, %rhs: tensor<8x32x16xf32>, %o: tensor<8xi32>, %init: tensor<?x16xf32>) {
  // expected-error @below {{operand 'offsets' dimension 0 must be E+1 = 9 (E from dimension 0 of operand 'rhs'), got 8}}
  %0 = moe.grouped_matmul %lhs, %rhs, %o into(%init) : tensor<?x32xf32>, tensor<8x32x16xf32>, tensor<8xi32> into tensor<?x16xf32>
  return
}

// -----

// [types] grouped_matmul: offsets are i32.
func.func @gmm_offsets_type(%lhs: tensor<?x32xf32>, %rhs: tensor<8x32x16xf32>, %o: tensor<9xindex>, %init: tensor<?x16xf32>) {
  // expected-error @below {{'moe.grouped_matmul' op operand #2 must be tensor<E+1 x i32>, but got 'tensor<9xindex>'}}
  %0 = moe.grouped_matmul %lhs, %rhs, %o into(%init) : tensor<?x32xf32>, tensor<8x32x16xf32>, tensor<9xindex> into tensor<?x16xf32>
  return
}

// -----

// [types] grouped_matmul: the destination has lhs's element type.
func.func @gmm_init_type(%lhs: tensor<?x32xf16>, %rhs: tensor<8x32x16xf16>, %o: tensor<9xi32>, %init: tensor<?x16xf32>) {
  // expected-error @below {{operand 'init' must have element type 'f16' (the element type of 'lhs'), got 'f32'}}
  %0 = moe.grouped_matmul %lhs, %rhs, %o into(%init) : tensor<?x32xf16>, tensor<8x32x16xf16>, tensor<9xi32> into tensor<?x16xf32>
  return
}

// -----

// [shapes] grouped_matmul: the destination has R rows and N columns.
func.func @gmm_init_shape(%lhs: tensor<5x32xf32>, %rhs: tensor<8x32x16xf32>, %o: tensor<9xi32>, %init: tensor<4x16xf32>) {
  // expected-error @below {{'moe.grouped_matmul' op operand 'init' dimension 0 must be R = 5 (R from dimension 0 of operand 'lhs'), got 4}}
  %0 = moe.grouped_matmul %lhs, %rhs, %o into(%init) : tensor<5x32xf32>, tensor<8x32x16xf32>, tensor<9xi32> into tensor<4x16xf32>
  return
}

// -----

// [shapes] expert_ffn: w_down is [E, F, H].
func.func @ffn_down(%r: tensor<?x64xf32>, %o: tensor<9xi32>, %wu: tensor<8x64x128xf32>, %wg: tensor<8x64x128xf32>, %wd: tensor<8x64x128xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %r, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x64xf32>
  // expected-error @below {{'moe.expert_ffn' op operand 'w_down' dimension 1 must be F = 128 (F from dimension 2 of operand 'w_up'), got 64}}
  %0 = moe.expert_ffn %r, %o up(%wu : tensor<8x64x128xf32>) gate(%wg : tensor<8x64x128xf32>) down(%wd : tensor<8x64x128xf32>) activation = silu gated into(%init_0) : tensor<?x64xf32>, tensor<9xi32> into tensor<?x64xf32>
  return
}

// -----

// [shapes] expert_ffn: the gate projection has w_up's shape.
func.func @ffn_gate_shape(%r: tensor<?x64xf32>, %o: tensor<9xi32>, %wu: tensor<8x64x128xf32>, %wg: tensor<8x64x96xf32>, %wd: tensor<8x128x64xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %r, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x64xf32>
  // expected-error @below {{operand 'w_gate' dimension 2 must be F = 128 (F from dimension 2 of operand 'w_up'), got 96}}
  %0 = moe.expert_ffn %r, %o up(%wu : tensor<8x64x128xf32>) gate(%wg : tensor<8x64x96xf32>) down(%wd : tensor<8x128x64xf32>) activation = silu gated into(%init_0) : tensor<?x64xf32>, tensor<9xi32> into tensor<?x64xf32>
  return
}

// -----

// [shapes] expert_ffn: the weights hold E experts, offsets E + 1 entries.
func.func @ffn_offsets(%r: tensor<?x64xf32>, %o: tensor<5xi32>, %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %r, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x64xf32>
  // expected-error @below {{operand 'offsets' dimension 0 must be E+1 = 9 (E from dimension 0 of operand 'w_up'), got 5}}
  %0 = moe.expert_ffn %r, %o up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>) activation = relu into(%init_0) : tensor<?x64xf32>, tensor<5xi32> into tensor<?x64xf32>
  return
}

// -----

// [shapes] expert_ffn: the down bias is [E, H].
func.func @ffn_bias_shape(%r: tensor<?x64xf32>, %o: tensor<9xi32>, %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>, %bd: tensor<8x128xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %r, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x64xf32>
  // expected-error @below {{operand 'b_down' dimension 1 must be H = 64 (H from dimension 1 of operand 'rows'), got 128}}
  %0 = moe.expert_ffn %r, %o up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>) down_bias(%bd : tensor<8x128xf32>) activation = relu into(%init_0) : tensor<?x64xf32>, tensor<9xi32> into tensor<?x64xf32>
  return
}

// -----

// [gated] a gated FFN needs w_gate.
func.func @ffn_gated_without_gate(%r: tensor<?x64xf32>, %o: tensor<9xi32>, %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %r, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x64xf32>
  // expected-error @below {{'moe.expert_ffn' op operand 'w_gate' is required when 'gated' is set}}
  %0 = moe.expert_ffn %r, %o up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>) activation = silu gated into(%init_0) : tensor<?x64xf32>, tensor<9xi32> into tensor<?x64xf32>
  return
}

// -----

// [gated] w_gate only with gated.
func.func @ffn_gate_not_gated(%r: tensor<?x64xf32>, %o: tensor<9xi32>, %wu: tensor<8x64x128xf32>, %wg: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %r, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x64xf32>
  // expected-error @below {{operand 'w_gate' is only accepted when 'gated' is set; expected no 'w_gate'}}
  %0 = moe.expert_ffn %r, %o up(%wu : tensor<8x64x128xf32>) gate(%wg : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>) activation = silu into(%init_0) : tensor<?x64xf32>, tensor<9xi32> into tensor<?x64xf32>
  return
}

// -----

// [gated] no biases on a gated FFN.
func.func @ffn_gated_bias(%r: tensor<?x64xf32>, %o: tensor<9xi32>, %wu: tensor<8x64x128xf32>, %wg: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>, %bu: tensor<8x128xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %r, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x64xf32>
  // expected-error @below {{operand 'b_up' is only accepted when the FFN is not gated; expected no biases with 'gated'}}
  %0 = moe.expert_ffn %r, %o up(%wu : tensor<8x64x128xf32>) gate(%wg : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>) up_bias(%bu : tensor<8x128xf32>) activation = silu gated into(%init_0) : tensor<?x64xf32>, tensor<9xi32> into tensor<?x64xf32>
  return
}

// -----

// [gated] the layer follows the same rule.
func.func @layer_gated_without_gate(%x: tensor<?x64xf32>, %wr: tensor<64x8xf32>, %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>) {
  // expected-error @below {{'moe.layer' op operand 'w_gate' is required when 'gated' is set}}
  %0 = moe.layer %x router(%wr : tensor<64x8xf32>) up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>) experts = <compute = 8> k = 2 strategy = top_k activation = silu gated : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

// [shapes] combine: ids and weights agree on K.
func.func @combine_k(%y: tensor<?x64xf32>, %s: tensor<?x2xi32>, %ids: tensor<?x2xi32>, %w: tensor<?x3xf32>, %x: tensor<?x64xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %x, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x64xf32>
  // expected-error @below {{'moe.combine' op operand 'weights' dimension 1 must be K = 2 (K from dimension 1 of operand 'slot_rows'), got 3}}
  %0 = moe.combine %y, %s, %ids, %w, %x experts = <compute = 8> into(%init_0) : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xi32>, tensor<?x3xf32>, tensor<?x64xf32> into tensor<?x64xf32>
  return
}

// -----

// [shapes] combine: y and x share the hidden size.
func.func @combine_hidden(%y: tensor<?x32xf32>, %s: tensor<?x2xi32>, %w: tensor<?x2xf32>, %x: tensor<?x64xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %x, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x64xf32>
  // expected-error @below {{operand 'x' dimension 1 must be H = 32 (H from dimension 1 of operand 'y'), got 64}}
  %0 = moe.combine %y, %s, %s, %w, %x experts = <compute = 8> into(%init_0) : tensor<?x32xf32>, tensor<?x2xi32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x64xf32> into tensor<?x64xf32>
  return
}

// -----

// [shapes] combine: the destination has x's token count.
func.func @combine_tokens(%y: tensor<?x64xf32>, %s: tensor<4x2xi32>, %w: tensor<4x2xf32>, %x: tensor<4x64xf32>) {
  %init_0 = tensor.empty() : tensor<8x64xf32>
  // expected-error @below {{'moe.combine' op operand 'init' dimension 0 must be T = 4 (T from dimension 0 of operand 'slot_rows'), got 8}}
  %0 = moe.combine %y, %s, %s, %w, %x experts = <compute = 8> into(%init_0) : tensor<?x64xf32>, tensor<4x2xi32>, tensor<4x2xi32>, tensor<4x2xf32>, tensor<4x64xf32> into tensor<8x64xf32>
  return
}

// -----

// [shapes] combine: each constant expert has a [H, 2] projection.
func.func @combine_const_shape(%y: tensor<?x64xf32>, %s: tensor<?x2xi32>, %w: tensor<?x2xf32>, %x: tensor<?x64xf32>, %wc: tensor<1x64x3xf32>, %v: tensor<1x64xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %x, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x64xf32>
  // expected-error @below {{operand 'const_proj' dimension 2 must be 2, got 3}}
  %0 = moe.combine %y, %s, %s, %w, %x const_proj(%wc : tensor<1x64x3xf32>) const_values(%v : tensor<1x64xf32>) experts = <compute = 8, const = 1> into(%init_0) : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x64xf32> into tensor<?x64xf32>
  return
}

// -----

// [shapes] combine: one projection per constant expert.
func.func @combine_const_count(%y: tensor<?x64xf32>, %s: tensor<?x2xi32>, %w: tensor<?x2xf32>, %x: tensor<?x64xf32>, %wc: tensor<2x64x2xf32>, %v: tensor<2x64xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %x, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x64xf32>
  // expected-error @below {{operand 'const_proj' dimension 0 must be N_const = 1 (N_const from attribute 'experts'), got 2}}
  %0 = moe.combine %y, %s, %s, %w, %x const_proj(%wc : tensor<2x64x2xf32>) const_values(%v : tensor<2x64xf32>) experts = <compute = 8, const = 1> into(%init_0) : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x64xf32> into tensor<?x64xf32>
  return
}

// -----

// [const] constant experts need their operands.
func.func @combine_const_missing(%y: tensor<?x64xf32>, %s: tensor<?x2xi32>, %w: tensor<?x2xf32>, %x: tensor<?x64xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %x, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x64xf32>
  // expected-error @below {{'moe.combine' op operand 'const_proj' is required: the expert space #moe.experts<compute = 8, const = 2> has 2 constant expert(s)}}
  %0 = moe.combine %y, %s, %s, %w, %x experts = <compute = 8, const = 2> into(%init_0) : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x64xf32> into tensor<?x64xf32>
  return
}

// -----

// [const] both constant-expert operands are needed.
func.func @combine_const_values_missing(%y: tensor<?x64xf32>, %s: tensor<?x2xi32>, %w: tensor<?x2xf32>, %x: tensor<?x64xf32>, %wc: tensor<2x64x2xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %x, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x64xf32>
  // expected-error @below {{operand 'const_values' is required: the expert space #moe.experts<compute = 8, const = 2> has 2 constant expert(s)}}
  %0 = moe.combine %y, %s, %s, %w, %x const_proj(%wc : tensor<2x64x2xf32>) experts = <compute = 8, const = 2> into(%init_0) : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x64xf32> into tensor<?x64xf32>
  return
}

// -----

// [const] no constant-expert operands without constant experts.
func.func @layer_const_unused(%x: tensor<?x64xf32>, %wr: tensor<64x10xf32>, %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>, %v: tensor<1x64xf32>) {
  // expected-error @below {{'moe.layer' op operand 'const_values' is only accepted when the expert space has constant experts, got #moe.experts<compute = 8, copy = 2>}}
  %0 = moe.layer %x router(%wr : tensor<64x10xf32>) up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>) const_values(%v : tensor<1x64xf32>) experts = <compute = 8, copy = 2> k = 2 strategy = top_k activation = relu : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

// [shapes] layer: the router is [H, S].
func.func @layer_router(%x: tensor<?x64xf32>, %wr: tensor<64x8xf32>, %wu: tensor<8x64x128xf32>, %wg: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>) {
  // expected-error @below {{'moe.layer' op operand 'w_router' dimension 1 must be S = 12 (S from attribute 'experts'), got 8}}
  %0 = moe.layer %x router(%wr : tensor<64x8xf32>) up(%wu : tensor<8x64x128xf32>) gate(%wg : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>) experts = <compute = 8, null = 4> k = 2 strategy = top_k activation = silu gated : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

// [shapes] layer: the FFN weights hold E compute experts.
func.func @layer_expert_count(%x: tensor<?x64xf32>, %wr: tensor<64x12xf32>, %wu: tensor<12x64x128xf32>, %wg: tensor<12x64x128xf32>, %wd: tensor<12x128x64xf32>) {
  // expected-error @below {{operand 'w_up' dimension 0 must be E = 8 (E from attribute 'experts'), got 12}}
  %0 = moe.layer %x router(%wr : tensor<64x12xf32>) up(%wu : tensor<12x64x128xf32>) gate(%wg : tensor<12x64x128xf32>) down(%wd : tensor<12x128x64xf32>) experts = <compute = 8, null = 4> k = 2 strategy = top_k activation = silu gated : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

// [types] layer: the output has x's element type.
func.func @layer_result_type(%x: tensor<?x64xbf16>, %wr: tensor<64x8xbf16>, %wu: tensor<8x64x128xbf16>, %wd: tensor<8x128x64xbf16>) {
  // expected-error @below {{result 'y' must have element type 'bf16' (the element type of 'x'), got 'f32'}}
  %0 = moe.layer %x router(%wr : tensor<64x8xbf16>) up(%wu : tensor<8x64x128xbf16>) down(%wd : tensor<8x128x64xbf16>) experts = <compute = 8> k = 2 strategy = top_k activation = relu : tensor<?x64xbf16> -> tensor<?x64xf32>
  return
}

// -----

// [k_per_token] the layer checks the routing rules too.
func.func @layer_dynamic_k(%x: tensor<?x64xf32>, %wr: tensor<64x8xf32>, %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>) {
  // expected-error @below {{'moe.layer' op operand 'k_per_token' is required by strategy dynamic_k}}
  %0 = moe.layer %x router(%wr : tensor<64x8xf32>) up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>) experts = <compute = 8> k = 2 strategy = dynamic_k activation = relu : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

// [types] the selection bias is f32.
func.func @layer_bias_type(%x: tensor<?x64xf32>, %wr: tensor<64x8xf32>, %sb: tensor<8xbf16>, %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>) {
  // expected-error @below {{'moe.layer' op operand #2 must be tensor<S x f32>, but got 'tensor<8xbf16>'}}
  %0 = moe.layer %x router(%wr : tensor<64x8xf32>) bias(%sb : tensor<8xbf16>) up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>) experts = <compute = 8> k = 2 strategy = top_k activation = relu : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

// [shapes] aux_loss: the loss (and its destination) is a scalar tensor.
func.func @aux_loss_rank(%s: tensor<?x8xf32>, %ids: tensor<?x2xi32>) {
  %init_0 = tensor.empty() : tensor<1xf32>
  // expected-error @below {{'moe.aux_loss' op operand #2 must be tensor<f32>, but got 'tensor<1xf32>'}}
  %0 = moe.aux_loss %s, %ids into(%init_0) : tensor<?x8xf32>, tensor<?x2xi32> into tensor<1xf32>
  return
}

// -----

// [shapes] aux_loss: scores and ids agree on T.
func.func @aux_loss_tokens(%s: tensor<4x8xf32>, %ids: tensor<5x2xi32>) {
  %init_0 = tensor.empty() : tensor<f32>
  // expected-error @below {{operand 'ids' dimension 0 must be T = 4 (T from dimension 0 of operand 'scores'), got 5}}
  %0 = moe.aux_loss %s, %ids into(%init_0) : tensor<4x8xf32>, tensor<5x2xi32> into tensor<f32>
  return
}

// -----

// [fusion] the fused op needs a strategy that decides token by token.
func.func @fused_expert_choice(%x: tensor<?x16xf32>, %wr: tensor<16x8xf32>) {
  // expected-error @below {{'moe.route_dispatch' op strategy expert_choice decides with every token and cannot be fused; expected a strategy that decides token by token}}
  %0:5 = moe.route_dispatch %x router(%wr : tensor<16x8xf32>) experts = <compute = 8> k = 2 strategy = expert_choice<capacity_factor = 1.0> : tensor<?x16xf32> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x16xf32>, tensor<9xi32>, tensor<?x2xi32>
  return
}

// -----

// [fusion] capacity needs every token before deciding.
func.func @fused_capacity(%x: tensor<?x16xf32>, %wr: tensor<16x8xf32>) {
  // expected-error @below {{'moe.route_dispatch' op attribute 'capacity' needs every token before deciding and cannot be fused; expected no capacity}}
  %0:5 = moe.route_dispatch %x router(%wr : tensor<16x8xf32>) experts = <compute = 8> k = 2 strategy = top_k capacity = <factor = 1.0, priority = score> : tensor<?x16xf32> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x16xf32>, tensor<9xi32>, tensor<?x2xi32>
  return
}

// -----

// [shapes] the fused op's offsets cover the compute experts.
func.func @fused_offsets(%x: tensor<?x16xf32>, %wr: tensor<16x10xf32>) {
  // expected-error @below {{'moe.route_dispatch' op result 'offsets' dimension 0 must be E+1 = 9 (E from attribute 'experts'), got 11}}
  %0:5 = moe.route_dispatch %x router(%wr : tensor<16x10xf32>) experts = <compute = 8, null = 2> k = 2 strategy = top_k : tensor<?x16xf32> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x16xf32>, tensor<11xi32>, tensor<?x2xi32>
  return
}

// -----

// [k-range] the routing rules apply to the fused op too.
func.func @fused_k(%x: tensor<?x16xf32>, %wr: tensor<16x8xf32>) {
  // expected-error @below {{'moe.route_dispatch' op attribute 'k' expects 1 <= k <= S = 8}}
  %0:5 = moe.route_dispatch %x router(%wr : tensor<16x8xf32>) experts = <compute = 8> k = 9 strategy = top_k : tensor<?x16xf32> -> tensor<?x9xi32>, tensor<?x9xf32>, tensor<?x16xf32>, tensor<9xi32>, tensor<?x9xi32>
  return
}

// -----

// [fusion] a tile holds at least one token.
func.func @fused_tile(%x: tensor<?x16xf32>, %wr: tensor<16x8xf32>) {
  // expected-error @below {{'moe.route_dispatch' op attribute 'tile' expects 1 <= tile <= 65536 tokens, got 0}}
  %0:5 = moe.route_dispatch %x router(%wr : tensor<16x8xf32>) experts = <compute = 8> k = 2 strategy = top_k tile = 0 : tensor<?x16xf32> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x16xf32>, tensor<9xi32>, tensor<?x2xi32>
  return
}

// -----

// [packed] w_up holds F = 100 columns in ceil(100 / 32) = 4 panels.
func.func @packed_panels(%rows: tensor<?x64xf32>, %off: tensor<3xi32>,
                         %wu: tensor<2x3x64x32xf32>, %wd: tensor<2x2x100x32xf32>)
    -> tensor<?x64xf32> {
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %rows, %init_y_c0 : tensor<?x64xf32>
  %init_y = tensor.empty(%init_y_d0) : tensor<?x64xf32>
  // expected-error @below {{'moe.expert_ffn' op operand 'w_up' (packed) has 3 panels in dimension 1, expected ceil(F / 32) = 4 with F = 100 from operand 'w_down'}}
  %y = moe.expert_ffn %rows, %off up(%wu : tensor<2x3x64x32xf32>)
      down(%wd : tensor<2x2x100x32xf32>) activation = relu packed into(%init_y)
      : tensor<?x64xf32>, tensor<3xi32> into tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// [packed] a panel is 32 columns wide.
func.func @packed_width(%rows: tensor<?x64xf32>, %off: tensor<3xi32>,
                        %wu: tensor<2x4x64x16xf32>, %wd: tensor<2x2x100x32xf32>)
    -> tensor<?x64xf32> {
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %rows, %init_y_c0 : tensor<?x64xf32>
  %init_y = tensor.empty(%init_y_d0) : tensor<?x64xf32>
  // expected-error @below {{operand 'w_up' dimension 3 must be 32, got 16}}
  %y = moe.expert_ffn %rows, %off up(%wu : tensor<2x4x64x16xf32>)
      down(%wd : tensor<2x2x100x32xf32>) activation = relu packed into(%init_y)
      : tensor<?x64xf32>, tensor<3xi32> into tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// [packed] w_down holds H = 64 columns: ceil(64 / 32) = 2 panels.
func.func @packed_down(%x: tensor<?x64xf32>, %wr: tensor<64x4xf32>,
                       %wu: tensor<4x4x64x32xf32>, %wd: tensor<4x3x100x32xf32>)
    -> tensor<?x64xf32> {
  // expected-error @below {{'moe.layer' op operand 'w_down' (packed) has 3 panels in dimension 1, expected ceil(H / 32) = 2 with H = 64 from operand 'w_up'}}
  %y = moe.layer %x router(%wr : tensor<64x4xf32>) up(%wu : tensor<4x4x64x32xf32>)
      down(%wd : tensor<4x3x100x32xf32>) experts = <compute = 4> k = 2
      strategy = top_k activation = relu packed : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// [fusion] a tile holds at most 65536 tokens (the tiled lowering's sizes
// stay far from overflow; found by fuzzing: tile = 2^31 wrote through a null
// pointer).
func.func @fused_tile_huge(%x: tensor<?x16xf32>, %wr: tensor<16x8xf32>) {
  // expected-error @below {{'moe.route_dispatch' op attribute 'tile' expects 1 <= tile <= 65536 tokens, got 2147483648}}
  %0:5 = moe.route_dispatch %x router(%wr : tensor<16x8xf32>) experts = <compute = 8> k = 2 strategy = top_k tile = 2147483648 : tensor<?x16xf32> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x16xf32>, tensor<9xi32>, tensor<?x2xi32>
  return
}

// -----

// [size] no buffer holds more than 2^48 bytes: a static type that large is
// rejected (its allocation size would overflow past 2^63).
func.func @gate_huge_result(%x: tensor<?x64xf32>, %w: tensor<64x8xf32>) {
  %init_0 = tensor.empty() : tensor<4611686018427387904x8xf32>
  // expected-error @below {{'moe.gate' op operand 'init' of type 'tensor<4611686018427387904x8xf32>' is larger than 2^48 bytes; no buffer can hold it}}
  %0 = moe.gate %x, %w into(%init_0) : tensor<?x64xf32>, tensor<64x8xf32> into tensor<4611686018427387904x8xf32>
  return
}

// -----

// [size] the same for an operand.
func.func @ffn_huge_weights(%rows: tensor<?x64xf32>, %off: tensor<1048577xi32>, %wu: tensor<1048576x64x16777216xf32>, %wd: tensor<1048576x16777216x64xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %rows, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x64xf32>
  // expected-error @below {{'moe.expert_ffn' op operand 'w_up' of type 'tensor<1048576x64x16777216xf32>' is larger than 2^48 bytes; no buffer can hold it}}
  %0 = moe.expert_ffn %rows, %off up(%wu : tensor<1048576x64x16777216xf32>) down(%wd : tensor<1048576x16777216x64xf32>) activation = relu into(%init_0) : tensor<?x64xf32>, tensor<1048577xi32> into tensor<?x64xf32>
  return
}

// -----

// [size] with a dynamic dimension, the static ones alone must fit.
func.func @gate_huge_static_part(%x: tensor<?x64xf32>, %w: tensor<?x140737488355328xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %x, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x140737488355328xf32>
  // expected-error @below {{'moe.gate' op operand 'w' of type 'tensor<?x140737488355328xf32>' is larger than 2^48 bytes; no buffer can hold it}}
  %0 = moe.gate %x, %w into(%init_0) : tensor<?x64xf32>, tensor<?x140737488355328xf32> into tensor<?x140737488355328xf32>
  return
}

// -----

// Attribute rules hold for an attribute on its own, wherever it appears.
// expected-error @below {{#moe.top_p expects 0 < p <= 1, got p = 2}}
func.func @top_p_alone() attributes {strategy = #moe.top_p<p = 2.0>} {
  return
}

// -----

// expected-error @below {{#moe.groups expects 1 <= top <= n = 2, got top = 3}}
func.func @groups_alone() attributes {groups = #moe.groups<n = 2, top = 3>} {
  return
}

// -----

// expected-error @below {{#moe.experts expects at least one compute expert and non-negative counts, got compute = 0, null = 0, copy = 0, const = 0}}
func.func @experts_alone() attributes {experts = #moe.experts<compute = 0>} {
  return
}

// -----

// [shapes] dispatch_padded: rows_init has the hidden size of x.
func.func @dispatch_padded_hidden(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>, %r0: tensor<128x32xf32>, %o0: tensor<9xi32>, %s0: tensor<?x2xi32>) {
  // expected-error @below {{'moe.dispatch_padded' op operand 'rows_init' dimension 1 must be H = 64 (H from dimension 1 of operand 'x'), got 32}}
  %0:3 = moe.dispatch_padded %x, %ids num_experts = 8 into(%r0, %o0, %s0) : tensor<?x64xf32>, tensor<?x2xi32> into tensor<128x32xf32>, tensor<9xi32>, tensor<?x2xi32>
  return
}

// -----

// [shapes] dispatch_padded: offsets_init has E + 1 entries.
func.func @dispatch_padded_offsets(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>, %r0: tensor<128x64xf32>, %o0: tensor<8xi32>, %s0: tensor<?x2xi32>) {
  // expected-error @below {{'moe.dispatch_padded' op operand 'offsets_init' dimension 0 must be E+1 = 9 (E from attribute 'num_experts'), got 8}}
  %0:3 = moe.dispatch_padded %x, %ids num_experts = 8 into(%r0, %o0, %s0) : tensor<?x64xf32>, tensor<?x2xi32> into tensor<128x64xf32>, tensor<8xi32>, tensor<?x2xi32>
  return
}

// -----

// [shapes] dispatch_padded: slot_rows_init is [T, K].
func.func @dispatch_padded_slots(%x: tensor<4x64xf32>, %ids: tensor<4x2xi32>, %r0: tensor<128x64xf32>, %o0: tensor<9xi32>, %s0: tensor<4x3xi32>) {
  // expected-error @below {{'moe.dispatch_padded' op operand 'slot_rows_init' dimension 1 must be K = 2 (K from dimension 1 of operand 'ids'), got 3}}
  %0:3 = moe.dispatch_padded %x, %ids num_experts = 8 into(%r0, %o0, %s0) : tensor<4x64xf32>, tensor<4x2xi32> into tensor<128x64xf32>, tensor<9xi32>, tensor<4x3xi32>
  return
}

// -----

// [types] dispatch_padded: rows_init has the element type of x.
func.func @dispatch_padded_type(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>, %r0: tensor<128x64xbf16>, %o0: tensor<9xi32>, %s0: tensor<?x2xi32>) {
  // expected-error @below {{'moe.dispatch_padded' op operand 'rows_init' must have element type 'f32' (the element type of 'x'), got 'bf16'}}
  %0:3 = moe.dispatch_padded %x, %ids num_experts = 8 into(%r0, %o0, %s0) : tensor<?x64xf32>, tensor<?x2xi32> into tensor<128x64xbf16>, tensor<9xi32>, tensor<?x2xi32>
  return
}

// -----

// [schedule] lanes fill a 32-column panel with whole vectors.
// expected-error @below {{#moe.matmul_schedule expects lanes = 4, 8 or 16 (a panel of 32 columns in whole vectors), got lanes = 12}}
func.func @schedule_lanes() attributes {moe.matmul_schedule = #moe.matmul_schedule<lanes = 12>} {
  return
}

// -----

// [schedule] every field has a range.
// expected-error @below {{#moe.matmul_schedule expects 1 <= rows <= 16, got rows = 0}}
func.func @schedule_rows() attributes {moe.matmul_schedule = #moe.matmul_schedule<rows = 0>} {
  return
}

// -----

// expected-error @below {{#moe.matmul_schedule expects 0 <= depth_block <= 4096, got depth_block = -1}}
func.func @schedule_depth() attributes {moe.matmul_schedule = #moe.matmul_schedule<depth_block = -1>} {
  return
}

// -----

// expected-error @below {{#moe.matmul_schedule expects 1 <= ffn_rows <= 4096, got ffn_rows = 5000}}
func.func @schedule_ffn_rows() attributes {moe.matmul_schedule = #moe.matmul_schedule<ffn_rows = 5000>} {
  return
}

// -----

// [schedule] the pack of A is bounded.
// expected-error @below {{#moe.matmul_schedule expects chunk_rows * depth_block <= 1048576 (the f32 pack of A), got 4096 * 512}}
func.func @schedule_pack() attributes {moe.matmul_schedule = #moe.matmul_schedule<chunk_rows = 4096, depth_block = 512>} {
  return
}

// -----

// [schedule] the discardable attribute holds a schedule.
// expected-error @below {{'moe.matmul_schedule' expects a #moe.matmul_schedule attribute, got 8 : i64}}
func.func @schedule_kind() attributes {moe.matmul_schedule = 8} {
  return
}

// -----

// [schedule] fields are named once each.
// expected-error @below {{duplicate or unknown struct parameter name: rows}}
func.func @schedule_twice() attributes {s = #moe.matmul_schedule<rows = 4, rows = 2>} {
  return
}

// -----

// [quant] quantized weights are packed tiles.
func.func @quant_unpacked(%rows: tensor<?x64xf32>, %o: tensor<3xi32>, %w: tensor<2x2x2x1088xi8>, %init: tensor<?x64xf32>) {
  // expected-error @below {{'moe.expert_ffn' op 'quant = q8_0' needs 'packed': quantized weights are stored in tiles}}
  %y = moe.expert_ffn %rows, %o up(%w : tensor<2x2x2x1088xi8>) gate(%w : tensor<2x2x2x1088xi8>) down(%w : tensor<2x2x2x1088xi8>) activation = silu gated quant = q8_0 into(%init) : tensor<?x64xf32>, tensor<3xi32> into tensor<?x64xf32>
  return
}

// -----

// [quant] tiles are bytes.
func.func @quant_type(%rows: tensor<?x64xf32>, %o: tensor<3xi32>, %w: tensor<2x2x2x1088xf32>, %init: tensor<?x64xf32>) {
  // expected-error @below {{'moe.expert_ffn' op operand 'w_down' must be a tensor<E x H/32 x F/32 x 1088 x i8>, got 'tensor<2x2x2x1088xf32>'}}
  %y = moe.expert_ffn %rows, %o up(%w : tensor<2x2x2x1088xf32>) gate(%w : tensor<2x2x2x1088xf32>) down(%w : tensor<2x2x2x1088xf32>) activation = silu gated packed quant = q8_0 into(%init) : tensor<?x64xf32>, tensor<3xi32> into tensor<?x64xf32>
  return
}

// -----

// [quant] a q4_0 tile is 64 bytes of scales and 32 rows of 16 bytes.
func.func @quant_tile(%rows: tensor<?x64xf32>, %o: tensor<3xi32>, %w: tensor<2x2x2x1088xi8>, %init: tensor<?x64xf32>) {
  // expected-error @below {{'moe.expert_ffn' op operand 'w_down' dimension 3 must be 576, got 1088}}
  %y = moe.expert_ffn %rows, %o up(%w : tensor<2x2x2x1088xi8>) gate(%w : tensor<2x2x2x1088xi8>) down(%w : tensor<2x2x2x1088xi8>) activation = silu gated packed quant = q4_0 into(%init) : tensor<?x64xf32>, tensor<3xi32> into tensor<?x64xf32>
  return
}

// -----

// [quant] H is a whole number of blocks of 32.
func.func @quant_hidden(%rows: tensor<?x70xf32>, %o: tensor<3xi32>, %w: tensor<2x2x2x1088xi8>, %init: tensor<?x70xf32>) {
  // expected-error @below {{'moe.expert_ffn' op H = 70 (from dimension 1 of operand 'rows') must be a multiple of 32 for quant = q8_0}}
  %y = moe.expert_ffn %rows, %o up(%w : tensor<2x2x2x1088xi8>) gate(%w : tensor<2x2x2x1088xi8>) down(%w : tensor<2x2x2x1088xi8>) activation = silu gated packed quant = q8_0 into(%init) : tensor<?x70xf32>, tensor<3xi32> into tensor<?x70xf32>
  return
}

// -----

// [quant] the tiles' depths of w_up are H / 32 blocks.
func.func @quant_up_depth(%rows: tensor<?x64xf32>, %o: tensor<3xi32>, %wu: tensor<2x2x3x1088xi8>, %wd: tensor<2x2x2x1088xi8>, %init: tensor<?x64xf32>) {
  // expected-error @below {{'moe.expert_ffn' op operand 'w_up' dimension 2 must be H/32 = 2 (H/32 from H / 32, H from dimension 1 of operand 'rows'), got 3}}
  %y = moe.expert_ffn %rows, %o up(%wu : tensor<2x2x3x1088xi8>) gate(%wu : tensor<2x2x3x1088xi8>) down(%wd : tensor<2x2x2x1088xi8>) activation = silu gated packed quant = q8_0 into(%init) : tensor<?x64xf32>, tensor<3xi32> into tensor<?x64xf32>
  return
}

// -----

// [quant] w_up's panels and w_down's depth blocks both count F / 32.
func.func @quant_ffn(%rows: tensor<?x64xf32>, %o: tensor<3xi32>, %wu: tensor<2x3x2x1088xi8>, %wd: tensor<2x2x2x1088xi8>, %init: tensor<?x64xf32>) {
  // expected-error @below {{'moe.expert_ffn' op operand 'w_up' dimension 1 must be F/32 = 2 (F/32 from dimension 2 of operand 'w_down'), got 3}}
  %y = moe.expert_ffn %rows, %o up(%wu : tensor<2x3x2x1088xi8>) gate(%wu : tensor<2x3x2x1088xi8>) down(%wd : tensor<2x2x2x1088xi8>) activation = silu gated packed quant = q8_0 into(%init) : tensor<?x64xf32>, tensor<3xi32> into tensor<?x64xf32>
  return
}

// -----

// [quant] a bias has F = 32 x (F/32) columns.
func.func @quant_bias(%rows: tensor<?x64xf32>, %o: tensor<3xi32>, %w: tensor<2x2x2x1088xi8>, %bu: tensor<2x48xf32>, %init: tensor<?x64xf32>) {
  // expected-error @below {{'moe.expert_ffn' op operand 'b_up' dimension 1 must be F = 64 (F from 32 x F/32, F/32 from dimension 2 of operand 'w_down'), got 48}}
  %y = moe.expert_ffn %rows, %o up(%w : tensor<2x2x2x1088xi8>) down(%w : tensor<2x2x2x1088xi8>) up_bias(%bu : tensor<2x48xf32>) activation = relu packed quant = q8_0 into(%init) : tensor<?x64xf32>, tensor<3xi32> into tensor<?x64xf32>
  return
}

// -----

// [quant] moe.layer checks the same (H from x).
func.func @quant_layer(%x: tensor<?x64xf32>, %wr: tensor<64x2xf32>, %wu: tensor<2x2x4x576xi8>, %wd: tensor<2x2x2x576xi8>) {
  // expected-error @below {{'moe.layer' op operand 'w_up' dimension 2 must be H/32 = 2 (H/32 from H / 32, H from dimension 1 of operand 'x'), got 4}}
  %y = moe.layer %x router(%wr : tensor<64x2xf32>) up(%wu : tensor<2x2x4x576xi8>) gate(%wu : tensor<2x2x4x576xi8>) down(%wd : tensor<2x2x2x576xi8>) experts = <compute = 2> k = 1 strategy = top_k activation = silu gated packed quant = q4_0 : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

// [ep] The placement's last bound is the layer's E.
func.func @ep_placement_bound(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>) {
  // expected-error @below {{'moe.ep_dispatch' op placement's last bound (6) must equal 'num_experts' (8): every compute expert needs a rank}}
  %rows, %off, %slot, %plan = moe.ep_dispatch %x, %ids num_experts = 8 placement = <blocks = [0, 3, 6]> : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xi32>
  %y = moe.ep_combine %rows, %plan : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

// [ep] Placement bounds start at 0 and do not decrease.
func.func @ep_placement_order(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>) {
  // expected-error @below {{#moe.ep_placement: bound 2 (2) is below bound 1 (5): rank 1 would hold a negative number of experts}}
  %rows, %off, %slot, %plan = moe.ep_dispatch %x, %ids num_experts = 8 placement = <blocks = [0, 5, 2, 8]> : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xi32>
  return
}

// -----

// [ep] R_local and E_local are only known at run time.
func.func @ep_static_offsets(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>) {
  // expected-error @below {{'moe.ep_dispatch' op result 'offsets' must be dynamic (E_local + 1 depends on the rank), got 'tensor<9xi32>'}}
  %rows, %off, %slot, %plan = moe.ep_dispatch %x, %ids num_experts = 8 placement = <balanced> : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<9xi32>, tensor<?x2xi32>
  %y = moe.ep_combine %rows, %plan : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

// [ep] Every rank returns what it received: the plan has one moe.ep_combine.
func.func @ep_plan_unused(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>) {
  // expected-error @below {{'moe.ep_dispatch' op result 'plan' must have exactly one use (a moe.ep_combine), got 0}}
  %rows, %off, %slot, %plan = moe.ep_dispatch %x, %ids num_experts = 8 placement = <balanced> : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xi32>
  return
}

// -----

// [ep] The combine's rows have the dispatch's hidden size and element type.
func.func @ep_combine_hidden(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>, %yl: tensor<?x32xf32>) {
  %rows, %off, %slot, %plan = moe.ep_dispatch %x, %ids num_experts = 8 placement = <balanced> : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xi32>
  // expected-error @below {{'moe.ep_combine' op operand 'y_local' dimension 1 must be H = 64 (H from the hidden size of the dispatch's 'x'), got 32}}
  %y = moe.ep_combine %yl, %plan : tensor<?x32xf32> -> tensor<?x32xf32>
  return
}

// -----

// [ep] The rows are the data-dependent form.
func.func @ep_static_rows(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>) {
  // expected-error @below {{'moe.ep_dispatch' op result 'rows' must have a dynamic first dimension (R_local is data-dependent), got 'tensor<16x64xf32>'}}
  %rows, %off, %slot, %plan = moe.ep_dispatch %x, %ids num_experts = 8 placement = <balanced> : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<16x64xf32>, tensor<?xi32>, tensor<?x2xi32>
  %y = moe.ep_combine %rows, %plan : tensor<16x64xf32> -> tensor<?x64xf32>
  return
}
