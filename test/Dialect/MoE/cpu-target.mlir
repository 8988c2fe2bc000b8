// RUN: moe-opt %s --split-input-file --moe-cpu-target="cpu=x86-64-v3" | FileCheck %s
// RUN: moe-opt %s --split-input-file --moe-cpu-target="cpu=znver4 features=-avx512f,+avx2" | FileCheck %s --check-prefix=EDIT
// RUN: moe-opt %s --split-input-file --moe-cpu-target="cpu=native" | FileCheck %s --check-prefix=HOST
// RUN: moe-opt %s --split-input-file --moe-cpu-target="cpu=znver4" | FileCheck %s --check-prefix=BF16
// RUN: moe-opt %s --split-input-file --moe-cpu-target="cpu=znver4 features=+avx512bf16" | FileCheck %s --check-prefix=BF16ON
// RUN: not moe-opt %s --split-input-file --moe-cpu-target="cpu=cortex-a57" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not moe-opt %s --split-input-file --moe-cpu-target="cpu=znver3 features=avx2" 2>&1 | FileCheck %s --check-prefix=BADFEATURE

// The CPU and its features (LLVM's, sorted), recorded on the module.
// CHECK: module attributes {moe.cpu_target = #moe.cpu_target<cpu = "x86-64-v3", features = "{{.*}}+avx2,{{.*}}+fma,{{.*}}">}
// CHECK-NOT: avx512f
// CHECK-LABEL: func.func @f
// Features added and removed (the last word wins).
// EDIT: #moe.cpu_target<cpu = "znver4", features = "{{.*}}+avx2,{{.*}}-avx512f,{{.*}}">
// The host: its name and features, each + or -.
// HOST: #moe.cpu_target<cpu = "{{[a-z0-9-]+}}", features = "{{(.*,)?}}{{[+-]}}avx2,
// AVX512-BF16's conversions flush subnormals: recorded off unless asked for.
// BF16: #moe.cpu_target<cpu = "znver4", features = "{{.*}}-avx512bf16,{{.*}}+avx512f,
// BF16ON: #moe.cpu_target<cpu = "znver4", features = "{{.*}}+avx512bf16,
// BAD: error: moe-cpu-target: unknown x86-64 CPU 'cortex-a57' (an LLVM CPU name such as znver3, sapphirerapids or x86-64-v3, or native)
// BADFEATURE: error: moe-cpu-target: features must be '+name' or '-name' separated by commas, got 'avx2'
func.func @f() {
  return
}
