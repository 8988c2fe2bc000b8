// Generic-form ops whose 'operandSegmentSizes' give a required operand zero
// (or two) values while the sizes still sum to the operand count. ODS checks
// the sum and the optional groups; the op verifiers check the required ones
// before any accessor reads an operand (found by fuzzing: these used to read
// past the operand list).
// RUN: moe-opt %s -split-input-file -verify-diagnostics

// [segments] expert_ffn without w_down: the four operands are spread as
// rows, offsets, w_up, w_gate.
func.func @ffn_no_w_down(%rows: tensor<?x64xf32>, %off: tensor<9xi32>, %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>) {
  // expected-error @below {{'moe.expert_ffn' op operand 'w_down' is required and takes exactly 1 value, but 'operandSegmentSizes' gives it 0}}
  %0 = "moe.expert_ffn"(%rows, %off, %wu, %wd, %rows) <{activation = #moe<activation relu>, operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 0, 0, 1>}> : (tensor<?x64xf32>, tensor<9xi32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>, tensor<?x64xf32>) -> tensor<?x64xf32>
  return
}

// -----

// [segments] two values for w_up, none for w_down.
func.func @ffn_two_w_up(%rows: tensor<?x64xf32>, %off: tensor<9xi32>, %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>) {
  // expected-error @below {{'moe.expert_ffn' op operand 'w_up' is required and takes exactly 1 value, but 'operandSegmentSizes' gives it 2}}
  %0 = "moe.expert_ffn"(%rows, %off, %wu, %wd, %rows) <{activation = #moe<activation relu>, operandSegmentSizes = array<i32: 1, 1, 2, 0, 0, 0, 0, 1>}> : (tensor<?x64xf32>, tensor<9xi32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>, tensor<?x64xf32>) -> tensor<?x64xf32>
  return
}

// -----

// [segments] combine without weights; x given twice.
func.func @combine_no_weights(%y: tensor<?x64xf32>, %sr: tensor<?x2xi32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>, %x: tensor<?x64xf32>) {
  // expected-error @below {{'moe.combine' op operand 'weights' is required and takes exactly 1 value, but 'operandSegmentSizes' gives it 0}}
  %0 = "moe.combine"(%y, %sr, %ids, %w, %x, %x) <{experts = #moe.experts<compute = 8>, operandSegmentSizes = array<i32: 1, 1, 1, 0, 2, 0, 0, 1>}> : (tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x64xf32>, tensor<?x64xf32>) -> tensor<?x64xf32>
  return
}

// -----

// [segments] layer without w_down (its value counted as b_up).
func.func @layer_no_w_down(%x: tensor<?x64xf32>, %wr: tensor<64x8xf32>, %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>) {
  // expected-error @below {{'moe.layer' op operand 'w_down' is required and takes exactly 1 value, but 'operandSegmentSizes' gives it 0}}
  %0 = "moe.layer"(%x, %wr, %wu, %wd) <{activation = #moe<activation relu>, experts = #moe.experts<compute = 8>, k = 2 : i64, normalize = #moe<normalize none>, operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0>, scale = 1.000000e+00 : f32, scoring = #moe<scoring softmax>, strategy = #moe.top_k}> : (tensor<?x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<?x64xf32>
  return
}

// -----

// [segments] layer without x.
func.func @layer_no_x(%x: tensor<?x64xf32>, %wr: tensor<64x8xf32>, %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>) {
  // expected-error @below {{'moe.layer' op operand 'x' is required and takes exactly 1 value, but 'operandSegmentSizes' gives it 0}}
  %0 = "moe.layer"(%x, %wr, %wu, %wd) <{activation = #moe<activation relu>, experts = #moe.experts<compute = 8>, k = 2 : i64, normalize = #moe<normalize none>, operandSegmentSizes = array<i32: 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0>, scale = 1.000000e+00 : f32, scoring = #moe<scoring softmax>, strategy = #moe.top_k}> : (tensor<?x64xf32>, tensor<64x8xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<?x64xf32>
  return
}

// -----

// [segments] route whose only operand is counted as k_per_token.
func.func @route_no_logits(%l: tensor<?xi32>, %i: tensor<?x2xi32>, %w: tensor<?x2xf32>) {
  // expected-error @below {{'moe.route' op operand 'logits' is required and takes exactly 1 value, but 'operandSegmentSizes' gives it 0}}
  %0:2 = "moe.route"(%l, %i, %w) <{experts = #moe.experts<compute = 8>, k = 2 : i64, normalize = #moe<normalize none>, operandSegmentSizes = array<i32: 0, 1, 0, 1, 1>, scale = 1.000000e+00 : f32, scoring = #moe<scoring softmax>, strategy = #moe.dynamic_k}> : (tensor<?xi32>, tensor<?x2xi32>, tensor<?x2xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

// [segments] route_dispatch whose router weights are counted as b_router.
func.func @route_dispatch_no_router(%x: tensor<?x64xf32>, %wr: tensor<64x8xf32>) {
  // expected-error @below {{'moe.route_dispatch' op operand 'w_router' is required and takes exactly 1 value, but 'operandSegmentSizes' gives it 0}}
  %0:5 = "moe.route_dispatch"(%x, %wr) <{experts = #moe.experts<compute = 8>, k = 2 : i64, normalize = #moe<normalize none>, operandSegmentSizes = array<i32: 1, 0, 1, 0, 0>, scale = 1.000000e+00 : f32, scoring = #moe<scoring softmax>, strategy = #moe.top_k, tile = 32 : i64}> : (tensor<?x64xf32>, tensor<64x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x64xf32>, tensor<9xi32>, tensor<?x2xi32>)
  return
}
