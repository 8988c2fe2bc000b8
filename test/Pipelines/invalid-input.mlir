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
      %init_ids_c0 = arith.constant 0 : index
      %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x8xf32>
      %init_ids = tensor.empty(%init_ids_d0) : tensor<?x2xi32>
      %init_w_c0 = arith.constant 0 : index
      %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
      %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
      %ids, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k into(%init_ids, %init_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
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
