// RUN: moe-opt %s --convert-moe-to-gpu | FileCheck %s

// Kernels are named after the enclosing function, and the name reaches PTX,
// whose identifiers are [A-Za-z_$][A-Za-z0-9_$]*. A function whose name is
// not one gets kernels named after it with every other character replaced
// (found by fuzzing: @"x y" made the NVPTX backend abort with "Symbol name
// with unsupported characters").

// CHECK-LABEL: func.func @"x y"
// CHECK:       gpu.launch
// CHECK-SAME:  module(@moe_x_y_kernel) function(@moe_x_y_kernel)
func.func @"x y"(%l: tensor<?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x8xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %ids, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k into(%init_ids, %init_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// A valid identifier keeps the upstream naming (no attributes).
// CHECK-LABEL: func.func @route_ok
// CHECK:       gpu.launch
// CHECK-NOT:   module(
// CHECK:       gpu.terminator
func.func @route_ok(%l: tensor<?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x8xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %ids, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k into(%init_ids, %init_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// A leading digit is not an identifier either.
// CHECK-LABEL: func.func @"2nd"
// CHECK:       module(@moe_2nd_kernel) function(@moe_2nd_kernel)
func.func @"2nd"(%l: tensor<?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x8xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %ids, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k into(%init_ids, %init_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}
