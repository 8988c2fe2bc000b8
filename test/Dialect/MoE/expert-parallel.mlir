// RUN: moe-opt %s --moe-decompose-layer --moe-expert-parallel --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-decompose-layer --moe-expert-parallel="placement=0,3,8" --split-input-file | FileCheck %s --check-prefix=BLOCKS

// A layer in an outlined function called from the entry: the chain becomes
// the exchange pair, and the expert weights become each rank's block in both
// functions (first dimension dynamic, marked with moe.ep_experts).
// CHECK-LABEL: func.func private @layer
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xf32>, %[[WR:.*]]: tensor<64x12xf32>, %[[WU:.*]]: tensor<?x64x128xf32> {moe.ep_experts = 8 : i64}, %[[WG:.*]]: tensor<?x64x128xf32> {moe.ep_experts = 8 : i64}, %[[WD:.*]]: tensor<?x128x64xf32> {moe.ep_experts = 8 : i64})
// CHECK:      %[[IDS:.*]], %[[WTS:.*]] = moe.route
// CHECK-NEXT: %[[ROWS:.*]], %[[OFF:.*]], %[[SLOT:.*]], %[[PLAN:.*]] = moe.ep_dispatch %[[X]], %[[IDS]] num_experts = 8 placement = <balanced> : tensor<?x64xf32>, tensor<?x4xi32> -> tensor<?x64xf32>, tensor<?xi32>, tensor<?x4xi32>
// CHECK-NEXT: %[[R:.*]] = tensor.dim %[[ROWS]]
// CHECK-NEXT: %[[INIT:.*]] = tensor.empty(%[[R]]) : tensor<?x64xf32>
// CHECK-NEXT: %[[YL:.*]] = moe.expert_ffn %[[ROWS]], %[[OFF]] up(%[[WU]] : tensor<?x64x128xf32>) gate(%[[WG]] : tensor<?x64x128xf32>) down(%[[WD]] : tensor<?x128x64xf32>) activation = silu gated into(%[[INIT]]) : tensor<?x64xf32>, tensor<?xi32> into tensor<?x64xf32>
// CHECK-NEXT: %[[Y:.*]] = moe.ep_combine %[[YL]], %[[PLAN]] : tensor<?x64xf32> -> tensor<?x64xf32>
// CHECK:      moe.combine %[[Y]], %[[SLOT]], %[[IDS]], %[[WTS]], %[[X]] experts = <compute = 8, null = 4>
// CHECK-NOT:  moe.dispatch
// CHECK-LABEL: func.func @forward
// CHECK-SAME: %{{.*}}: tensor<?x64x128xf32> {moe.ep_experts = 8 : i64}, %{{.*}}: tensor<?x64x128xf32> {moe.ep_experts = 8 : i64}, %{{.*}}: tensor<?x128x64xf32> {moe.ep_experts = 8 : i64})
// CHECK:      call @layer({{.*}}) : (tensor<?x64xf32>, tensor<64x12xf32>, tensor<?x64x128xf32>, tensor<?x64x128xf32>, tensor<?x128x64xf32>) -> tensor<?x64xf32>
// BLOCKS-LABEL: func.func private @layer
// BLOCKS: moe.ep_dispatch {{.*}} placement = <blocks = [0, 3, 8]>
func.func private @layer(%x: tensor<?x64xf32>, %wr: tensor<64x12xf32>,
                         %wu: tensor<8x64x128xf32>, %wg: tensor<8x64x128xf32>,
                         %wd: tensor<8x128x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer %x router(%wr : tensor<64x12xf32>)
      up(%wu : tensor<8x64x128xf32>) gate(%wg : tensor<8x64x128xf32>)
      down(%wd : tensor<8x128x64xf32>)
      experts = <compute = 8, null = 4> k = 4 strategy = top_k
      normalize = non_null activation = silu gated
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

func.func @forward(%x: tensor<?x64xf32>, %wr: tensor<64x12xf32>,
                   %wu: tensor<8x64x128xf32>, %wg: tensor<8x64x128xf32>,
                   %wd: tensor<8x128x64xf32>) -> tensor<?x64xf32> {
  %y = func.call @layer(%x, %wr, %wu, %wg, %wd)
      : (tensor<?x64xf32>, tensor<64x12xf32>, tensor<8x64x128xf32>,
         tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Two layers in one function: two exchange pairs, in program order.
// CHECK-LABEL: func.func @two_layers
// CHECK: moe.ep_dispatch
// CHECK: moe.ep_combine
// CHECK: moe.combine
// CHECK: moe.ep_dispatch
// CHECK: moe.ep_combine
// CHECK: moe.combine
// BLOCKS-LABEL: func.func @two_layers
func.func @two_layers(%x: tensor<?x64xf32>, %wr: tensor<64x8xf32>,
                      %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>)
    -> tensor<?x64xf32> {
  %y = moe.layer %x router(%wr : tensor<64x8xf32>)
      up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>)
      experts = <compute = 8> k = 2 strategy = top_k activation = relu
      : tensor<?x64xf32> -> tensor<?x64xf32>
  %z = moe.layer %y router(%wr : tensor<64x8xf32>)
      up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>)
      experts = <compute = 8> k = 2 strategy = top_k activation = relu
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %z : tensor<?x64xf32>
}

// -----

// Identical layers share stacked weights [L, E, ...] that each layer slices
// (what the exporters emit): the stack holds the rank's experts in dimension
// 1, and the slice takes all of them.
// CHECK-LABEL: func.func @stacked
// CHECK-SAME: %[[WU:[a-z0-9]+]]: tensor<2x?x64x128xf32> {moe.ep_expert_dim = 1 : i64, moe.ep_experts = 8 : i64}
// CHECK:      %[[C1:.*]] = arith.constant 1 : index
// CHECK:      %[[E:.*]] = tensor.dim %[[WU]], %[[C1]] : tensor<2x?x64x128xf32>
// CHECK:      %[[S:.*]] = tensor.extract_slice %[[WU]][%{{.*}}, 0, 0, 0] [1, %[[E]], 64, 128] [1, 1, 1, 1] : tensor<2x?x64x128xf32> to tensor<?x64x128xf32>
// CHECK:      moe.expert_ffn %{{.*}}, %{{.*}} up(%[[S]] : tensor<?x64x128xf32>)
// BLOCKS-LABEL: func.func @stacked
func.func @stacked(%x: tensor<?x64xf32>, %wr: tensor<64x8xf32>,
                   %wu: tensor<2x8x64x128xf32>, %wd: tensor<8x128x64xf32>,
                   %i: index) -> tensor<?x64xf32> {
  %s = tensor.extract_slice %wu[%i, 0, 0, 0] [1, 8, 64, 128] [1, 1, 1, 1]
      : tensor<2x8x64x128xf32> to tensor<8x64x128xf32>
  %y = moe.layer %x router(%wr : tensor<64x8xf32>)
      up(%s : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>)
      experts = <compute = 8> k = 2 strategy = top_k activation = relu
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
