// REQUIRES: cuda-toolkit
// A capturable bf16 layer: the tensor-core matmuls choose between the sm_90a
// (wgmma) and the sm_80 (mma.sync) kernels at run time. The choice is the
// only host call besides the launches (moeCudaHasWgmma reads a cached
// device attribute), and both branches launch on the caller's stream.
// RUN: moe-opt %s --moe-gpu-pipeline="capturable fatbin=0" | FileCheck %s
// RUN: moe-opt %s --moe-gpu-pipeline="capturable fatbin=0" | mlir-translate --mlir-to-llvmir | FileCheck %s --check-prefix=LLVM

// CHECK-LABEL: llvm.func @layer(
//  CHECK-SAME:     %[[STREAM:arg[0-9]+]]: !llvm.ptr {moe.stream}
//   CHECK-NOT:   llvm.call
//       CHECK:   %[[UP:.*]] = llvm.call @moeCudaHasWgmma() : () -> i32
//       CHECK:   llvm.cond_br
//       CHECK:   gpu.launch_func <%[[STREAM]] : !llvm.ptr>
//       CHECK:   gpu.launch_func <%[[STREAM]] : !llvm.ptr>
//       CHECK:   gpu.launch_func <%[[STREAM]] : !llvm.ptr>
// One query serves the whole FFN (both projections share the choice).
//   CHECK-NOT:   llvm.call
//       CHECK:   llvm.return
//   LLVM-NOT:   call {{.*}}@mgpu{{(Mem|Stream|Event|Module(Load|Unload))}}
//       LLVM:   call i32 @moeCudaHasWgmma()
//       LLVM:   call void @mgpuLaunchKernel(
//   LLVM-NOT:   call {{.*}}@mgpu{{(Mem|Stream|Event|Module(Load|Unload))}}
//       LLVM: define {{.*}} @_mlir_ciface_layer(

func.func @layer(%x: tensor<?x64xbf16>, %wr: tensor<64x8xbf16>, %wu: tensor<8x64x96xbf16>,
                 %wg: tensor<8x64x96xbf16>, %wd: tensor<8x96x64xbf16>) -> tensor<?x64xbf16> {
  %y = moe.layer %x router(%wr : tensor<64x8xbf16>) up(%wu : tensor<8x64x96xbf16>)
      gate(%wg : tensor<8x64x96xbf16>) down(%wd : tensor<8x96x64xbf16>)
      experts = <compute = 8> k = 2 strategy = top_k normalize = selected
      activation = silu gated : tensor<?x64xbf16> -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}
