// Tiling requests that the moe ops refuse, with the op's reason first (the
// transform dialect's own errors follow it).
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin %s --split-input-file --transform-interpreter --verify-diagnostics

// expert_choice: an expert picks its tokens among all of them.
func.func @expert_choice(%l: tensor<8x4xf32>) -> tensor<8x2xi32> {
  %init_ids = tensor.empty() : tensor<8x2xi32>
  %init_w = tensor.empty() : tensor<8x2xf32>
  // expected-error @below {{'moe.route' op cannot be tiled over tokens: strategy expert_choice decides with every token}}
  // expected-error @below {{faild to tile operation}}
  // expected-error @below {{failed to generate tiling loops}}
  %ids, %w = moe.route %l experts = <compute = 4> k = 2 scoring = none
      strategy = expert_choice<capacity_factor = 2.0> into(%init_ids, %init_w)
      : tensor<8x4xf32> into tensor<8x2xi32>, tensor<8x2xf32>
  return %ids : tensor<8x2xi32>
}
module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(%root: !transform.any_op {transform.readonly}) {
    %r = transform.structured.match ops{["moe.route"]} in %root : (!transform.any_op) -> !transform.any_op
    %t, %l = transform.structured.tile_using_for %r tile_sizes [4] : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    transform.yield
  }
}

// -----

// A capacity: the tokens of an expert past its capacity are dropped, in
// an order over every token.
func.func @capacity(%l: tensor<8x4xf32>) -> tensor<8x2xi32> {
  %init_ids = tensor.empty() : tensor<8x2xi32>
  %init_w = tensor.empty() : tensor<8x2xf32>
  // expected-error @below {{'moe.route' op cannot be tiled over tokens: attribute 'capacity' decides with every token}}
  // expected-error @below {{faild to tile operation}}
  // expected-error @below {{failed to generate tiling loops}}
  %ids, %w = moe.route %l experts = <compute = 4> k = 2 strategy = top_k
      capacity = <factor = 1.0, priority = score> into(%init_ids, %init_w)
      : tensor<8x4xf32> into tensor<8x2xi32>, tensor<8x2xf32>
  return %ids : tensor<8x2xi32>
}
module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(%root: !transform.any_op {transform.readonly}) {
    %r = transform.structured.match ops{["moe.route"]} in %root : (!transform.any_op) -> !transform.any_op
    %t, %l = transform.structured.tile_using_for %r tile_sizes [4] : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    transform.yield
  }
}

// -----

// dispatch_padded: the row of a slot counts every token before it.
func.func @dispatch_padded(%x: tensor<8x4xf32>, %ids: tensor<8x2xi32>, %r: tensor<16x4xf32>,
                           %o: tensor<5xi32>, %s: tensor<8x2xi32>) -> tensor<16x4xf32> {
  // expected-error @below {{'moe.dispatch_padded' op cannot be tiled over tokens}}
  // expected-error @below {{faild to tile operation}}
  // expected-error @below {{failed to generate tiling loops}}
  %rows, %offsets, %slots = moe.dispatch_padded %x, %ids num_experts = 4 into(%r, %o, %s)
      : tensor<8x4xf32>, tensor<8x2xi32> into tensor<16x4xf32>, tensor<5xi32>, tensor<8x2xi32>
  return %rows : tensor<16x4xf32>
}
module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(%root: !transform.any_op {transform.readonly}) {
    %d = transform.structured.match ops{["moe.dispatch_padded"]} in %root : (!transform.any_op) -> !transform.any_op
    %t, %l = transform.structured.tile_using_for %d tile_sizes [4] : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    transform.yield
  }
}
