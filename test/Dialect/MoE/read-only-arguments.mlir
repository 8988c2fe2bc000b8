// RUN: moe-opt %s --moe-read-only-arguments | FileCheck %s

// Tensor arguments of public functions become read-only for bufferization;
// scalars, private functions and declarations are left alone.
// CHECK-LABEL: func.func @public_fn
// CHECK-SAME: (%{{.*}}: tensor<?xf32> {bufferization.writable = false}, %{{.*}}: f32, %{{.*}}: tensor<4xi32> {bufferization.writable = false})
func.func @public_fn(%a: tensor<?xf32>, %s: f32, %b: tensor<4xi32>) {
  return
}

// CHECK-LABEL: func.func private @private_fn
// CHECK-NOT: bufferization.writable
func.func private @private_fn(%a: tensor<?xf32>) {
  return
}
