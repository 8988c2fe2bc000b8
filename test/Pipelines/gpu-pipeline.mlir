// REQUIRES: cuda-toolkit
// The whole GPU pipeline: kernels lowered to NVVM for sm_80 and sm_90a,
// assembled by ptxas for each chip and bundled with the sm_80 PTX in one
// fatbin; host code calls the mgpu* runtime.
// RUN: moe-opt %s --moe-gpu-pipeline | FileCheck %s
// Without the fatbin step: one PTX object per chip, for the right target.
// RUN: moe-opt %s --moe-gpu-pipeline="fatbin=false" | FileCheck %s --check-prefix=PTX
// The host code translates to LLVM IR (the fatbin embedded, loaded at start).
// RUN: moe-opt %s --moe-gpu-pipeline | mlir-translate --mlir-to-llvmir | FileCheck %s --check-prefix=LLVM
// With fuse, moe.route_dispatch replaces the gate kernel: 12 kernels, not 13.
// RUN: moe-opt %s --moe-gpu-pipeline="fatbin=false fuse=true" | FileCheck %s --check-prefix=FUSED
// RUN: moe-opt %s --moe-gpu-pipeline="fatbin=false" | FileCheck %s --check-prefix=UNFUSED
// A chip ptxas does not know is reported, not ignored; so is a missing toolkit.
// RUN: not moe-opt %s --moe-gpu-pipeline="chips=sm_80,sm_77" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not moe-opt %s --moe-gpu-pipeline="cuda-path=%t.nonexistent" 2>&1 | FileCheck %s --check-prefix=NOCUDA

// The host code reports run-time errors through the status argument.
// CHECK-NOT:   moe_runtime_error
// CHECK-LABEL: llvm.func @layer({{.*}}: !llvm.ptr {moe.status})
//       CHECK:   llvm.call @mgpuMemAlloc
//       CHECK:   gpu.launch_func
//       CHECK:   llvm.call @mgpuMemFree
//       CHECK: llvm.func @_mlir_ciface_layer({{.*}}: !llvm.ptr {moe.status})
// One object, a fatbin (the default format: no keyword; fatbin magic "P\ED").
//       CHECK: gpu.binary @layer_kernel  [#gpu.object<#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">, properties = {{.*}} : i32}, "P\ED{{[^"]*}}">]

//     PTX: gpu.binary @layer_kernel  [#gpu.object<#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">, {{.*}}assembly = "{{.*}}.target sm_80{{.*}}">, #gpu.object<#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">, {{.*}}assembly = "{{.*}}.target sm_90a

// LLVM-LABEL: define {{.*}} @layer(
//       LLVM:   call ptr @mgpuMemAlloc
//       LLVM:   call void @mgpuLaunchKernel
//       LLVM: call ptr @mgpuModuleLoad(ptr @layer_kernel_binary

// FUSED-COUNT-12: gpu.binary @layer_kernel
// FUSED-NOT:      gpu.binary
// UNFUSED-COUNT-13: gpu.binary @layer_kernel
// UNFUSED-NOT:      gpu.binary

// BAD: moe-gpu-fatbin: {{.*}}ptxas -arch=sm_77{{.*}} failed
// NOCUDA: error: CUDA path: {{.*}}.nonexistent does not exist

func.func @layer(%x: tensor<?x64xf32>, %wr: tensor<64x10xf32>, %wu: tensor<8x64x96xf32>,
                 %wg: tensor<8x64x96xf32>, %wd: tensor<8x96x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer %x router(%wr : tensor<64x10xf32>) up(%wu : tensor<8x64x96xf32>)
      gate(%wg : tensor<8x64x96xf32>) down(%wd : tensor<8x96x64xf32>)
      experts = <compute = 8, null = 2> k = 4 scoring = softmax strategy = top_k
      normalize = non_null scale = 1.0 activation = silu gated
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
