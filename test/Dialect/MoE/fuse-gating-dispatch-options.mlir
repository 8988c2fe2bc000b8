// The tile option is bounded like the op's attribute and reported as a
// number (it used to print as a raw byte: "got \x00").
// RUN: not moe-opt %s --moe-fuse-gating-dispatch=tile=0 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not moe-opt %s --moe-fuse-gating-dispatch=tile=4294967296 2>&1 | FileCheck %s --check-prefix=HUGE

// ZERO: error: moe-fuse-gating-dispatch: option 'tile' expects 1 <= tile <= 65536 tokens, got 0{{$}}
// HUGE: error: moe-fuse-gating-dispatch: option 'tile' expects 1 <= tile <= 65536 tokens, got 4294967296{{$}}
func.func @f(%l: tensor<?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %ids, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k : tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}
