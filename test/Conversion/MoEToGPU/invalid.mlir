// RUN: moe-opt %s --convert-moe-to-gpu --split-input-file --verify-diagnostics

// Cross-token routing steps are not lowered to the GPU yet.
func.func @capacity(%l: tensor<?x4xf32>) -> tensor<?x2xi32> {
  // expected-error @+1 {{'moe.route' op is not lowered to the GPU yet: capacity limits order slots across tokens (use the CPU pipeline)}}
  %ids, %w = moe.route %l experts = <compute = 4> k = 2 scoring = softmax strategy = top_k
      normalize = none scale = 1.0 capacity = <factor = 1.0, priority = position>
      : tensor<?x4xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  return %ids : tensor<?x2xi32>
}

// -----

func.func @expert_choice(%l: tensor<?x4xf32>) -> tensor<?x2xi32> {
  // expected-error @+1 {{'moe.route' op is not lowered to the GPU yet: expert_choice routing order slots across tokens (use the CPU pipeline)}}
  %ids, %w = moe.route %l experts = <compute = 4> k = 2 scoring = softmax
      strategy = expert_choice<capacity_factor = 1.0> normalize = none scale = 1.0
      : tensor<?x4xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  return %ids : tensor<?x2xi32>
}

// -----

// The row count of a dynamic-R dispatch is only known on the device.
func.func @escaping_rows(%x: tensor<?x8xf32>, %ids: tensor<?x2xi32>) -> tensor<?x8xf32> {
  // expected-error @+1 {{the rows of a dynamic-R moe.dispatch (or expert results computed from them) are used outside moe ops}}
  %rows, %off, %sr = moe.dispatch %x, %ids num_experts = 4
      : tensor<?x8xf32>, tensor<?x2xi32> -> tensor<?x8xf32>, tensor<5xi32>, tensor<?x2xi32>
  return %rows : tensor<?x8xf32>
}

// -----

// The padded form has a static R_max: its rows may leave.
// expected-no-diagnostics
func.func @padded_rows(%x: tensor<?x8xf32>, %ids: tensor<?x2xi32>) -> tensor<16x8xf32> {
  %rows, %off, %sr = moe.dispatch %x, %ids num_experts = 4
      : tensor<?x8xf32>, tensor<?x2xi32> -> tensor<16x8xf32>, tensor<5xi32>, tensor<?x2xi32>
  return %rows : tensor<16x8xf32>
}
