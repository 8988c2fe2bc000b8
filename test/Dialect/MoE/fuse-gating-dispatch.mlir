// RUN: moe-opt %s --moe-fuse-gating-dispatch --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-fuse-gating-dispatch="tile=8" --split-input-file | FileCheck %s --check-prefix=TILE

// gate -> route -> dispatch on the same tokens becomes one route_dispatch
// carrying the router operands, every routing attribute and the tile; the
// route's results and the dispatch's results come from it.
// CHECK-LABEL: func.func @adamoe
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xf32>, %[[WR:.*]]: tensor<64x12xf32>, %[[BR:.*]]: tensor<12xf32>)
// CHECK-NOT:  moe.gate
// CHECK-NOT:  moe.route %
// CHECK:      %[[IDS:.*]], %[[W:.*]], %[[ROWS:.*]], %[[OFF:.*]], %[[SLOTS:.*]] = moe.route_dispatch %[[X]] router(%[[WR]] : tensor<64x12xf32>) router_bias(%[[BR]] : tensor<12xf32>) experts = <compute = 8, null = 4> k = 4 strategy = top_p<p = 6.000000e-01> normalize = non_null : tensor<?x64xf32> -> tensor<?x4xi32>, tensor<?x4xf32>, tensor<?x64xf32>, tensor<9xi32>, tensor<?x4xi32>
// CHECK-NOT:  moe.dispatch
// CHECK:      return %[[IDS]], %[[W]], %[[ROWS]], %[[OFF]], %[[SLOTS]]
// TILE:       moe.route_dispatch {{.*}} tile = 8 :
func.func @adamoe(%x: tensor<?x64xf32>, %wr: tensor<64x12xf32>, %br: tensor<12xf32>)
    -> (tensor<?x4xi32>, tensor<?x4xf32>, tensor<?x64xf32>, tensor<9xi32>, tensor<?x4xi32>) {
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %x, %init_l_c0 : tensor<?x64xf32>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x12xf32>
  %l = moe.gate %x, %wr bias(%br : tensor<12xf32>) into(%init_l)
      : tensor<?x64xf32>, tensor<64x12xf32> into tensor<?x12xf32>
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x12xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x4xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x12xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x4xf32>
  %ids, %w = moe.route %l experts = <compute = 8, null = 4> k = 4
      strategy = top_p<p = 0.6> normalize = non_null into(%init_ids, %init_w)
      : tensor<?x12xf32> into tensor<?x4xi32>, tensor<?x4xf32>
  %rows, %off, %slots = moe.dispatch %x, %ids num_experts = 8
      : tensor<?x64xf32>, tensor<?x4xi32> -> tensor<?x64xf32>, tensor<9xi32>, tensor<?x4xi32>
  return %ids, %w, %rows, %off, %slots
      : tensor<?x4xi32>, tensor<?x4xf32>, tensor<?x64xf32>, tensor<9xi32>, tensor<?x4xi32>
}

// -----

// k_per_token and the selection bias move to the fused op.
// CHECK-LABEL: func.func @dynamic_k_bias
// CHECK: moe.route_dispatch %{{.*}} router(%{{.*}}) k_per_token(%{{.*}} : tensor<?xi32>) bias(%{{.*}} : tensor<8xf32>) experts = <compute = 8> k = 2 scoring = sigmoid strategy = dynamic_k
func.func @dynamic_k_bias(%x: tensor<?x16xf32>, %wr: tensor<16x8xf32>, %k: tensor<?xi32>,
                          %b: tensor<8xf32>) -> (tensor<?x16xf32>, tensor<?x2xf32>) {
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %x, %init_l_c0 : tensor<?x16xf32>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x8xf32>
  %l = moe.gate %x, %wr into(%init_l) : tensor<?x16xf32>, tensor<16x8xf32> into tensor<?x8xf32>
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x8xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %ids, %w = moe.route %l k_per_token(%k : tensor<?xi32>) bias(%b : tensor<8xf32>)
      experts = <compute = 8> k = 2 scoring = sigmoid strategy = dynamic_k into(%init_ids, %init_w)
      : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  %rows, %off, %slots = moe.dispatch %x, %ids num_experts = 8
      : tensor<?x16xf32>, tensor<?x2xi32> -> tensor<?x16xf32>, tensor<9xi32>, tensor<?x2xi32>
  return %rows, %w : tensor<?x16xf32>, tensor<?x2xf32>
}

// -----

// Expert choice and capacity need every token before deciding: not fused.
// CHECK-LABEL: func.func @not_local
// CHECK-NOT: moe.route_dispatch
// CHECK: moe.gate
// CHECK: moe.route {{.*}} strategy = expert_choice
// CHECK: moe.dispatch
// CHECK: moe.gate
// CHECK: moe.route {{.*}} capacity = <factor = 1.250000e+00, priority = score>
// CHECK: moe.dispatch
func.func @not_local(%x: tensor<?x16xf32>, %wr: tensor<16x8xf32>)
    -> (tensor<?x16xf32>, tensor<?x16xf32>) {
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %x, %init_l_c0 : tensor<?x16xf32>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x8xf32>
  %l = moe.gate %x, %wr into(%init_l) : tensor<?x16xf32>, tensor<16x8xf32> into tensor<?x8xf32>
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x8xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %ids, %w = moe.route %l experts = <compute = 8> k = 2
      strategy = expert_choice<capacity_factor = 2.0> into(%init_ids, %init_w)
      : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  %rows, %off, %slots = moe.dispatch %x, %ids num_experts = 8
      : tensor<?x16xf32>, tensor<?x2xi32> -> tensor<?x16xf32>, tensor<9xi32>, tensor<?x2xi32>
  %init_l2_c0 = arith.constant 0 : index
  %init_l2_d0 = tensor.dim %x, %init_l2_c0 : tensor<?x16xf32>
  %init_l2 = tensor.empty(%init_l2_d0) : tensor<?x8xf32>
  %l2 = moe.gate %x, %wr into(%init_l2) : tensor<?x16xf32>, tensor<16x8xf32> into tensor<?x8xf32>
  %init_ids2_c0 = arith.constant 0 : index
  %init_ids2_d0 = tensor.dim %l2, %init_ids2_c0 : tensor<?x8xf32>
  %init_ids2 = tensor.empty(%init_ids2_d0) : tensor<?x2xi32>
  %init_w2_c0 = arith.constant 0 : index
  %init_w2_d0 = tensor.dim %l2, %init_w2_c0 : tensor<?x8xf32>
  %init_w2 = tensor.empty(%init_w2_d0) : tensor<?x2xf32>
  %ids2, %w2 = moe.route %l2 experts = <compute = 8> k = 2 strategy = top_k
      capacity = <factor = 1.25, priority = score> into(%init_ids2, %init_w2)
      : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  %rows2, %off2, %slots2 = moe.dispatch %x, %ids2 num_experts = 8
      : tensor<?x16xf32>, tensor<?x2xi32> -> tensor<?x16xf32>, tensor<9xi32>, tensor<?x2xi32>
  return %rows, %rows2 : tensor<?x16xf32>, tensor<?x16xf32>
}

// -----

// The logits have another user, or the dispatch moves other tokens: the
// [T, S] logits are needed anyway (or the chain is not one): not fused.
// CHECK-LABEL: func.func @not_a_chain
// CHECK-NOT: moe.route_dispatch
func.func @not_a_chain(%x: tensor<?x16xf32>, %y: tensor<?x16xf32>, %wr: tensor<16x8xf32>)
    -> (tensor<?x8xf32>, tensor<?x16xf32>, tensor<?x16xf32>) {
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %x, %init_l_c0 : tensor<?x16xf32>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x8xf32>
  %l = moe.gate %x, %wr into(%init_l) : tensor<?x16xf32>, tensor<16x8xf32> into tensor<?x8xf32>
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x8xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %ids, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k into(%init_ids, %init_w)
      : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  %rows, %off, %slots = moe.dispatch %x, %ids num_experts = 8
      : tensor<?x16xf32>, tensor<?x2xi32> -> tensor<?x16xf32>, tensor<9xi32>, tensor<?x2xi32>
  %init_l2_c0 = arith.constant 0 : index
  %init_l2_d0 = tensor.dim %x, %init_l2_c0 : tensor<?x16xf32>
  %init_l2 = tensor.empty(%init_l2_d0) : tensor<?x8xf32>
  %l2 = moe.gate %x, %wr into(%init_l2) : tensor<?x16xf32>, tensor<16x8xf32> into tensor<?x8xf32>
  %init_ids2_c0 = arith.constant 0 : index
  %init_ids2_d0 = tensor.dim %l2, %init_ids2_c0 : tensor<?x8xf32>
  %init_ids2 = tensor.empty(%init_ids2_d0) : tensor<?x2xi32>
  %init_w2_c0 = arith.constant 0 : index
  %init_w2_d0 = tensor.dim %l2, %init_w2_c0 : tensor<?x8xf32>
  %init_w2 = tensor.empty(%init_w2_d0) : tensor<?x2xf32>
  %ids2, %w2 = moe.route %l2 experts = <compute = 8> k = 2 strategy = top_k into(%init_ids2, %init_w2)
      : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  %rows2, %off2, %slots2 = moe.dispatch %y, %ids2 num_experts = 8
      : tensor<?x16xf32>, tensor<?x2xi32> -> tensor<?x16xf32>, tensor<9xi32>, tensor<?x2xi32>
  return %l, %rows, %rows2 : tensor<?x8xf32>, tensor<?x16xf32>, tensor<?x16xf32>
}
