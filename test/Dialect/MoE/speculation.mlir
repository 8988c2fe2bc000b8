// moe ops have no memory effects (CSE and DCE apply) and are speculatable
// only when every type is static: with a dynamic size the lowering checks
// the sizes at run time, so hoisting could raise an error the program never
// reaches.
// RUN: moe-opt %s -split-input-file -loop-invariant-code-motion | FileCheck %s
// RUN: moe-opt %s -split-input-file -cse | FileCheck %s --check-prefix=CSE

// CHECK-LABEL: func.func @dynamic_stays_in_loop
// CHECK: scf.for
// CHECK-NEXT: moe.gate
func.func @dynamic_stays_in_loop(%x: tensor<?x64xf32>, %w: tensor<64x8xf32>,
                                 %n: index) -> tensor<4x8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %init = tensor.empty() : tensor<4x8xf32>
  %r = scf.for %i = %c0 to %n step %c1 iter_args(%acc = %init) -> tensor<4x8xf32> {
    // A static result of a dynamic input: checked at run time.
    %init_l = tensor.empty() : tensor<4x8xf32>
    %l = moe.gate %x, %w into(%init_l) : tensor<?x64xf32>, tensor<64x8xf32> into tensor<4x8xf32>
    scf.yield %l : tensor<4x8xf32>
  }
  return %r : tensor<4x8xf32>
}

// -----

// CHECK-LABEL: func.func @static_is_hoisted
// CHECK: moe.gate
// CHECK: scf.for
func.func @static_is_hoisted(%x: tensor<4x64xf32>, %w: tensor<64x8xf32>,
                             %n: index) -> tensor<4x8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %init = tensor.empty() : tensor<4x8xf32>
  %r = scf.for %i = %c0 to %n step %c1 iter_args(%acc = %init) -> tensor<4x8xf32> {
    %init_l = tensor.empty() : tensor<4x8xf32>
    %l = moe.gate %x, %w into(%init_l) : tensor<4x64xf32>, tensor<64x8xf32> into tensor<4x8xf32>
    scf.yield %l : tensor<4x8xf32>
  }
  return %r : tensor<4x8xf32>
}

// -----

// CSE-LABEL: func.func @cse_dynamic
// CSE: %[[L:.*]] = moe.gate
// CSE-NOT: moe.gate
// CSE: return %[[L]], %[[L]]
func.func @cse_dynamic(%x: tensor<?x64xf32>, %w: tensor<64x8xf32>)
    -> (tensor<?x8xf32>, tensor<?x8xf32>) {
  %init_a_c0 = arith.constant 0 : index
  %init_a_d0 = tensor.dim %x, %init_a_c0 : tensor<?x64xf32>
  %init_a = tensor.empty(%init_a_d0) : tensor<?x8xf32>
  %a = moe.gate %x, %w into(%init_a) : tensor<?x64xf32>, tensor<64x8xf32> into tensor<?x8xf32>
  %init_b_c0 = arith.constant 0 : index
  %init_b_d0 = tensor.dim %x, %init_b_c0 : tensor<?x64xf32>
  %init_b = tensor.empty(%init_b_d0) : tensor<?x8xf32>
  %b = moe.gate %x, %w into(%init_b) : tensor<?x64xf32>, tensor<64x8xf32> into tensor<?x8xf32>
  return %a, %b : tensor<?x8xf32>, tensor<?x8xf32>
}
