// RUN: moe-opt %s --split-input-file --convert-moe-to-loops --canonicalize --cse | FileCheck %s

// A static destination size that must equal a dynamic operand size is
// checked at run time, through the same guard as two dynamic operand sizes:
// the kernel runs only when the sizes agree; otherwise the op's code goes
// to moe_runtime_error and the destinations are zeroed (found by fuzzing: a
// smaller static T made the kernel write past the result, a larger one
// returned uninitialised rows).

// CHECK-LABEL: func.func @gate_static_tokens
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<?x8xf32>
// CHECK:      %[[T:.*]] = tensor.dim %[[X]], %c0
// CHECK:      %[[OUT:.*]] = memref.alloc() : memref<4x16xf32>
// CHECK:      %[[OK:.*]] = arith.cmpi eq, %[[T]], %c4 : index
// CHECK:      scf.if %[[OK]] {
// CHECK:      } else {
// CHECK:        %[[FLAG:.*]] = memref.get_global @moe_runtime_error
// CHECK:        memref.store %c1_i32, %[[FLAG]][]
// CHECK:        memref.store %{{.*}}, %[[OUT]]
func.func @gate_static_tokens(%x: tensor<?x8xf32>, %w: tensor<8x16xf32>) -> tensor<4x16xf32> {
  %init_0 = tensor.empty() : tensor<4x16xf32>
  %0 = moe.gate %x, %w into(%init_0) : tensor<?x8xf32>, tensor<8x16xf32> into tensor<4x16xf32>
  return %0 : tensor<4x16xf32>
}

// -----

// Both results of route: T from the logits.
// CHECK-LABEL: func.func @route_static_tokens
// CHECK-SAME: (%[[L:[a-z0-9]+]]: tensor<?x8xf32>)
// CHECK:      %[[T:.*]] = tensor.dim %[[L]], %c0
// CHECK:      %[[OK:.*]] = arith.cmpi eq, %[[T]], %c4 : index
// CHECK:      %[[BOTH:.*]] = arith.andi %[[OK]], %[[OK]]
// CHECK:      scf.if %[[BOTH]] {
// CHECK:      } else {
// CHECK:        memref.store %c2_i32
func.func @route_static_tokens(%l: tensor<?x8xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>) {
  %init_ids = tensor.empty() : tensor<4x2xi32>
  %init_w = tensor.empty() : tensor<4x2xf32>
  %ids, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k into(%init_ids, %init_w) : tensor<?x8xf32> into tensor<4x2xi32>, tensor<4x2xf32>
  return %ids, %w : tensor<4x2xi32>, tensor<4x2xf32>
}

// -----

// dispatch: slot_rows [T, K] with a static K from ids of dynamic K, rows
// [R, H] with a static H from x of dynamic H; the padded R_max is not a
// derived size and is not checked.
// CHECK-LABEL: func.func @dispatch_static_slots
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<?x?xf32>, %[[IDS:[a-z0-9]+]]: tensor<?x?xi32>)
// CHECK-DAG:  %[[T:.*]] = tensor.dim %[[X]], %c0
// CHECK-DAG:  %[[H:.*]] = tensor.dim %[[X]], %c1
// CHECK-DAG:  %[[K:.*]] = tensor.dim %[[IDS]], %c1
// CHECK-DAG:  arith.cmpi eq, %[[H]], %c16 : index
// CHECK-DAG:  arith.cmpi eq, %[[K]], %c2 : index
// CHECK-NOT:  arith.cmpi eq, %{{.*}}, %c64 : index
// CHECK:      scf.if %{{.*}} -> (memref<64x16xf32>, memref<9xi32>, memref<?x2xi32>)
func.func @dispatch_static_slots(%x: tensor<?x?xf32>, %ids: tensor<?x?xi32>) -> (tensor<64x16xf32>, tensor<9xi32>, tensor<?x2xi32>) {
  %rows, %off, %slots = moe.dispatch %x, %ids num_experts = 8 : tensor<?x?xf32>, tensor<?x?xi32> -> tensor<64x16xf32>, tensor<9xi32>, tensor<?x2xi32>
  return %rows, %off, %slots : tensor<64x16xf32>, tensor<9xi32>, tensor<?x2xi32>
}

// -----

// expert_ffn: R and H of the destination from the rows; a mismatch stores
// the op's error code and zeroes the destination.
// CHECK-LABEL: func.func @ffn_static_rows
// CHECK-SAME: (%[[ROWS:[a-z0-9]+]]: tensor<?x64xf32>
// CHECK:      %[[R:.*]] = tensor.dim %[[ROWS]], %c0
// CHECK:      %[[OUT:.*]] = memref.alloc() : memref<5x64xf32>
// CHECK:      %[[OK:.*]] = arith.cmpi eq, %[[R]], %c5 : index
// CHECK:      scf.if %[[OK]] {
// CHECK:      } else {
// CHECK:        memref.store %c5_i32
// CHECK:        memref.store %{{.*}}, %[[OUT]]
func.func @ffn_static_rows(%rows: tensor<?x64xf32>, %off: tensor<9xi32>, %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>) -> tensor<5x64xf32> {
  %init_y = tensor.empty() : tensor<5x64xf32>
  %y = moe.expert_ffn %rows, %off up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>) activation = relu into(%init_y) : tensor<?x64xf32>, tensor<9xi32> into tensor<5x64xf32>
  return %y : tensor<5x64xf32>
}

// -----

// Static result sizes that equal static operand sizes need no check.
// CHECK-LABEL: func.func @gate_all_static
// CHECK-NOT:  moe_runtime_error
// CHECK:      return
func.func @gate_all_static(%x: tensor<4x8xf32>, %w: tensor<8x16xf32>) -> tensor<4x16xf32> {
  %init_0 = tensor.empty() : tensor<4x16xf32>
  %0 = moe.gate %x, %w into(%init_0) : tensor<4x8xf32>, tensor<8x16xf32> into tensor<4x16xf32>
  return %0 : tensor<4x16xf32>
}
