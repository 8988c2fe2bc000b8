// RUN: moe-opt %s --convert-moe-to-loops=instrument-ffn=true --split-input-file --verify-diagnostics

// The FFN counters are a global of E rows: a dynamic E is reported once, up
// front (it used to fail with "failed to legalize operation 'moe.expert_ffn'").
func.func @dynamic_experts(%rows: tensor<?x64xf32>, %off: tensor<?xi32>, %wu: tensor<?x64x128xf32>, %wd: tensor<?x128x64xf32>) -> tensor<?x64xf32> {
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %rows, %init_y_c0 : tensor<?x64xf32>
  %init_y = tensor.empty(%init_y_d0) : tensor<?x64xf32>
  // expected-error @below {{'moe.expert_ffn' op cannot be instrumented (instrument-ffn): the counters need a static number of experts, but dimension 0 of operand 'w_up' is dynamic ('tensor<?x64x128xf32>')}}
  %y = moe.expert_ffn %rows, %off up(%wu : tensor<?x64x128xf32>) down(%wd : tensor<?x128x64xf32>) activation = relu into(%init_y) : tensor<?x64xf32>, tensor<?xi32> into tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
