// RUN: moe-opt %s --moe-gpu-attach-targets="chips=sm_80,sm_90a" --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-gpu-attach-targets="chips=sm_80" --split-input-file -verify-diagnostics | FileCheck %s --check-prefix=SM80
// RUN: not moe-opt %s --moe-gpu-attach-targets --split-input-file 2>&1 | FileCheck %s --check-prefix=NOCHIP
// NOCHIP: error: moe-gpu-attach-targets: 'chips' names no chip

// Every chip on a portable module; only sm_90a on a module with wgmma (the
// decision comes from the ops in the module).
// CHECK-LABEL: gpu.module @portable [#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">, #nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">]
// CHECK-LABEL: gpu.module @warpgroup [#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">]
// SM80-LABEL: gpu.module @portable [#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">]
module attributes {gpu.container_module} {
  gpu.module @portable {
    gpu.func @k() kernel {
      gpu.return
    }
  }
}

// -----

module attributes {gpu.container_module} {
  // expected-error @below {{uses wgmma, which only sm_90a runs, but 'chips' has no sm_90a}}
  gpu.module @warpgroup {
    gpu.func @k() kernel {
      nvvm.wgmma.fence.aligned
      gpu.return
    }
  }
}
