// The moe ops in upstream one-shot-bufferize (the stock mlir-opt with the
// plugin, no moe pass): each op bufferizes to its loop nest over the
// buffers of its operands, whatever their layout, writing into the buffers
// of its destinations (moe.dispatch, whose R is data-dependent, and
// moe.route_dispatch allocate their results).
//
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin %s --split-input-file --one-shot-bufferize="bufferize-function-boundaries" | FileCheck %s
//
// Every CPU integration test gives its checked values through this path too
// (the layers expanded by moe-decompose-layer from the pass plugin first).
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --pass-pipeline="builtin.module(%stock_cpu_lowering)" %S/../Integration/CPU/gate.mlir | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %S/../Integration/CPU/gate.mlir
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --pass-pipeline="builtin.module(%stock_cpu_lowering)" %S/../Integration/CPU/route-top-k.mlir | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %S/../Integration/CPU/route-top-k.mlir
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --pass-pipeline="builtin.module(%stock_cpu_lowering)" %S/../Integration/CPU/route-strategies.mlir | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %S/../Integration/CPU/route-strategies.mlir
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --pass-pipeline="builtin.module(%stock_cpu_lowering)" %S/../Integration/CPU/route-softmax-sigmoid.mlir | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %S/../Integration/CPU/route-softmax-sigmoid.mlir
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --pass-pipeline="builtin.module(%stock_cpu_lowering)" %S/../Integration/CPU/route-groups-bias.mlir | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %S/../Integration/CPU/route-groups-bias.mlir
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --pass-pipeline="builtin.module(%stock_cpu_lowering)" %S/../Integration/CPU/route-capacity.mlir | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %S/../Integration/CPU/route-capacity.mlir
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --pass-pipeline="builtin.module(%stock_cpu_lowering)" %S/../Integration/CPU/route-edge-cases.mlir | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %S/../Integration/CPU/route-edge-cases.mlir
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --pass-pipeline="builtin.module(%stock_cpu_lowering)" %S/../Integration/CPU/dispatch.mlir | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %S/../Integration/CPU/dispatch.mlir
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --pass-pipeline="builtin.module(%stock_cpu_lowering)" %S/../Integration/CPU/dispatch-padded.mlir | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %S/../Integration/CPU/dispatch-padded.mlir
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --pass-pipeline="builtin.module(%stock_cpu_lowering)" %S/../Integration/CPU/grouped-matmul.mlir | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %S/../Integration/CPU/grouped-matmul.mlir
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --pass-pipeline="builtin.module(%stock_cpu_lowering)" %S/../Integration/CPU/expert-ffn.mlir | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %S/../Integration/CPU/expert-ffn.mlir
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --pass-pipeline="builtin.module(%stock_cpu_lowering)" %S/../Integration/CPU/activations.mlir | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %S/../Integration/CPU/activations.mlir
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --pass-pipeline="builtin.module(%stock_cpu_lowering)" %S/../Integration/CPU/low-precision.mlir | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %S/../Integration/CPU/low-precision.mlir
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --pass-pipeline="builtin.module(%stock_cpu_lowering)" %S/../Integration/CPU/combine.mlir | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %S/../Integration/CPU/combine.mlir
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --pass-pipeline="builtin.module(%stock_cpu_lowering)" %S/../Integration/CPU/aux-loss.mlir | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %S/../Integration/CPU/aux-loss.mlir
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --load-pass-plugin=%moe_plugin --pass-pipeline="builtin.module(func.func(moe-decompose-layer),%stock_cpu_lowering)" %S/../Integration/CPU/zero-tokens.mlir | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %S/../Integration/CPU/zero-tokens.mlir
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --load-pass-plugin=%moe_plugin --pass-pipeline="builtin.module(func.func(moe-decompose-layer),%stock_cpu_lowering)" %S/../Integration/CPU/layer.mlir | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %S/../Integration/CPU/layer.mlir

// A slice of a larger buffer is read in place: no copy of the rows of x;
// the logits go into the buffer of their destination (a tensor.empty: one
// allocation).
// CHECK-LABEL: func.func @gate_of_slice
// CHECK-SAME:    (%[[X:.*]]: memref<8x16xf32, strided<[?, ?], offset: ?>>, %[[W:.*]]: memref<16x4xf32, strided<[?, ?], offset: ?>>) -> memref<4x4xf32>
// CHECK:         %[[ROWS:.*]] = memref.subview %[[X]][2, 0] [4, 16] [1, 1]
// CHECK:         %[[L:.*]] = memref.alloc() {{.*}}: memref<4x4xf32>
// CHECK-NOT:     memref.copy
// CHECK:         memref.dim %[[ROWS]]
// CHECK:         memref.load %[[ROWS]]
// CHECK-NOT:     moe.gate
// CHECK:         return %[[L]] : memref<4x4xf32>
func.func @gate_of_slice(%x: tensor<8x16xf32>, %w: tensor<16x4xf32>) -> tensor<4x4xf32> {
  %s = tensor.extract_slice %x[2, 0] [4, 16] [1, 1] : tensor<8x16xf32> to tensor<4x16xf32>
  %init_l = tensor.empty() : tensor<4x4xf32>
  %l = moe.gate %s, %w into(%init_l) : tensor<4x16xf32>, tensor<16x4xf32> into tensor<4x4xf32>
  return %l : tensor<4x4xf32>
}

// -----

// The results of an op are new buffers (the identity layout), so a consumer
// may write into them
// in place: the linalg.exp on the weights needs no copy.
// CHECK-LABEL: func.func @route_then_exp
// CHECK:         %[[IDS:.*]] = memref.alloc(%{{.*}}) {{.*}}: memref<?x2xi32>
// CHECK:         %[[W:.*]] = memref.alloc(%{{.*}}) {{.*}}: memref<?x2xf32>
// CHECK-NOT:     memref.copy
// CHECK:         linalg.exp ins(%[[W]] : memref<?x2xf32>) outs(%[[W]] : memref<?x2xf32>)
// CHECK:         return %[[IDS]], %[[W]] : memref<?x2xi32>, memref<?x2xf32>
func.func @route_then_exp(%l: tensor<?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x8xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %ids, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k into(%init_ids, %init_w)
      : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  %e = linalg.exp ins(%w : tensor<?x2xf32>) outs(%w : tensor<?x2xf32>) -> tensor<?x2xf32>
  return %ids, %e : tensor<?x2xi32>, tensor<?x2xf32>
}

// -----

// moe.dispatch_padded writes into its destinations' buffers in place: no
// allocation for its results, the rows go straight into the workspace.
// CHECK-LABEL: func.func @dispatch_in_place
// CHECK-SAME:    (%[[X:.*]]: memref<?x64xf32, strided<[?, ?], offset: ?>>, %[[IDS:.*]]: memref<?x2xi32, strided<[?, ?], offset: ?>>, %[[WS:.*]]: memref<256x64xf32, strided<[?, ?], offset: ?>>, %[[OFF:.*]]: memref<9xi32, strided<[?], offset: ?>>, %[[SLOTS:.*]]: memref<?x2xi32, strided<[?, ?], offset: ?>>)
// CHECK-NOT:     memref.alloc({{.*}}) : memref<?x64xf32>
// CHECK-NOT:     memref.alloc() : memref<256x64xf32>
// CHECK:         memref.store %{{.*}}, %[[OFF]][%{{.*}}] : memref<9xi32, strided<[?], offset: ?>>
// CHECK:         memref.store %{{.*}}, %[[WS]][%{{.*}}, %{{.*}}] : memref<256x64xf32, strided<[?, ?], offset: ?>>
// CHECK:         return %[[WS]], %[[OFF]], %[[SLOTS]]
func.func @dispatch_in_place(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>,
                             %ws: tensor<256x64xf32>, %o: tensor<9xi32>,
                             %s: tensor<?x2xi32>)
    -> (tensor<256x64xf32>, tensor<9xi32>, tensor<?x2xi32>) {
  %rows, %offsets, %slot_rows = moe.dispatch_padded %x, %ids num_experts = 8
      into(%ws, %o, %s) : tensor<?x64xf32>, tensor<?x2xi32>
      into tensor<256x64xf32>, tensor<9xi32>, tensor<?x2xi32>
  return %rows, %offsets, %slot_rows
      : tensor<256x64xf32>, tensor<9xi32>, tensor<?x2xi32>
}

// -----

// moe.grouped_matmul writes into its destination's buffer. Its kernel
// stores vectors, so a destination with a dynamic innermost stride is
// checked at run time: only one whose stride is not 1 gets a scratch
// buffer, copied back afterwards.
// CHECK-LABEL: func.func @grouped_matmul_in_place
// CHECK-SAME:    %[[OUT:[a-z0-9]+]]: memref<?x32xf32, strided<[?, ?], offset: ?>>) -> memref<?x32xf32, strided<[?, ?], offset: ?>>
// CHECK:         memref.extract_strided_metadata %[[OUT]]
// CHECK:         %[[BUF:.*]] = scf.if %[[SCRATCH:.*]] -> (memref<?x32xf32, strided<[?, 1], offset: ?>>) {
// CHECK:           memref.alloc
// CHECK:         } else {
// CHECK:           memref.cast %[[OUT]]
// CHECK:         vector.store %{{.*}}, %[[BUF]]
// CHECK:         scf.if %[[SCRATCH]] {
// CHECK:           memref.load %[[BUF]]
// CHECK:           memref.store %{{.*}}, %[[OUT]]
// CHECK:           memref.dealloc %[[BUF]]
// CHECK:         return %[[OUT]]
func.func @grouped_matmul_in_place(%lhs: tensor<?x64xf32>, %rhs: tensor<8x64x32xf32>,
                                   %o: tensor<9xi32>, %out: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %0 = moe.grouped_matmul %lhs, %rhs, %o into(%out)
      : tensor<?x64xf32>, tensor<8x64x32xf32>, tensor<9xi32> into tensor<?x32xf32>
  return %0 : tensor<?x32xf32>
}
