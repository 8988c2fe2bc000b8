// RUN: moe-opt %s --moe-decompose-layer --split-input-file | FileCheck %s

// Plain top-2 MoE with static T: every part, its types and its operands.
// CHECK-LABEL: func.func @top_k
// CHECK-SAME: (%[[X:.*]]: tensor<16x64xf32>, %[[WR:.*]]: tensor<64x8xf32>, %[[WU:.*]]: tensor<8x64x128xf32>, %[[WG:.*]]: tensor<8x64x128xf32>, %[[WD:.*]]: tensor<8x128x64xf32>)
// The destinations are new tensor.empty ops, sized from the operands.
// CHECK:      %[[LINIT:.*]] = tensor.empty() : tensor<16x8xf32>
// CHECK-NEXT: %[[LOGITS:.*]] = moe.gate %[[X]], %[[WR]] into(%[[LINIT]]) : tensor<16x64xf32>, tensor<64x8xf32> into tensor<16x8xf32>
// CHECK-NEXT: %[[IINIT:.*]] = tensor.empty() : tensor<16x2xi32>
// CHECK-NEXT: %[[WINIT:.*]] = tensor.empty() : tensor<16x2xf32>
// CHECK-NEXT: %[[IDS:.*]], %[[WTS:.*]] = moe.route %[[LOGITS]] experts = <compute = 8> k = 2 strategy = top_k normalize = selected into(%[[IINIT]], %[[WINIT]]) : tensor<16x8xf32> into tensor<16x2xi32>, tensor<16x2xf32>
// CHECK-NEXT: %[[ROWS:.*]], %[[OFF:.*]], %[[SLOT:.*]] = moe.dispatch %[[X]], %[[IDS]] num_experts = 8 : tensor<16x64xf32>, tensor<16x2xi32> -> tensor<?x64xf32>, tensor<9xi32>, tensor<16x2xi32>
// CHECK-NEXT: %[[R:.*]] = tensor.dim %[[ROWS]], %{{.*}} : tensor<?x64xf32>
// CHECK-NEXT: %[[YINIT:.*]] = tensor.empty(%[[R]]) : tensor<?x64xf32>
// CHECK-NEXT: %[[Y:.*]] = moe.expert_ffn %[[ROWS]], %[[OFF]] up(%[[WU]] : tensor<8x64x128xf32>) gate(%[[WG]] : tensor<8x64x128xf32>) down(%[[WD]] : tensor<8x128x64xf32>) activation = silu gated into(%[[YINIT]]) : tensor<?x64xf32>, tensor<9xi32> into tensor<?x64xf32>
// CHECK-NEXT: %[[EMPTY:.*]] = tensor.empty() : tensor<16x64xf32>
// CHECK-NEXT: %[[OUT:.*]] = moe.combine %[[Y]], %[[SLOT]], %[[IDS]], %[[WTS]], %[[X]] experts = <compute = 8> into(%[[EMPTY]]) : tensor<?x64xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xf32>, tensor<16x64xf32> into tensor<16x64xf32>
// CHECK-NEXT: return %[[OUT]]
// CHECK-NOT: moe.layer
func.func @top_k(%x: tensor<16x64xf32>, %wr: tensor<64x8xf32>,
                 %wu: tensor<8x64x128xf32>, %wg: tensor<8x64x128xf32>,
                 %wd: tensor<8x128x64xf32>) -> tensor<16x64xf32> {
  %y = moe.layer %x router(%wr : tensor<64x8xf32>)
      up(%wu : tensor<8x64x128xf32>) gate(%wg : tensor<8x64x128xf32>)
      down(%wd : tensor<8x128x64xf32>)
      experts = <compute = 8> k = 2 strategy = top_k normalize = selected
      activation = silu gated : tensor<16x64xf32> -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// -----

// AdaMoE: null experts widen the router; only the E compute experts are
// dispatched (num_experts = 8, offsets of 9), the combine keeps the space.
// CHECK-LABEL: func.func @adamoe_null_experts
// CHECK:      moe.gate %{{.*}}, %{{.*}} into(%{{.*}}) : tensor<?x64xf32>, tensor<64x12xf32> into tensor<?x12xf32>
// CHECK:      moe.route %{{.*}} experts = <compute = 8, null = 4> k = 4 strategy = top_k normalize = non_null into(%{{.*}}) : tensor<?x12xf32> into tensor<?x4xi32>, tensor<?x4xf32>
// CHECK-NEXT: moe.dispatch %{{.*}}, %{{.*}} num_experts = 8 : tensor<?x64xf32>, tensor<?x4xi32> -> tensor<?x64xf32>, tensor<9xi32>, tensor<?x4xi32>
// CHECK-NEXT: tensor.dim
// CHECK-NEXT: tensor.empty
// CHECK-NEXT: moe.expert_ffn
// CHECK-NEXT: %[[T:.*]] = tensor.dim %{{.*}}, %{{.*}} : tensor<?x64xf32>
// CHECK-NEXT: %[[EMPTY:.*]] = tensor.empty(%[[T]]) : tensor<?x64xf32>
// CHECK-NEXT: moe.combine {{.*}} experts = <compute = 8, null = 4> into(%[[EMPTY]]) : {{.*}} into tensor<?x64xf32>
func.func @adamoe_null_experts(%x: tensor<?x64xf32>, %wr: tensor<64x12xf32>,
                               %wu: tensor<8x64x128xf32>,
                               %wg: tensor<8x64x128xf32>,
                               %wd: tensor<8x128x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer %x router(%wr : tensor<64x12xf32>)
      up(%wu : tensor<8x64x128xf32>) gate(%wg : tensor<8x64x128xf32>)
      down(%wd : tensor<8x128x64xf32>)
      experts = <compute = 8, null = 4> k = 4 strategy = top_k
      normalize = non_null activation = silu gated
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Every strategy moves to moe.route with its parameters.
// CHECK-LABEL: func.func @strategies
// CHECK: moe.route %{{.*}} experts = <compute = 8> k = 4 strategy = top_p<p = 6.000000e-01> normalize = selected into(
// CHECK: moe.route %{{.*}} experts = <compute = 8> k = 4 scoring = sigmoid strategy = adaptive<tau = 2.500000e-01> into(
// CHECK: moe.route %{{.*}} experts = <compute = 8> k = 4 scoring = none strategy = threshold<tau = -1.000000e+00, k_min = 1> scale = 2.000000e+00 into(
// CHECK: moe.route %{{.*}} experts = <compute = 8> k = 4 strategy = expert_choice<capacity_factor = 2.000000e+00> into(
// CHECK-NOT: moe.layer
func.func @strategies(%x: tensor<?x64xf32>, %wr: tensor<64x8xf32>,
                      %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>)
    -> (tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>,
        tensor<?x64xf32>) {
  %0 = moe.layer %x router(%wr : tensor<64x8xf32>)
      up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>)
      experts = <compute = 8> k = 4 strategy = top_p<p = 0.6>
      normalize = selected activation = relu
      : tensor<?x64xf32> -> tensor<?x64xf32>
  %1 = moe.layer %x router(%wr : tensor<64x8xf32>)
      up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>)
      experts = <compute = 8> k = 4 scoring = sigmoid
      strategy = adaptive<tau = 0.25> activation = relu
      : tensor<?x64xf32> -> tensor<?x64xf32>
  %2 = moe.layer %x router(%wr : tensor<64x8xf32>)
      up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>)
      experts = <compute = 8> k = 4 scoring = none
      strategy = threshold<tau = -1.0, k_min = 1> scale = 2.0
      activation = relu : tensor<?x64xf32> -> tensor<?x64xf32>
  %3 = moe.layer %x router(%wr : tensor<64x8xf32>)
      up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>)
      experts = <compute = 8> k = 4
      strategy = expert_choice<capacity_factor = 2.0> activation = relu
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %0, %1, %2, %3
      : tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>
}

// -----

// dynamic_k: k_per_token goes to moe.route.
// CHECK-LABEL: func.func @dynamic_k
// CHECK-SAME: %[[KPT:[a-zA-Z0-9]+]]: tensor<?xi32>
// CHECK: moe.route %{{.*}} k_per_token(%[[KPT]] : tensor<?xi32>) experts = <compute = 8, null = 8> k = 8 strategy = dynamic_k normalize = non_null into(
func.func @dynamic_k(%x: tensor<?x64xf32>, %wr: tensor<64x16xf32>,
                     %kpt: tensor<?xi32>, %wu: tensor<8x64x128xf32>,
                     %wg: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>)
    -> tensor<?x64xf32> {
  %y = moe.layer %x router(%wr : tensor<64x16xf32>)
      k_per_token(%kpt : tensor<?xi32>) up(%wu : tensor<8x64x128xf32>)
      gate(%wg : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>)
      experts = <compute = 8, null = 8> k = 8 strategy = dynamic_k
      normalize = non_null activation = silu gated
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// DeepSeek-V3 style: router bias, selection bias, sigmoid, groups, scale,
// capacity; the router bias goes to the gate, the selection bias to the
// route.
// CHECK-LABEL: func.func @deepseek_style
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xf32>, %[[WR:.*]]: tensor<64x16xf32>, %[[BR:.*]]: tensor<16xf32>, %[[SB:.*]]: tensor<16xf32>,
// CHECK:      %[[L:.*]] = moe.gate %[[X]], %[[WR]] bias(%[[BR]] : tensor<16xf32>)
// CHECK:      moe.route %[[L]] bias(%[[SB]] : tensor<16xf32>) experts = <compute = 16> k = 4 scoring = sigmoid strategy = top_k normalize = selected scale = 2.500000e+00 capacity = <factor = 1.500000e+00, priority = position> groups = <n = 4, top = 2> into(
func.func @deepseek_style(%x: tensor<?x64xf32>, %wr: tensor<64x16xf32>,
                          %br: tensor<16xf32>, %sb: tensor<16xf32>,
                          %wu: tensor<16x64x32xf32>, %wg: tensor<16x64x32xf32>,
                          %wd: tensor<16x32x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer %x router(%wr : tensor<64x16xf32>)
      router_bias(%br : tensor<16xf32>) bias(%sb : tensor<16xf32>)
      up(%wu : tensor<16x64x32xf32>) gate(%wg : tensor<16x64x32xf32>)
      down(%wd : tensor<16x32x64xf32>)
      experts = <compute = 16> k = 4 scoring = sigmoid strategy = top_k
      normalize = selected scale = 2.5
      capacity = <factor = 1.5, priority = position> groups = <n = 4, top = 2>
      activation = silu gated : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// MoE++: zero, copy and constant experts; the constant experts' operands go
// to the combine. Non-gated FFN with biases and gelu.
// CHECK-LABEL: func.func @moepp_zero_copy_const
// CHECK-SAME: %[[BU:[a-zA-Z0-9]+]]: tensor<8x128xf32>, %[[BD:[a-zA-Z0-9]+]]: tensor<8x64xf32>, %[[WC:[a-zA-Z0-9]+]]: tensor<2x64x2xf32>, %[[V:[a-zA-Z0-9]+]]: tensor<2x64xf32>
// CHECK:      moe.route %{{.*}} experts = <compute = 8, null = 1, copy = 1, const = 2> k = 2 strategy = top_k normalize = non_null into({{.*}}) : tensor<?x12xf32>
// CHECK-NEXT: moe.dispatch {{.*}} num_experts = 8 :
// CHECK:      moe.expert_ffn {{.*}} up_bias(%[[BU]] : tensor<8x128xf32>) down_bias(%[[BD]] : tensor<8x64xf32>) activation = gelu into(
// CHECK:      moe.combine {{.*}} const_proj(%[[WC]] : tensor<2x64x2xf32>) const_values(%[[V]] : tensor<2x64xf32>) experts = <compute = 8, null = 1, copy = 1, const = 2> into(
func.func @moepp_zero_copy_const(%x: tensor<?x64xf32>, %wr: tensor<64x12xf32>,
    %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>,
    %bu: tensor<8x128xf32>, %bd: tensor<8x64xf32>, %wc: tensor<2x64x2xf32>,
    %v: tensor<2x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer %x router(%wr : tensor<64x12xf32>)
      up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>)
      up_bias(%bu : tensor<8x128xf32>) down_bias(%bd : tensor<8x64xf32>)
      const_proj(%wc : tensor<2x64x2xf32>) const_values(%v : tensor<2x64xf32>)
      experts = <compute = 8, null = 1, copy = 1, const = 2> k = 2
      strategy = top_k normalize = non_null activation = gelu
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Copy experts only (no constant operands).
// CHECK-LABEL: func.func @copy_only
// CHECK: moe.route %{{.*}} experts = <compute = 4, copy = 2> k = 2 strategy = top_k into(
// CHECK: moe.dispatch {{.*}} num_experts = 4 : {{.*}} -> tensor<?x32xf32>, tensor<5xi32>,
// CHECK: moe.combine %{{[^ ]*}}, %{{[^ ]*}}, %{{[^ ]*}}, %{{[^ ]*}}, %{{[^ ]*}} experts = <compute = 4, copy = 2> into(
func.func @copy_only(%x: tensor<?x32xf32>, %wr: tensor<32x6xf32>,
                     %wu: tensor<4x32x16xf32>, %wd: tensor<4x16x32xf32>)
    -> tensor<?x32xf32> {
  %y = moe.layer %x router(%wr : tensor<32x6xf32>)
      up(%wu : tensor<4x32x16xf32>) down(%wd : tensor<4x16x32xf32>)
      experts = <compute = 4, copy = 2> k = 2 strategy = top_k
      activation = gelu_tanh : tensor<?x32xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// bf16 activations and weights: logits and route weights stay f32, rows and
// the FFN output keep bf16.
// CHECK-LABEL: func.func @bf16
// CHECK: moe.gate {{.*}} into(%{{.*}}) : tensor<?x64xbf16>, tensor<64x8xbf16> into tensor<?x8xf32>
// CHECK: moe.route {{.*}} into(%{{.*}}) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
// CHECK: moe.dispatch {{.*}} : tensor<?x64xbf16>, tensor<?x2xi32> -> tensor<?x64xbf16>, tensor<9xi32>, tensor<?x2xi32>
// CHECK: moe.expert_ffn {{.*}} : tensor<?x64xbf16>, tensor<9xi32> into tensor<?x64xbf16>
// CHECK: moe.combine {{.*}} into tensor<?x64xbf16>
func.func @bf16(%x: tensor<?x64xbf16>, %wr: tensor<64x8xbf16>,
                %wu: tensor<8x64x128xbf16>, %wg: tensor<8x64x128xbf16>,
                %wd: tensor<8x128x64xbf16>) -> tensor<?x64xbf16> {
  %y = moe.layer %x router(%wr : tensor<64x8xbf16>)
      up(%wu : tensor<8x64x128xbf16>) gate(%wg : tensor<8x64x128xbf16>)
      down(%wd : tensor<8x128x64xbf16>)
      experts = <compute = 8> k = 2 strategy = top_k activation = silu gated
      : tensor<?x64xbf16> -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// Two stacked layers and ops around them: only the layers change.
// CHECK-LABEL: func.func @two_layers
// CHECK: %[[A:.*]] = moe.combine
// CHECK: %[[SUM:.*]] = arith.addf %[[A]], %{{.*}} : tensor<4x16xf32>
// CHECK: moe.gate %[[SUM]],
// CHECK: %[[B:.*]] = moe.combine
// CHECK: return %[[B]]
// CHECK-NOT: moe.layer
func.func @two_layers(%x: tensor<4x16xf32>, %wr: tensor<16x4xf32>,
                      %wu: tensor<4x16x8xf32>, %wd: tensor<4x8x16xf32>)
    -> tensor<4x16xf32> {
  %0 = moe.layer %x router(%wr : tensor<16x4xf32>) up(%wu : tensor<4x16x8xf32>)
      down(%wd : tensor<4x8x16xf32>) experts = <compute = 4> k = 1
      strategy = top_k activation = relu : tensor<4x16xf32> -> tensor<4x16xf32>
  %1 = arith.addf %0, %x : tensor<4x16xf32>
  %2 = moe.layer %1 router(%wr : tensor<16x4xf32>) up(%wu : tensor<4x16x8xf32>)
      down(%wd : tensor<4x8x16xf32>) experts = <compute = 4> k = 1
      strategy = top_k activation = relu : tensor<4x16xf32> -> tensor<4x16xf32>
  return %2 : tensor<4x16xf32>
}

// -----

// Packed weights pass to moe.expert_ffn unchanged.
// CHECK-LABEL: func.func @packed
// CHECK: moe.expert_ffn {{.*}} activation = silu gated packed
func.func @packed(%x: tensor<?x64xf32>, %wr: tensor<64x2xf32>, %wu: tensor<2x4x64x32xf32>,
                  %wg: tensor<2x4x64x32xf32>, %wd: tensor<2x2x100x32xf32>) -> tensor<?x64xf32> {
  %y = moe.layer %x router(%wr : tensor<64x2xf32>) up(%wu : tensor<2x4x64x32xf32>)
      gate(%wg : tensor<2x4x64x32xf32>) down(%wd : tensor<2x2x100x32xf32>)
      experts = <compute = 2> k = 1 strategy = top_k activation = silu gated packed
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Quantized weights too, with their format.
// CHECK-LABEL: func.func @quantized
// CHECK: moe.expert_ffn {{.*}} up(%{{.*}} : tensor<2x3x2x576xi8>) gate(%{{.*}} : tensor<2x3x2x576xi8>) down(%{{.*}} : tensor<2x2x3x576xi8>) activation = silu gated packed quant = q4_0
func.func @quantized(%x: tensor<?x64xf32>, %wr: tensor<64x2xf32>, %wu: tensor<2x3x2x576xi8>,
                     %wd: tensor<2x2x3x576xi8>) -> tensor<?x64xf32> {
  %y = moe.layer %x router(%wr : tensor<64x2xf32>) up(%wu : tensor<2x3x2x576xi8>)
      gate(%wu : tensor<2x3x2x576xi8>) down(%wd : tensor<2x2x3x576xi8>)
      experts = <compute = 2> k = 1 strategy = top_k activation = silu gated packed quant = q4_0
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
