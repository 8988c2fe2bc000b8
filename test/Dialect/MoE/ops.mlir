// Round trip of every op and every attribute form: custom text, generic
// text and bytecode all print back to the same custom form.
// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --mlir-print-op-generic | moe-opt | FileCheck %s
// RUN: moe-opt %s --emit-bytecode | moe-opt | FileCheck %s

// CHECK-LABEL: func.func @gate
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xf32>, %[[W:.*]]: tensor<64x12xf32>, %[[B:.*]]: tensor<12xf32>)
func.func @gate(%x: tensor<?x64xf32>, %w: tensor<64x12xf32>, %b: tensor<12xf32>)
    -> (tensor<?x12xf32>, tensor<?x12xf32>) {
  // CHECK: moe.gate %[[X]], %[[W]] into(%{{.*}}) : tensor<?x64xf32>, tensor<64x12xf32> into tensor<?x12xf32>
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %x, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x12xf32>
  %0 = moe.gate %x, %w into(%init_0) : tensor<?x64xf32>, tensor<64x12xf32> into tensor<?x12xf32>
  // CHECK: moe.gate %[[X]], %[[W]] bias(%[[B]] : tensor<12xf32>) into(%{{.*}}) : tensor<?x64xf32>, tensor<64x12xf32> into tensor<?x12xf32>
  %init_1_c0 = arith.constant 0 : index
  %init_1_d0 = tensor.dim %x, %init_1_c0 : tensor<?x64xf32>
  %init_1 = tensor.empty(%init_1_d0) : tensor<?x12xf32>
  %1 = moe.gate %x, %w bias(%b : tensor<12xf32>) into(%init_1)
      : tensor<?x64xf32>, tensor<64x12xf32> into tensor<?x12xf32>
  return %0, %1 : tensor<?x12xf32>, tensor<?x12xf32>
}

// Low-precision activations and weights; the logits are always f32.
// CHECK-LABEL: func.func @gate_low_precision
func.func @gate_low_precision(%x: tensor<16x64xbf16>, %w: tensor<64x8xf16>,
                              %b: tensor<8xbf16>) -> tensor<16x8xf32> {
  // CHECK: moe.gate %{{.*}}, %{{.*}} bias(%{{.*}} : tensor<8xbf16>) into(%{{.*}}) : tensor<16x64xbf16>, tensor<64x8xf16> into tensor<16x8xf32>
  %init_0 = tensor.empty() : tensor<16x8xf32>
  %0 = moe.gate %x, %w bias(%b : tensor<8xbf16>) into(%init_0)
      : tensor<16x64xbf16>, tensor<64x8xf16> into tensor<16x8xf32>
  return %0 : tensor<16x8xf32>
}

// Defaults (scoring = softmax, normalize = none, scale = 1.0) are elided.
// CHECK-LABEL: func.func @route_top_k
// CHECK-SAME: (%[[L:.*]]: tensor<?x8xf32>)
func.func @route_top_k(%logits: tensor<?x8xf32>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  // CHECK: %[[IDS:.*]], %[[WTS:.*]] = moe.route %[[L]] experts = <compute = 8> k = 2 strategy = top_k into(%{{.*}}) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  // CHECK: return %[[IDS]], %[[WTS]]
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %logits, %init_ids_c0 : tensor<?x8xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x2xi32>
  %init_weights_c0 = arith.constant 0 : index
  %init_weights_d0 = tensor.dim %logits, %init_weights_c0 : tensor<?x8xf32>
  %init_weights = tensor.empty(%init_weights_d0) : tensor<?x2xf32>
  %ids, %weights = moe.route %logits experts = <compute = 8> k = 2
      scoring = softmax strategy = top_k normalize = none scale = 1.0 into(%init_ids, %init_weights)
      : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %weights : tensor<?x2xi32>, tensor<?x2xf32>
}

// Every strategy, scoring and normalize mode, scale, and every expert space
// shape.
// CHECK-LABEL: func.func @route_strategies
func.func @route_strategies(%logits: tensor<?x16xf32>, %kpt: tensor<?xi32>) {
  // CHECK: experts = <compute = 12, null = 4> k = 4 strategy = top_p<p = 5.000000e-01> normalize = non_null
  %init_0_c0 = arith.constant 0 : index
  %init_0_t = tensor.dim %logits, %init_0_c0 : tensor<?x16xf32>
  %init_0_ids = tensor.empty(%init_0_t) : tensor<?x4xi32>
  %init_0_w = tensor.empty(%init_0_t) : tensor<?x4xf32>
  %0:2 = moe.route %logits experts = <compute = 12, null = 4> k = 4
      strategy = top_p<p = 0.5> normalize = non_null into(%init_0_ids, %init_0_w)
      : tensor<?x16xf32> into tensor<?x4xi32>, tensor<?x4xf32>
  // CHECK: experts = <compute = 12, null = 2, copy = 1, const = 1> k = 4 scoring = sigmoid strategy = top_p<p = 1.000000e+00> normalize = selected
  %init_1_c0 = arith.constant 0 : index
  %init_1_t = tensor.dim %logits, %init_1_c0 : tensor<?x16xf32>
  %init_1_ids = tensor.empty(%init_1_t) : tensor<?x4xi32>
  %init_1_w = tensor.empty(%init_1_t) : tensor<?x4xf32>
  %1:2 = moe.route %logits experts = <compute = 12, null = 2, copy = 1, const = 1>
      k = 4 scoring = sigmoid strategy = top_p<p = 1.0> normalize = selected into(%init_1_ids, %init_1_w)
      : tensor<?x16xf32> into tensor<?x4xi32>, tensor<?x4xf32>
  // CHECK: experts = <compute = 14, copy = 2> k = 2 scoring = none strategy = adaptive<tau = 1.000000e-01> scale = 2.500000e+00
  %init_2_c0 = arith.constant 0 : index
  %init_2_t = tensor.dim %logits, %init_2_c0 : tensor<?x16xf32>
  %init_2_ids = tensor.empty(%init_2_t) : tensor<?x2xi32>
  %init_2_w = tensor.empty(%init_2_t) : tensor<?x2xf32>
  %2:2 = moe.route %logits experts = <compute = 14, copy = 2> k = 2
      scoring = none strategy = adaptive<tau = 0.1> scale = 2.5 into(%init_2_ids, %init_2_w)
      : tensor<?x16xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  // An infinite tau keeps every expert; hexadecimal is the f32 bit pattern.
  // CHECK: experts = <compute = 15, const = 1> k = 3 strategy = adaptive<tau = 0x7F800000>
  %init_3_c0 = arith.constant 0 : index
  %init_3_t = tensor.dim %logits, %init_3_c0 : tensor<?x16xf32>
  %init_3_ids = tensor.empty(%init_3_t) : tensor<?x3xi32>
  %init_3_w = tensor.empty(%init_3_t) : tensor<?x3xf32>
  %3:2 = moe.route %logits experts = <compute = 15, const = 1> k = 3
      strategy = adaptive<tau = 0x7F800000> into(%init_3_ids, %init_3_w)
      : tensor<?x16xf32> into tensor<?x3xi32>, tensor<?x3xf32>
  // CHECK: experts = <compute = 16> k = 4 strategy = threshold<tau = -2.500000e-01, k_min = 0>
  %init_4_c0 = arith.constant 0 : index
  %init_4_t = tensor.dim %logits, %init_4_c0 : tensor<?x16xf32>
  %init_4_ids = tensor.empty(%init_4_t) : tensor<?x4xi32>
  %init_4_w = tensor.empty(%init_4_t) : tensor<?x4xf32>
  %4:2 = moe.route %logits experts = <compute = 16> k = 4
      strategy = threshold<tau = -0.25, k_min = 0> into(%init_4_ids, %init_4_w)
      : tensor<?x16xf32> into tensor<?x4xi32>, tensor<?x4xf32>
  // CHECK: moe.route %{{.*}} k_per_token(%{{.*}} : tensor<?xi32>) experts = <compute = 8, null = 8> k = 8 strategy = dynamic_k
  %init_5_c0 = arith.constant 0 : index
  %init_5_t = tensor.dim %logits, %init_5_c0 : tensor<?x16xf32>
  %init_5_ids = tensor.empty(%init_5_t) : tensor<?x8xi32>
  %init_5_w = tensor.empty(%init_5_t) : tensor<?x8xf32>
  %5:2 = moe.route %logits k_per_token(%kpt : tensor<?xi32>)
      experts = <compute = 8, null = 8> k = 8 strategy = dynamic_k into(%init_5_ids, %init_5_w)
      : tensor<?x16xf32> into tensor<?x8xi32>, tensor<?x8xf32>
  // CHECK: experts = <compute = 16> k = 2 strategy = expert_choice<capacity_factor = 1.250000e+00> normalize = selected
  %init_6_c0 = arith.constant 0 : index
  %init_6_t = tensor.dim %logits, %init_6_c0 : tensor<?x16xf32>
  %init_6_ids = tensor.empty(%init_6_t) : tensor<?x2xi32>
  %init_6_w = tensor.empty(%init_6_t) : tensor<?x2xf32>
  %6:2 = moe.route %logits experts = <compute = 16> k = 2
      strategy = expert_choice<capacity_factor = 1.25> normalize = selected into(%init_6_ids, %init_6_w)
      : tensor<?x16xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// Capacity with both priorities, groups and a selection bias.
// CHECK-LABEL: func.func @route_capacity_groups_bias
// CHECK-SAME: (%[[L:.*]]: tensor<32x16xf32>, %[[SB:.*]]: tensor<16xf32>)
func.func @route_capacity_groups_bias(%logits: tensor<32x16xf32>,
                                      %bias: tensor<16xf32>) {
  // CHECK: moe.route %[[L]] experts = <compute = 16> k = 2 strategy = top_k capacity = <factor = 1.250000e+00, priority = score>
  %init_0_ids = tensor.empty() : tensor<32x2xi32>
  %init_0_w = tensor.empty() : tensor<32x2xf32>
  %0:2 = moe.route %logits experts = <compute = 16> k = 2 strategy = top_k
      capacity = <factor = 1.25, priority = score> into(%init_0_ids, %init_0_w)
      : tensor<32x16xf32> into tensor<32x2xi32>, tensor<32x2xf32>
  // CHECK: moe.route %[[L]] experts = <compute = 16> k = 1 strategy = top_k capacity = <factor = 1.000000e+00, priority = position>
  %init_1_ids = tensor.empty() : tensor<32x1xi32>
  %init_1_w = tensor.empty() : tensor<32x1xf32>
  %1:2 = moe.route %logits experts = <compute = 16> k = 1 strategy = top_k
      capacity = <factor = 1.0, priority = position> into(%init_1_ids, %init_1_w)
      : tensor<32x16xf32> into tensor<32x1xi32>, tensor<32x1xf32>
  // CHECK: moe.route %[[L]] bias(%[[SB]] : tensor<16xf32>) experts = <compute = 16> k = 4 scoring = sigmoid strategy = top_k normalize = selected scale = 2.500000e+00 groups = <n = 4, top = 2>
  %init_2_ids = tensor.empty() : tensor<32x4xi32>
  %init_2_w = tensor.empty() : tensor<32x4xf32>
  %2:2 = moe.route %logits bias(%bias : tensor<16xf32>) experts = <compute = 16>
      k = 4 scoring = sigmoid strategy = top_k normalize = selected scale = 2.5
      groups = <n = 4, top = 2> into(%init_2_ids, %init_2_w)
      : tensor<32x16xf32> into tensor<32x4xi32>, tensor<32x4xf32>
  // The max group score (one expert per group is enough); an explicit
  // top2_sum is the default and is not printed.
  // CHECK: moe.route %[[L]] experts = <compute = 16> k = 4 scoring = sigmoid strategy = top_k groups = <n = 16, top = 4, score = max>
  %init_3_ids = tensor.empty() : tensor<32x4xi32>
  %init_3_w = tensor.empty() : tensor<32x4xf32>
  %3:2 = moe.route %logits experts = <compute = 16> k = 4 scoring = sigmoid
      strategy = top_k groups = <n = 16, top = 4, score = max> into(%init_3_ids, %init_3_w)
      : tensor<32x16xf32> into tensor<32x4xi32>, tensor<32x4xf32>
  // CHECK: moe.route %[[L]] experts = <compute = 16> k = 2 strategy = top_k groups = <n = 4, top = 1>
  // CHECK-NOT: score
  %init_4_ids = tensor.empty() : tensor<32x2xi32>
  %init_4_w = tensor.empty() : tensor<32x2xf32>
  %4:2 = moe.route %logits experts = <compute = 16> k = 2 strategy = top_k
      groups = <n = 4, top = 1, score = top2_sum> into(%init_4_ids, %init_4_w)
      : tensor<32x16xf32> into tensor<32x2xi32>, tensor<32x2xf32>
  return
}

// Dynamic R (the CPU form) and a static R_max (the padded form).
// CHECK-LABEL: func.func @dispatch
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xf32>, %[[IDS:.*]]: tensor<?x4xi32>)
func.func @dispatch(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>) {
  // CHECK: %[[ROWS:.*]], %[[OFF:.*]], %[[SLOT:.*]] = moe.dispatch %[[X]], %[[IDS]] num_experts = 8 : tensor<?x64xf32>, tensor<?x4xi32> -> tensor<?x64xf32>, tensor<9xi32>, tensor<?x4xi32>
  %rows, %offsets, %slot_rows = moe.dispatch %x, %ids num_experts = 8
      : tensor<?x64xf32>, tensor<?x4xi32>
      -> tensor<?x64xf32>, tensor<9xi32>, tensor<?x4xi32>
  // CHECK: moe.dispatch %[[X]], %[[IDS]] num_experts = 8 : tensor<?x64xf32>, tensor<?x4xi32> -> tensor<256x64xf32>, tensor<9xi32>, tensor<?x4xi32>
  %p:3 = moe.dispatch %x, %ids num_experts = 8
      : tensor<?x64xf32>, tensor<?x4xi32>
      -> tensor<256x64xf32>, tensor<9xi32>, tensor<?x4xi32>
  return
}

// The padded form in destination-passing style, with a dynamic R_max.
// CHECK-LABEL: func.func @dispatch_padded
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xf32>, %[[IDS:.*]]: tensor<?x4xi32>, %[[R0:.*]]: tensor<?x64xf32>, %[[O0:.*]]: tensor<9xi32>, %[[S0:.*]]: tensor<?x4xi32>)
func.func @dispatch_padded(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>,
                           %r0: tensor<?x64xf32>, %o0: tensor<9xi32>,
                           %s0: tensor<?x4xi32>) -> tensor<?x64xf32> {
  // CHECK: %[[ROWS:.*]], %{{.*}}, %{{.*}} = moe.dispatch_padded %[[X]], %[[IDS]] num_experts = 8 into(%[[R0]], %[[O0]], %[[S0]]) : tensor<?x64xf32>, tensor<?x4xi32> into tensor<?x64xf32>, tensor<9xi32>, tensor<?x4xi32>
  %rows, %offsets, %slot_rows = moe.dispatch_padded %x, %ids num_experts = 8
      into(%r0, %o0, %s0) : tensor<?x64xf32>, tensor<?x4xi32>
      into tensor<?x64xf32>, tensor<9xi32>, tensor<?x4xi32>
  // CHECK: return %[[ROWS]] : tensor<?x64xf32>
  return %rows : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @grouped_matmul
func.func @grouped_matmul(%lhs: tensor<?x64xbf16>, %rhs: tensor<8x64x128xbf16>,
                          %offsets: tensor<9xi32>, %init: tensor<?x128xbf16>) -> tensor<?x128xbf16> {
  // CHECK-SAME: %[[INIT:[a-z0-9]+]]: tensor<?x128xbf16>)
  // CHECK: moe.grouped_matmul %{{.*}}, %{{.*}}, %{{.*}} into(%[[INIT]]) : tensor<?x64xbf16>, tensor<8x64x128xbf16>, tensor<9xi32> into tensor<?x128xbf16>
  %0 = moe.grouped_matmul %lhs, %rhs, %offsets into(%init)
      : tensor<?x64xbf16>, tensor<8x64x128xbf16>, tensor<9xi32>
      into tensor<?x128xbf16>
  return %0 : tensor<?x128xbf16>
}

// Gated (SwiGLU) and plain FFNs with biases, every activation.
// CHECK-LABEL: func.func @expert_ffn
// CHECK-SAME: (%[[R:.*]]: tensor<?x64xf32>, %[[O:.*]]: tensor<9xi32>, %[[U:.*]]: tensor<8x64x128xf32>, %[[G:.*]]: tensor<8x64x128xf32>, %[[D:.*]]: tensor<8x128x64xf32>, %[[BU:.*]]: tensor<8x128xf32>, %[[BD:.*]]: tensor<8x64xf32>)
func.func @expert_ffn(%rows: tensor<?x64xf32>, %offsets: tensor<9xi32>,
                      %wu: tensor<8x64x128xf32>, %wg: tensor<8x64x128xf32>,
                      %wd: tensor<8x128x64xf32>, %bu: tensor<8x128xf32>,
                      %bd: tensor<8x64xf32>) {
  // CHECK: moe.expert_ffn %[[R]], %[[O]] up(%[[U]] : tensor<8x64x128xf32>) gate(%[[G]] : tensor<8x64x128xf32>) down(%[[D]] : tensor<8x128x64xf32>) activation = silu gated into(%{{.*}}) : tensor<?x64xf32>, tensor<9xi32> into tensor<?x64xf32>
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %rows, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x64xf32>
  %0 = moe.expert_ffn %rows, %offsets up(%wu : tensor<8x64x128xf32>)
      gate(%wg : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>)
      activation = silu gated into(%init_0) : tensor<?x64xf32>, tensor<9xi32> into tensor<?x64xf32>
  // CHECK: moe.expert_ffn %[[R]], %[[O]] up(%[[U]] : tensor<8x64x128xf32>) down(%[[D]] : tensor<8x128x64xf32>) up_bias(%[[BU]] : tensor<8x128xf32>) down_bias(%[[BD]] : tensor<8x64xf32>) activation = gelu into(
  %init_1_c0 = arith.constant 0 : index
  %init_1_d0 = tensor.dim %rows, %init_1_c0 : tensor<?x64xf32>
  %init_1 = tensor.empty(%init_1_d0) : tensor<?x64xf32>
  %1 = moe.expert_ffn %rows, %offsets up(%wu : tensor<8x64x128xf32>)
      down(%wd : tensor<8x128x64xf32>) up_bias(%bu : tensor<8x128xf32>)
      down_bias(%bd : tensor<8x64xf32>) activation = gelu into(%init_1)
      : tensor<?x64xf32>, tensor<9xi32> into tensor<?x64xf32>
  // CHECK: activation = gelu_tanh gated
  %init_2_c0 = arith.constant 0 : index
  %init_2_d0 = tensor.dim %rows, %init_2_c0 : tensor<?x64xf32>
  %init_2 = tensor.empty(%init_2_d0) : tensor<?x64xf32>
  %2 = moe.expert_ffn %rows, %offsets up(%wu : tensor<8x64x128xf32>)
      gate(%wg : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>)
      activation = gelu_tanh gated into(%init_2)
      : tensor<?x64xf32>, tensor<9xi32> into tensor<?x64xf32>
  // CHECK: down(%[[D]] : tensor<8x128x64xf32>) activation = relu into(
  %init_3_c0 = arith.constant 0 : index
  %init_3_d0 = tensor.dim %rows, %init_3_c0 : tensor<?x64xf32>
  %init_3 = tensor.empty(%init_3_d0) : tensor<?x64xf32>
  %3 = moe.expert_ffn %rows, %offsets up(%wu : tensor<8x64x128xf32>)
      down(%wd : tensor<8x128x64xf32>) activation = relu into(%init_3)
      : tensor<?x64xf32>, tensor<9xi32> into tensor<?x64xf32>
  return
}

// CHECK-LABEL: func.func @combine
func.func @combine(%y: tensor<?x64xf32>, %slot_rows: tensor<?x4xi32>,
                   %ids: tensor<?x4xi32>, %weights: tensor<?x4xf32>,
                   %x: tensor<?x64xf32>, %wc: tensor<2x64x2xf32>,
                   %v: tensor<2x64xf32>) {
  // CHECK: %[[INIT:.*]] = tensor.empty(%{{.*}}) : tensor<?x64xf32>
  // CHECK: moe.combine %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} experts = <compute = 8, null = 4> into(%[[INIT]]) : tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<?x64xf32> into tensor<?x64xf32>
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %x, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x64xf32>
  %0 = moe.combine %y, %slot_rows, %ids, %weights, %x
      experts = <compute = 8, null = 4> into(%init_0)
      : tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xi32>, tensor<?x4xf32>,
        tensor<?x64xf32> into tensor<?x64xf32>
  // CHECK: moe.combine {{.*}} const_proj(%{{.*}} : tensor<2x64x2xf32>) const_values(%{{.*}} : tensor<2x64xf32>) experts = <compute = 8, null = 1, copy = 1, const = 2>
  %init_1_c0 = arith.constant 0 : index
  %init_1_d0 = tensor.dim %x, %init_1_c0 : tensor<?x64xf32>
  %init_1 = tensor.empty(%init_1_d0) : tensor<?x64xf32>
  %1 = moe.combine %y, %slot_rows, %ids, %weights, %x
      const_proj(%wc : tensor<2x64x2xf32>) const_values(%v : tensor<2x64xf32>)
      experts = <compute = 8, null = 1, copy = 1, const = 2> into(%init_1)
      : tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xi32>, tensor<?x4xf32>,
        tensor<?x64xf32> into tensor<?x64xf32>
  return
}

// CHECK-LABEL: func.func @layer
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xf32>, %[[WR:.*]]: tensor<64x12xf32>,
func.func @layer(%x: tensor<?x64xf32>, %wr: tensor<64x12xf32>,
                 %wu: tensor<8x64x128xf32>, %wg: tensor<8x64x128xf32>,
                 %wd: tensor<8x128x64xf32>) -> tensor<?x64xf32> {
  // CHECK: %[[Y:.*]] = moe.layer %[[X]] router(%[[WR]] : tensor<64x12xf32>) up(%{{.*}} : tensor<8x64x128xf32>) gate(%{{.*}} : tensor<8x64x128xf32>) down(%{{.*}} : tensor<8x128x64xf32>) experts = <compute = 8, null = 4> k = 4 strategy = top_k normalize = non_null activation = silu gated : tensor<?x64xf32> -> tensor<?x64xf32>
  // CHECK: return %[[Y]]
  %y = moe.layer %x router(%wr : tensor<64x12xf32>)
      up(%wu : tensor<8x64x128xf32>) gate(%wg : tensor<8x64x128xf32>)
      down(%wd : tensor<8x128x64xf32>)
      experts = <compute = 8, null = 4> k = 4 strategy = top_k
      normalize = non_null activation = silu gated
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// Every optional operand of the layer at once.
// CHECK-LABEL: func.func @layer_all_operands
func.func @layer_all_operands(%x: tensor<?x64xbf16>, %wr: tensor<64x12xbf16>,
    %br: tensor<12xbf16>, %kpt: tensor<?xi32>, %sb: tensor<12xf32>,
    %wu: tensor<8x64x128xbf16>, %wd: tensor<8x128x64xbf16>,
    %bu: tensor<8x128xbf16>, %bd: tensor<8x64xbf16>,
    %wc: tensor<1x64x2xbf16>, %v: tensor<1x64xbf16>) -> tensor<?x64xbf16> {
  // CHECK: moe.layer %{{.*}} router(%{{.*}} : tensor<64x12xbf16>) router_bias(%{{.*}} : tensor<12xbf16>) k_per_token(%{{.*}} : tensor<?xi32>) bias(%{{.*}} : tensor<12xf32>) up(%{{.*}} : tensor<8x64x128xbf16>) down(%{{.*}} : tensor<8x128x64xbf16>) up_bias(%{{.*}} : tensor<8x128xbf16>) down_bias(%{{.*}} : tensor<8x64xbf16>) const_proj(%{{.*}} : tensor<1x64x2xbf16>) const_values(%{{.*}} : tensor<1x64xbf16>) experts = <compute = 8, null = 2, copy = 1, const = 1> k = 3 scoring = sigmoid strategy = dynamic_k normalize = selected scale = 2.000000e+00 capacity = <factor = 2.000000e+00, priority = position> activation = gelu : tensor<?x64xbf16> -> tensor<?x64xbf16>
  %y = moe.layer %x router(%wr : tensor<64x12xbf16>)
      router_bias(%br : tensor<12xbf16>) k_per_token(%kpt : tensor<?xi32>)
      bias(%sb : tensor<12xf32>) up(%wu : tensor<8x64x128xbf16>)
      down(%wd : tensor<8x128x64xbf16>) up_bias(%bu : tensor<8x128xbf16>)
      down_bias(%bd : tensor<8x64xbf16>) const_proj(%wc : tensor<1x64x2xbf16>)
      const_values(%v : tensor<1x64xbf16>)
      experts = <compute = 8, null = 2, copy = 1, const = 1> k = 3
      scoring = sigmoid strategy = dynamic_k normalize = selected scale = 2.0
      capacity = <factor = 2.0, priority = position> activation = gelu
      : tensor<?x64xbf16> -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// CHECK-LABEL: func.func @aux_loss
func.func @aux_loss(%scores: tensor<?x12xf32>, %ids: tensor<?x4xi32>)
    -> tensor<f32> {
  // CHECK: %[[INIT:.*]] = tensor.empty() : tensor<f32>
  // CHECK: moe.aux_loss %{{.*}}, %{{.*}} into(%[[INIT]]) : tensor<?x12xf32>, tensor<?x4xi32> into tensor<f32>
  %init_0 = tensor.empty() : tensor<f32>
  %0 = moe.aux_loss %scores, %ids into(%init_0)
      : tensor<?x12xf32>, tensor<?x4xi32> into tensor<f32>
  return %0 : tensor<f32>
}

// T = 0 is a legal static size.
// CHECK-LABEL: func.func @zero_tokens
func.func @zero_tokens(%logits: tensor<0x8xf32>) -> tensor<0x2xi32> {
  // CHECK: moe.route %{{.*}} experts = <compute = 8> k = 2 strategy = top_k into(%{{.*}}) : tensor<0x8xf32> into tensor<0x2xi32>, tensor<0x2xf32>
  %init_ids = tensor.empty() : tensor<0x2xi32>
  %init_weights = tensor.empty() : tensor<0x2xf32>
  %ids, %weights = moe.route %logits experts = <compute = 8> k = 2
      strategy = top_k into(%init_ids, %init_weights) : tensor<0x8xf32> into tensor<0x2xi32>, tensor<0x2xf32>
  return %ids : tensor<0x2xi32>
}

// The attributes in their full form, outside any moe op.
// CHECK-LABEL: func.func @attribute_forms
// CHECK-SAME: a = #moe.experts<compute = 4, null = 1, copy = 2, const = 3>
// CHECK-SAME: b = #moe.top_k
// CHECK-SAME: c = #moe.top_p<p = 2.500000e-01>
// CHECK-SAME: d = #moe.adaptive<tau = 0.000000e+00>
// CHECK-SAME: e = #moe.threshold<tau = 1.000000e+00, k_min = 2>
// CHECK-SAME: f = #moe.dynamic_k
// CHECK-SAME: g = #moe.expert_choice<capacity_factor = 3.000000e+00>
// CHECK-SAME: h = #moe.capacity<factor = 5.000000e-01, priority = position>
// CHECK-SAME: i = #moe.groups<n = 2, top = 1>
// CHECK-SAME: j = #moe<scoring sigmoid>
// CHECK-SAME: k = #moe<normalize non_null>
// CHECK-SAME: l = #moe<activation gelu_tanh>
// CHECK-SAME: m = #moe.top_p<p = 0.899999976>
// CHECK-SAME: n = #moe.groups<n = 4, top = 2, score = max>
// CHECK-SAME: o = #moe.matmul_schedule<lanes = 8, rows = 4, tail_rows = 0, tail_panels = 2, chunk_rows = 64, depth_block = 0, prefetch = 16, prefetch_min_rows = 2, ffn_rows = 32>
// CHECK-SAME: p = #moe.matmul_schedule<rows = 6>
// CHECK-SAME: q = #moe.matmul_schedule<>
func.func @attribute_forms() attributes {
    a = #moe.experts<compute = 4, null = 1, copy = 2, const = 3>,
    b = #moe.top_k, c = #moe.top_p<p = 0.25>, d = #moe.adaptive<tau = 0.0>,
    e = #moe.threshold<tau = 1.0, k_min = 2>, f = #moe.dynamic_k,
    g = #moe.expert_choice<capacity_factor = 3.0>,
    h = #moe.capacity<factor = 0.5, priority = position>,
    i = #moe.groups<n = 2, top = 1>, j = #moe<scoring sigmoid>,
    k = #moe<normalize non_null>, l = #moe<activation gelu_tanh>,
    m = #moe.top_p<p = 0.9>, n = #moe.groups<n = 4, top = 2, score = max>,
    o = #moe.matmul_schedule<ffn_rows = 32, lanes = 8, rows = 4, tail_rows = 0,
                             tail_panels = 2, chunk_rows = 64, depth_block = 0,
                             prefetch = 16, prefetch_min_rows = 2>,
    p = #moe.matmul_schedule<rows = 6>, q = #moe.matmul_schedule<>} {
  return
}

// The fused gating-dispatch op (level L3).
// CHECK-LABEL: func.func @route_dispatch
// CHECK: moe.route_dispatch %{{.*}} router(%{{.*}} : tensor<64x12xf32>) router_bias(%{{.*}} : tensor<12xf32>) experts = <compute = 8, null = 4> k = 4 strategy = top_p<p = 5.000000e-01> normalize = non_null tile = 16 : tensor<?x64xf32> -> tensor<?x4xi32>, tensor<?x4xf32>, tensor<?x64xf32>, tensor<9xi32>, tensor<?x4xi32>
// CHECK: moe.route_dispatch %{{.*}} router(%{{.*}} : tensor<64x12xf32>) k_per_token(%{{.*}} : tensor<?xi32>) bias(%{{.*}} : tensor<12xf32>) experts = <compute = 12> k = 2 strategy = dynamic_k : tensor<?x64xf32>
func.func @route_dispatch(%x: tensor<?x64xf32>, %wr: tensor<64x12xf32>,
                          %br: tensor<12xf32>, %kpt: tensor<?xi32>,
                          %sb: tensor<12xf32>) {
  %0:5 = moe.route_dispatch %x router(%wr : tensor<64x12xf32>)
      router_bias(%br : tensor<12xf32>) experts = <compute = 8, null = 4> k = 4
      strategy = top_p<p = 0.5> normalize = non_null tile = 16
      : tensor<?x64xf32> -> tensor<?x4xi32>, tensor<?x4xf32>, tensor<?x64xf32>,
        tensor<9xi32>, tensor<?x4xi32>
  %1:5 = moe.route_dispatch %x router(%wr : tensor<64x12xf32>)
      k_per_token(%kpt : tensor<?xi32>) bias(%sb : tensor<12xf32>)
      experts = <compute = 12> k = 2 strategy = dynamic_k
      : tensor<?x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x64xf32>,
        tensor<13xi32>, tensor<?x2xi32>
  return
}

// Packed expert weights (32-column panels): F = 100 in 4 panels, H = 64 in 2.
// CHECK-LABEL: func.func @packed
// CHECK: moe.expert_ffn %{{.*}}, %{{.*}} up(%{{.*}} : tensor<2x4x64x32xbf16>) gate(%{{.*}} : tensor<2x4x64x32xbf16>) down(%{{.*}} : tensor<2x2x100x32xbf16>) activation = silu gated packed into(%{{.*}}) : tensor<?x64xf32>, tensor<3xi32> into tensor<?x64xf32>
// CHECK: moe.layer %{{.*}} router(%{{.*}} : tensor<64x2xf32>) up(%{{.*}} : tensor<2x4x64x32xbf16>) gate(%{{.*}} : tensor<2x4x64x32xbf16>) down(%{{.*}} : tensor<2x2x100x32xbf16>) experts = <compute = 2> k = 1 strategy = top_k activation = silu gated packed : tensor<?x64xf32> -> tensor<?x64xf32>
func.func @packed(%rows: tensor<?x64xf32>, %off: tensor<3xi32>, %x: tensor<?x64xf32>,
                  %wr: tensor<64x2xf32>, %wu: tensor<2x4x64x32xbf16>,
                  %wg: tensor<2x4x64x32xbf16>, %wd: tensor<2x2x100x32xbf16>)
    -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %rows, %init_0_c0 : tensor<?x64xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x64xf32>
  %0 = moe.expert_ffn %rows, %off up(%wu : tensor<2x4x64x32xbf16>)
      gate(%wg : tensor<2x4x64x32xbf16>) down(%wd : tensor<2x2x100x32xbf16>)
      activation = silu gated packed into(%init_0) : tensor<?x64xf32>, tensor<3xi32> into tensor<?x64xf32>
  %1 = moe.layer %x router(%wr : tensor<64x2xf32>) up(%wu : tensor<2x4x64x32xbf16>)
      gate(%wg : tensor<2x4x64x32xbf16>) down(%wd : tensor<2x2x100x32xbf16>)
      experts = <compute = 2> k = 1 strategy = top_k activation = silu gated packed
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %0, %1 : tensor<?x64xf32>, tensor<?x64xf32>
}

// Quantized expert weights (GGUF q8_0 and q4_0 blocks in 32 x 32 tiles):
// H = 64 in 2 blocks, F = 96 in 3.
// CHECK-LABEL: func.func @quantized
// CHECK: moe.expert_ffn %{{.*}}, %{{.*}} up(%{{.*}} : tensor<2x3x2x1088xi8>) gate(%{{.*}} : tensor<2x3x2x1088xi8>) down(%{{.*}} : tensor<2x2x3x1088xi8>) activation = silu gated packed quant = q8_0 into(%{{.*}}) : tensor<?x64xf32>, tensor<3xi32> into tensor<?x64xf32>
// CHECK: moe.layer %{{.*}} router(%{{.*}} : tensor<64x2xf32>) up(%{{.*}} : tensor<2x3x2x576xi8>) down(%{{.*}} : tensor<2x2x3x576xi8>) experts = <compute = 2> k = 1 strategy = top_k activation = relu packed quant = q4_0 : tensor<?x64xf32> -> tensor<?x64xf32>
func.func @quantized(%rows: tensor<?x64xf32>, %off: tensor<3xi32>, %x: tensor<?x64xf32>,
                     %wr: tensor<64x2xf32>, %wu: tensor<2x3x2x1088xi8>,
                     %wd: tensor<2x2x3x1088xi8>, %wu4: tensor<2x3x2x576xi8>,
                     %wd4: tensor<2x2x3x576xi8>)
    -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  %c0 = arith.constant 0 : index
  %r = tensor.dim %rows, %c0 : tensor<?x64xf32>
  %init = tensor.empty(%r) : tensor<?x64xf32>
  %0 = moe.expert_ffn %rows, %off up(%wu : tensor<2x3x2x1088xi8>)
      gate(%wu : tensor<2x3x2x1088xi8>) down(%wd : tensor<2x2x3x1088xi8>)
      activation = silu gated packed quant = q8_0 into(%init)
      : tensor<?x64xf32>, tensor<3xi32> into tensor<?x64xf32>
  %1 = moe.layer %x router(%wr : tensor<64x2xf32>) up(%wu4 : tensor<2x3x2x576xi8>)
      down(%wd4 : tensor<2x2x3x576xi8>)
      experts = <compute = 2> k = 1 strategy = top_k activation = relu packed quant = q4_0
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %0, %1 : tensor<?x64xf32>, tensor<?x64xf32>
}

// Expert parallelism: the exchange pair, both placement forms.
// CHECK-LABEL: func.func @expert_parallel
// CHECK:      %[[ROWS:.*]], %[[OFF:.*]], %[[SLOT:.*]], %[[PLAN:.*]] = moe.ep_dispatch %{{.*}}, %{{.*}} num_experts = 8 placement = <balanced> : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xi32>
// CHECK:      moe.expert_ffn %[[ROWS]], %[[OFF]] up(%{{.*}} : tensor<?x64x128xf32>)
// CHECK:      %[[Y:.*]] = moe.ep_combine %{{.*}}, %[[PLAN]] : tensor<?x64xf32> -> tensor<?x64xf32>
// CHECK:      moe.combine %[[Y]], %[[SLOT]]
// CHECK:      moe.ep_dispatch %{{.*}}, %{{.*}} num_experts = 8 placement = <blocks = [0, 3, 8]> : tensor<4x64xbf16>, tensor<4x1xi32> -> tensor<?x64xbf16>, tensor<?xi32>, tensor<4x1xi32>
// CHECK:      moe.ep_combine %{{.*}}, %{{.*}} : tensor<?x64xbf16> -> tensor<?x64xbf16>
func.func @expert_parallel(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>,
                           %w: tensor<?x2xf32>, %wu: tensor<?x64x128xf32>,
                           %wd: tensor<?x128x64xf32>, %xb: tensor<4x64xbf16>,
                           %idsb: tensor<4x1xi32>)
    -> (tensor<?x64xf32>, tensor<?x64xbf16>) {
  %c0 = arith.constant 0 : index
  %rows, %off, %slot, %plan = moe.ep_dispatch %x, %ids num_experts = 8
      placement = <balanced>
      : tensor<?x64xf32>, tensor<?x2xi32>
      -> tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xi32>
  %r = tensor.dim %rows, %c0 : tensor<?x64xf32>
  %init = tensor.empty(%r) : tensor<?x64xf32>
  %yl = moe.expert_ffn %rows, %off up(%wu : tensor<?x64x128xf32>)
      down(%wd : tensor<?x128x64xf32>) activation = relu into(%init)
      : tensor<?x64xf32>, tensor<?xi32> into tensor<?x64xf32>
  %y = moe.ep_combine %yl, %plan : tensor<?x64xf32> -> tensor<?x64xf32>
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  %oinit = tensor.empty(%t) : tensor<?x64xf32>
  %out = moe.combine %y, %slot, %ids, %w, %x experts = <compute = 8>
      into(%oinit) : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xi32>,
      tensor<?x2xf32>, tensor<?x64xf32> into tensor<?x64xf32>
  %rb, %ob, %sb, %pb = moe.ep_dispatch %xb, %idsb num_experts = 8
      placement = <blocks = [0, 3, 8]>
      : tensor<4x64xbf16>, tensor<4x1xi32>
      -> tensor<?x64xbf16>, tensor<?xi32>, tensor<4x1xi32>
  %yb = moe.ep_combine %rb, %pb : tensor<?x64xbf16> -> tensor<?x64xbf16>
  return %out, %yb : tensor<?x64xf32>, tensor<?x64xbf16>
}
