// The tile option is bounded like the op's attribute and reported as a
// number (it used to print as a raw byte: "got \x00").
// RUN: not moe-opt %s --moe-fuse-gating-dispatch=tile=0 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not moe-opt %s --moe-fuse-gating-dispatch=tile=4294967296 2>&1 | FileCheck %s --check-prefix=HUGE

// ZERO: error: moe-fuse-gating-dispatch: option 'tile' expects 1 <= tile <= 65536 tokens, got 0{{$}}
// HUGE: error: moe-fuse-gating-dispatch: option 'tile' expects 1 <= tile <= 65536 tokens, got 4294967296{{$}}
func.func @f(%l: tensor<?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x8xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %ids, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k into(%init_ids, %init_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}
