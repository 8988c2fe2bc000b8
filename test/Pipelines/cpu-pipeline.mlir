// The CPU pipeline takes moe ops on tensors to the LLVM dialect only, with a
// C interface for public functions, and the result translates to LLVM IR.
// RUN: moe-opt %s --moe-cpu-pipeline | FileCheck %s
// RUN: moe-opt %s --moe-cpu-pipeline | mlir-translate --mlir-to-llvmir | FileCheck %s --check-prefix=LLVMIR
// The stock mlir-opt runs the same pipeline from the plugin:
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --load-pass-plugin=%moe_plugin --pass-pipeline="builtin.module(moe-cpu-pipeline)" %s | FileCheck %s
// With instrumentation the counters are a public global:
// RUN: moe-opt %s --moe-cpu-pipeline="instrument-ffn=true" | FileCheck %s --check-prefix=COUNT
// With parallel=true the expert FFN's work items run in an OpenMP parallel
// loop (the LLVM IR calls the OpenMP runtime), C interface kept:
// RUN: moe-opt %s --moe-cpu-pipeline="parallel=true" | FileCheck %s --check-prefix=OMP
// RUN: moe-opt %s --moe-cpu-pipeline="parallel=true" | mlir-translate --mlir-to-llvmir | FileCheck %s --check-prefix=OMPIR
// Run-time errors go through a trailing status argument of every public
// function (the C interface too), not through a global; status-argument=0
// keeps the global (for mlir-runner, which calls functions without
// arguments):
// RUN: moe-opt %s --moe-cpu-pipeline | FileCheck %s --check-prefix=STATUS
// RUN: moe-opt %s --moe-cpu-pipeline=status-argument=0 | FileCheck %s --check-prefix=GLOBAL

// CHECK-NOT: moe.
// CHECK-NOT: tensor<
// CHECK-NOT: memref<
// CHECK-DAG: llvm.func @malloc
// CHECK-DAG: llvm.func @free
// CHECK-DAG: llvm.func @layer(
// CHECK-DAG: llvm.func @_mlir_ciface_layer(%{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr
// CHECK-NOT: llvm.func @_mlir_ciface_helper

// LLVMIR-DAG: define void @_mlir_ciface_layer(ptr
// LLVMIR-DAG: declare ptr @malloc(i64)

// STATUS-NOT:   moe_runtime_error
// STATUS-LABEL: llvm.func @_mlir_ciface_layer(
// STATUS-SAME:      %{{[a-z0-9]+}}: !llvm.ptr {moe.status})
// STATUS-LABEL: llvm.func @gate(
// STATUS-SAME:      %[[S:[a-z0-9]+]]: !llvm.ptr {moe.status})
// STATUS:         llvm.store %{{.*}}, %[[S]] : i32, !llvm.ptr
// STATUS-LABEL: llvm.func @_mlir_ciface_gate(
// STATUS-SAME:      %{{[a-z0-9]+}}: !llvm.ptr {moe.status})
// STATUS-NOT:   moe_runtime_error

// GLOBAL:       llvm.mlir.global external @moe_runtime_error(0 : i32)
// GLOBAL-NOT:   moe.status

// COUNT: llvm.mlir.global external @moe_ffn_counters_0(dense<0> : tensor<4x2xi64>)

// OMP-LABEL: llvm.func @layer(
// OMP: omp.parallel
// OMP: omp.wsloop
// OMP: omp.loop_nest
// OMP-LABEL: llvm.func @_mlir_ciface_layer(
// OMPIR-DAG: call void (ptr, i32, ptr, ...) @__kmpc_fork_call(
// OMPIR-DAG: define void @_mlir_ciface_layer(ptr

func.func private @helper(%x: tensor<?x16xf32>) -> tensor<?x16xf32> {
  return %x : tensor<?x16xf32>
}

func.func @layer(%x: tensor<?x16xf32>, %wr: tensor<16x6xf32>,
                 %wu: tensor<4x16x8xf32>, %wg: tensor<4x16x8xf32>,
                 %wd: tensor<4x8x16xf32>) -> tensor<?x16xf32> {
  %y = moe.layer %x router(%wr : tensor<16x6xf32>)
      up(%wu : tensor<4x16x8xf32>) gate(%wg : tensor<4x16x8xf32>)
      down(%wd : tensor<4x8x16xf32>)
      experts = <compute = 4, null = 2> k = 2 strategy = top_k
      normalize = non_null activation = silu gated
      : tensor<?x16xf32> -> tensor<?x16xf32>
  %z = func.call @helper(%y) : (tensor<?x16xf32>) -> tensor<?x16xf32>
  %r = arith.addf %x, %z : tensor<?x16xf32>
  return %r : tensor<?x16xf32>
}

// T of the result is static, of x dynamic: checked at run time.
func.func @gate(%x: tensor<?x16xf32>, %w: tensor<16x6xf32>) -> tensor<4x6xf32> {
  %init_l = tensor.empty() : tensor<4x6xf32>
  %l = moe.gate %x, %w into(%init_l) : tensor<?x16xf32>, tensor<16x6xf32> into tensor<4x6xf32>
  return %l : tensor<4x6xf32>
}
