// A routing strategy of another dialect (moe_test, registered by moe-opt
// only) verifies and round-trips, but no lowering knows it: each lowering
// reports it instead of computing some other strategy.
// RUN: moe-opt %s -split-input-file | FileCheck %s --check-prefix=ROUNDTRIP
// RUN: moe-opt %s -split-input-file -convert-moe-to-loops -verify-diagnostics
// RUN: moe-opt %s -split-input-file -convert-moe-to-gpu -verify-diagnostics

// Another dialect's strategy is written in parentheses (the op's `:` would
// otherwise be read as the attribute's type).
// ROUNDTRIP-LABEL: func.func @route
// ROUNDTRIP: moe.route %{{.*}} experts = <compute = 8> k = 2 strategy = (#moe_test.unlowered_strategy) into(
func.func @route(%l: tensor<?x8xf32>) -> tensor<?x2xi32> {
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x8xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  // expected-error @below {{'moe.route' op strategy #moe_test.unlowered_strategy has no lowering in}}
  // expected-error @below {{failed to legalize operation 'moe.route'}}
  %ids, %w = moe.route %l experts = <compute = 8> k = 2 strategy = (#moe_test.unlowered_strategy) into(%init_ids, %init_w)
      : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %ids : tensor<?x2xi32>
}
