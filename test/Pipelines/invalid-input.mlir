// What the pipelines cannot compile is reported with its location, never
// left half lowered.
// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-cpu-pipeline
// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-gpu-pipeline="fatbin=false"

// A function in a nested module (it used to fail with "failed to legalize
// operation 'bufferization.to_tensor'"; without moe ops it was silently
// left unlowered).
module {
  // expected-error @below {{compiles the functions of the top-level module; nested module @inner is not supported (move its functions to the top level)}}
  module @inner {
    func.func @r(%l: tensor<?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
      %ids, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k : tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
      return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
    }
  }
}

// -----

// Without moe ops too.
module {
  // expected-error @below {{nested module is not supported}}
  module {
    func.func @g(%a: tensor<?xf32>) -> tensor<?xf32> {
      return %a : tensor<?xf32>
    }
  }
}
