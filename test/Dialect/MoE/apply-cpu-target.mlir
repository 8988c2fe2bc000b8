// RUN: moe-opt %s --split-input-file --moe-apply-cpu-target | FileCheck %s

// The recorded target becomes LLVM's per-function target of every function
// with a body (one that has its own keeps it); the module attribute goes.
// CHECK-NOT:   moe.cpu_target
// CHECK-LABEL: llvm.func @kernel
// CHECK-SAME:  target_cpu = "znver3"
// CHECK-SAME:  target_features = #llvm.target_features<["+avx2", "+fma", "-avx512f"]>
// CHECK-LABEL: llvm.func @own
// CHECK-SAME:  target_cpu = "x86-64"
// CHECK:       llvm.func @external(
// CHECK-NOT:   target_cpu
module attributes {moe.cpu_target = #moe.cpu_target<cpu = "znver3", features = "+avx2,+fma,-avx512f">} {
  llvm.func @kernel() {
    llvm.return
  }
  llvm.func @own() attributes {target_cpu = "x86-64"} {
    llvm.return
  }
  llvm.func @external()
}

// -----

// Without a recorded target nothing changes.
// CHECK-LABEL: llvm.func @plain()
// CHECK-NOT:   target_cpu
module {
  llvm.func @plain() {
    llvm.return
  }
}
