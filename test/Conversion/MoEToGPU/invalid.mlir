// RUN: moe-opt %s --convert-moe-to-gpu --split-input-file --verify-diagnostics

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

// -----

// moe.dispatch_padded has no GPU kernel yet.
func.func @dispatch_padded(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>, %r0: tensor<128x64xf32>, %o0: tensor<9xi32>, %s0: tensor<?x2xi32>) -> tensor<128x64xf32> {
  // expected-error @below {{'moe.dispatch_padded' op is not lowered to the GPU yet (use moe.dispatch with a static R_max for the padded form)}}
  %r, %o, %s = moe.dispatch_padded %x, %ids num_experts = 8 into(%r0, %o0, %s0) : tensor<?x64xf32>, tensor<?x2xi32> into tensor<128x64xf32>, tensor<9xi32>, tensor<?x2xi32>
  return %r : tensor<128x64xf32>
}

// -----

// Quantized expert weights are CPU-only for now.
func.func @quantized(%rows: tensor<?x64xf32>, %o: tensor<3xi32>, %w: tensor<2x2x2x1088xi8>,
                     %init: tensor<?x64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'moe.expert_ffn' op with quantized weights (quant = q8_0) is not lowered to the GPU yet (bind f32, f16 or bf16 weights for the GPU pipeline)}}
  %y = moe.expert_ffn %rows, %o up(%w : tensor<2x2x2x1088xi8>) gate(%w : tensor<2x2x2x1088xi8>)
      down(%w : tensor<2x2x2x1088xi8>) activation = silu gated packed quant = q8_0 into(%init)
      : tensor<?x64xf32>, tensor<3xi32> into tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
