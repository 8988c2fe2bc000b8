// Out-of-range pass options are reported with their value as a number (they
// used to print as a raw byte: "got \x00").
// RUN: not moe-opt %s --convert-moe-to-gpu=block-size=0 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not moe-opt %s --convert-moe-to-gpu=block-size=4096 2>&1 | FileCheck %s --check-prefix=LARGE

// ZERO:  error: convert-moe-to-gpu: block-size must be in [1, 1024], got 0{{$}}
// LARGE: error: convert-moe-to-gpu: block-size must be in [1, 1024], got 4096{{$}}
func.func @f(%l: tensor<?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %ids, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k : tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}
