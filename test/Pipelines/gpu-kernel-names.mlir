// REQUIRES: cuda-toolkit
// A function whose name is not a PTX identifier compiles: its kernels are
// outlined, lowered to NVVM and printed as PTX under sanitised names (the
// NVPTX backend used to abort: "Symbol name with unsupported characters").
// RUN: moe-opt %s --moe-gpu-pipeline="fatbin=false" | FileCheck %s
// RUN: moe-opt %s --moe-gpu-pipeline | FileCheck %s --check-prefix=FATBIN

// CHECK-LABEL: llvm.func @"x y"
// CHECK:       gpu.launch_func {{.*}}@moe_x_y_kernel::@moe_x_y_kernel
// CHECK:       gpu.binary @moe_x_y_kernel
// CHECK-SAME:  .visible .entry moe_x_y_kernel(
// FATBIN:      gpu.binary @moe_x_y_kernel
func.func @"x y"(%l: tensor<?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x8xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %ids, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k into(%init_ids, %init_w) : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}
