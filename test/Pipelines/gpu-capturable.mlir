// REQUIRES: cuda-toolkit
// The capturable form of the GPU pipeline: the public function takes the
// caller's stream and workspace; its host code launches the kernels on that
// stream and does nothing else (no allocation, no copy, no stream, no
// synchronisation), which is what CUDA graph capture records.
// RUN: moe-opt %s --moe-gpu-pipeline="capturable" | FileCheck %s
// RUN: moe-opt %s --moe-gpu-pipeline="capturable" | mlir-translate --mlir-to-llvmir | FileCheck %s --check-prefix=LLVM

// The workspace query reads shapes only.
// CHECK-LABEL: llvm.func @layer_workspace_size(
//   CHECK-NOT:   llvm.call
//   CHECK-NOT:   gpu.launch_func
//       CHECK:   llvm.return %{{.*}} : i64
// CHECK-LABEL: llvm.func @layer(
//  CHECK-SAME:     %[[STREAM:arg[0-9]+]]: !llvm.ptr {moe.stream}
//  CHECK-SAME:     %{{.*}}: !llvm.ptr {moe.status}
//   CHECK-NOT:   llvm.call
//       CHECK:   gpu.launch_func <%[[STREAM]] : !llvm.ptr> @layer_kernel::@layer_kernel
//   CHECK-NOT:   llvm.call
//       CHECK:   gpu.launch_func <%[[STREAM]] : !llvm.ptr> @layer_kernel_11::@layer_kernel
//   CHECK-NOT:   llvm.call
//       CHECK:   llvm.return
// CHECK-LABEL: llvm.func @_mlir_ciface_layer(

// LLVM-LABEL: define {{.*}} @layer(
//   LLVM-NOT:   call {{.*}}@mgpu{{(Mem|Stream|Event|Module(Load|Unload))}}
//       LLVM:   call ptr @mgpuModuleGetFunction
//       LLVM:   call void @mgpuLaunchKernel(
//   LLVM-NOT:   call {{.*}}@mgpu{{(Mem|Stream|Event|Module(Load|Unload))}}
//       LLVM: define {{.*}} @_mlir_ciface_layer(

func.func @layer(%x: tensor<?x64xf32>, %wr: tensor<64x10xf32>, %wu: tensor<8x64x96xf32>,
                 %wg: tensor<8x64x96xf32>, %wd: tensor<8x96x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer %x router(%wr : tensor<64x10xf32>) up(%wu : tensor<8x64x96xf32>)
      gate(%wg : tensor<8x64x96xf32>) down(%wd : tensor<8x96x64xf32>)
      experts = <compute = 8, null = 2> k = 4 scoring = softmax strategy = top_k
      normalize = non_null scale = 1.0 activation = silu gated
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
