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
  %ids, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k : tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// A valid identifier keeps the upstream naming (no attributes).
// CHECK-LABEL: func.func @route_ok
// CHECK:       gpu.launch
// CHECK-NOT:   module(
// CHECK:       gpu.terminator
func.func @route_ok(%l: tensor<?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %ids, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k : tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// A leading digit is not an identifier either.
// CHECK-LABEL: func.func @"2nd"
// CHECK:       module(@moe_2nd_kernel) function(@moe_2nd_kernel)
func.func @"2nd"(%l: tensor<?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %ids, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k : tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}
