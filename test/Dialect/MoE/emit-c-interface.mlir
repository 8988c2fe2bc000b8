// RUN: moe-opt %s --moe-emit-c-interface | FileCheck %s

// Public functions with bodies get llvm.emit_c_interface; private functions
// and declarations do not.
// CHECK-LABEL: func.func @public_fn
// CHECK-SAME: attributes {llvm.emit_c_interface}
func.func @public_fn(%a: tensor<?xf32>) -> tensor<?xf32> {
  return %a : tensor<?xf32>
}

// CHECK-LABEL: func.func private @private_fn
// CHECK-NOT: llvm.emit_c_interface
// CHECK-SAME: {
func.func private @private_fn(%a: tensor<?xf32>) -> tensor<?xf32> {
  return %a : tensor<?xf32>
}

// CHECK-LABEL: func.func private @declaration(tensor<?xf32>)
// CHECK-NOT: llvm.emit_c_interface
func.func private @declaration(tensor<?xf32>)
