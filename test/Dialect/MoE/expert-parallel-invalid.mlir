// RUN: moe-opt %s --moe-expert-parallel --split-input-file -verify-diagnostics
// RUN: not moe-opt %s --moe-expert-parallel="placement=0,x" 2>&1 | FileCheck %s --check-prefix=OPTION
// RUN: not moe-opt %s --moe-expert-parallel="placement=1,8" 2>&1 | FileCheck %s --check-prefix=FIRST

// OPTION: moe-expert-parallel: 'placement' must be 'balanced' or comma-separated block bounds such as '0,3,8', got '0,x'
// FIRST: moe-expert-parallel: #moe.ep_placement: the first bound must be 0, got 1

// The pass needs the decomposed form.
func.func @undecomposed(%x: tensor<?x64xf32>, %wr: tensor<64x8xf32>,
                        %wu: tensor<8x64x128xf32>, %wd: tensor<8x128x64xf32>)
    -> tensor<?x64xf32> {
  // expected-error @below {{'moe.layer' op must be decomposed before moe-expert-parallel (run moe-decompose-layer first; do not fuse gating and dispatch)}}
  %y = moe.layer %x router(%wr : tensor<64x8xf32>)
      up(%wu : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>)
      experts = <compute = 8> k = 2 strategy = top_k activation = relu
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Expert weights must be function arguments: a constant cannot be split.
func.func @constant_weights(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>,
                            %w: tensor<?x2xf32>, %wd: tensor<2x128x64xf32>)
    -> tensor<?x64xf32> {
  %c0 = arith.constant 0 : index
  // expected-note @below {{this weight}}
  %wu = arith.constant dense<1.0> : tensor<2x64x128xf32>
  %rows, %off, %slot = moe.dispatch %x, %ids num_experts = 2 : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<3xi32>, tensor<?x2xi32>
  %r = tensor.dim %rows, %c0 : tensor<?x64xf32>
  %init = tensor.empty(%r) : tensor<?x64xf32>
  // expected-error @below {{'moe.expert_ffn' op cannot be made expert-parallel: its expert weights must be function arguments (each rank passes its own experts), but one is defined by 'arith.constant'}}
  %y = moe.expert_ffn %rows, %off up(%wu : tensor<2x64x128xf32>) down(%wd : tensor<2x128x64xf32>) activation = relu into(%init) : tensor<?x64xf32>, tensor<3xi32> into tensor<?x64xf32>
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  %oinit = tensor.empty(%t) : tensor<?x64xf32>
  %out = moe.combine %y, %slot, %ids, %w, %x experts = <compute = 2> into(%oinit) : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x64xf32> into tensor<?x64xf32>
  return %out : tensor<?x64xf32>
}

// -----

// The rows must feed a moe.expert_ffn.
func.func @rows_elsewhere(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>)
    -> tensor<?x64xf32> {
  // expected-error @below {{'moe.dispatch' op cannot be made expert-parallel: its rows must feed one moe.expert_ffn (with its offsets), but feed 'func.return'}}
  %rows, %off, %slot = moe.dispatch %x, %ids num_experts = 2 : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<3xi32>, tensor<?x2xi32>
  return %rows : tensor<?x64xf32>
}

// -----

// A placement for another expert count.
func.func @placement_experts(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>,
                             %w: tensor<?x2xf32>, %wu: tensor<2x64x128xf32>,
                             %wd: tensor<2x128x64xf32>) -> tensor<?x64xf32> {
  %c0 = arith.constant 0 : index
  %rows, %off, %slot = moe.dispatch %x, %ids num_experts = 2 : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>, tensor<3xi32>, tensor<?x2xi32>
  %r = tensor.dim %rows, %c0 : tensor<?x64xf32>
  %init = tensor.empty(%r) : tensor<?x64xf32>
  %y = moe.expert_ffn %rows, %off up(%wu : tensor<2x64x128xf32>) down(%wd : tensor<2x128x64xf32>) activation = relu into(%init) : tensor<?x64xf32>, tensor<3xi32> into tensor<?x64xf32>
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  %oinit = tensor.empty(%t) : tensor<?x64xf32>
  %out = moe.combine %y, %slot, %ids, %w, %x experts = <compute = 2> into(%oinit) : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x64xf32> into tensor<?x64xf32>
  return %out : tensor<?x64xf32>
}
// RUN: not moe-opt %s --moe-expert-parallel="placement=0,1,3" --split-input-file 2>&1 | FileCheck %s --check-prefix=EXPERTS
// EXPERTS: error: 'moe.dispatch' op cannot be made expert-parallel with placement #moe.ep_placement<blocks = [0, 1, 3]>: its last bound must be the layer's 2 compute experts
