// RUN: moe-opt %s --moe-approximate-math --split-input-file | FileCheck %s

// f32 exp, scalar or vector, becomes arithmetic (no math.exp, no libm call
// later); exponent reconstruction goes through the bits.
// CHECK-LABEL: func.func @exp_f32
// CHECK-NOT:   math.exp
// CHECK:       math.fma
// CHECK:       arith.bitcast
// CHECK-NOT:   math.exp
// CHECK:       return
func.func @exp_f32(%x: f32, %v: vector<16xf32>) -> (f32, vector<16xf32>) {
  %0 = math.exp %x : f32
  %1 = math.exp %v : vector<16xf32>
  return %0, %1 : f32, vector<16xf32>
}

// -----

// Other types and other functions are left alone.
// CHECK-LABEL: func.func @untouched
// CHECK:       math.exp %{{.*}} : f16
// CHECK:       math.exp %{{.*}} : f64
// CHECK:       math.tanh %{{.*}} : f32
func.func @untouched(%h: f16, %d: f64, %x: f32) -> (f16, f64, f32) {
  %0 = math.exp %h : f16
  %1 = math.exp %d : f64
  %2 = math.tanh %x : f32
  return %0, %1, %2 : f16, f64, f32
}
