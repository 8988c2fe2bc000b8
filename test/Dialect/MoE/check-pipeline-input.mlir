// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-check-pipeline-input="pipeline=my-pipeline" | FileCheck %s

// What the pipelines compile passes unchanged: functions of the top-level
// module, with or without moe ops.
// CHECK-LABEL: func.func @top_level
// CHECK-NEXT:    moe.gate
// CHECK-NEXT:    return
func.func @top_level(%x: tensor<4x8xf32>, %w: tensor<8x2xf32>, %init: tensor<4x2xf32>) -> tensor<4x2xf32> {
  %l = moe.gate %x, %w into(%init) : tensor<4x8xf32>, tensor<8x2xf32> into tensor<4x2xf32>
  return %l : tensor<4x2xf32>
}

// -----

// A nested module is named with its location and the pipeline.
module {
  // expected-error @below {{my-pipeline compiles the functions of the top-level module; nested module @inner is not supported (move its functions to the top level)}}
  module @inner {
    func.func @f() {
      return
    }
  }
}
