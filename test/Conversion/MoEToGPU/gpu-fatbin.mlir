// REQUIRES: cuda-toolkit
// moe-gpu-fatbin on its own: a gpu.binary of one PTX object per chip (from
// gpu-module-to-binary{format=isa}) becomes one fatbin object, ptxas and
// fatbinary from the toolkit; failures name the tool and its message.
// RUN: moe-opt %s --gpu-module-to-binary="format=isa" --moe-gpu-fatbin | FileCheck %s
// RUN: not moe-opt %s --gpu-module-to-binary="format=isa" --moe-gpu-fatbin="cuda-path=%t/none" 2>&1 | FileCheck %s --check-prefix=NOTOOLKIT
// RUN: not moe-opt %s --gpu-module-to-binary="format=isa" --moe-gpu-fatbin="ptxas-options=--no-such-option" 2>&1 | FileCheck %s --check-prefix=PTXAS

// One object, attached to the first chip's target, whose bytes are a fatbin
// (magic "P\ED"); the PTX objects are gone.
// CHECK-LABEL: gpu.binary @kernels
// CHECK-SAME:  [#gpu.object<#nvvm.target<chip = "sm_80", features = "+ptx80">, properties = {{.*}}, "P\ED{{[^"]*}}">]
// CHECK-NOT:   assembly =
// CHECK-NOT:   gpu.module
// NOTOOLKIT: error: moe-gpu-fatbin: {{.*}}none/bin/ptxas not found (set cuda-path or CUDA_HOME)
// PTXAS: error: moe-gpu-fatbin: {{.*}}ptxas -arch=sm_80 --no-such-option {{.*}} failed
// PTXAS: ptxas fatal{{.*}}Unknown option
module attributes {gpu.container_module} {
  gpu.module @kernels [#nvvm.target<chip = "sm_80", features = "+ptx80">,
                       #nvvm.target<chip = "sm_90a", features = "+ptx80">] {
    llvm.func @scale(%p: !llvm.ptr<1>, %s: f32) attributes {nvvm.kernel} {
      %v = llvm.load %p : !llvm.ptr<1> -> f32
      %m = llvm.fmul %v, %s : f32
      llvm.store %m, %p : f32, !llvm.ptr<1>
      llvm.return
    }
  }
}
