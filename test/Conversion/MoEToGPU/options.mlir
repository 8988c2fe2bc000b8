// Out-of-range pass options are reported with their value as a number (they
// used to print as a raw byte: "got \x00").
// RUN: not moe-opt %s --convert-moe-to-gpu=block-size=0 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not moe-opt %s --convert-moe-to-gpu=block-size=4096 2>&1 | FileCheck %s --check-prefix=LARGE

// ZERO:  error: convert-moe-to-gpu: block-size must be in [1, 1024], got 0{{$}}
// LARGE: error: convert-moe-to-gpu: block-size must be in [1, 1024], got 4096{{$}}
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
