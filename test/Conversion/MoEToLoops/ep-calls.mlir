// RUN: moe-opt %s --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" | FileCheck %s
// RUN: moe-opt %s --moe-cpu-pipeline | FileCheck %s --check-prefix=LLVM

// The exchange ops become calls of the expert-parallel runtime on the
// buffers' addresses: dispatch_begin (sizes, placement bounds, slot_rows,
// the info array), then the results sized from the info array, then
// dispatch_finish; combine asks for its row count, then combines. A failed
// call stores the op's code (9: ep_dispatch, 10: ep_combine).
// CHECK-DAG: func.func private @moe_ep_dispatch_begin(i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64) -> i32
// CHECK-DAG: func.func private @moe_ep_dispatch_finish(i64, i64, i64) -> i32
// CHECK-DAG: func.func private @moe_ep_combine_rows(i64) -> i64
// CHECK-DAG: func.func private @moe_ep_combine(i64, i64, i64, i64, i64) -> i32
// CHECK-LABEL: func.func @ep
// CHECK-SAME: (%[[X:.*]]: memref<?x64xf32>, %[[IDS:.*]]: memref<?x2xi32>
// CHECK:      %[[SLOT:.*]] = memref.alloc(%{{.*}}) : memref<?x2xi32>
// CHECK:      %[[INFO:.*]] = memref.alloca() : memref<4xi64>
// CHECK:      %[[BOUNDS:.*]] = memref.alloca() : memref<3xi64>
// CHECK:      memref.extract_aligned_pointer_as_index %[[X]]
// CHECK:      %[[BEGIN:.*]] = call @moe_ep_dispatch_begin(
// CHECK:      %[[PLAN:.*]] = memref.load %[[INFO]][%{{.*}}] : memref<4xi64>
// CHECK:      %[[R:.*]] = memref.load %[[INFO]]
// CHECK:      %[[RI:.*]] = arith.index_cast %[[R]] : i64 to index
// CHECK:      %[[EL:.*]] = memref.load %[[INFO]]
// CHECK:      %[[ROWS:.*]] = memref.alloc(%[[RI]]) : memref<?x64xf32>
// CHECK:      %[[OFF:.*]] = memref.alloc(%{{.*}}) : memref<?xi32>
// CHECK:      %[[FINISH:.*]] = call @moe_ep_dispatch_finish(%[[PLAN]], %{{.*}}, %{{.*}}) : (i64, i64, i64) -> i32
// CHECK:      arith.constant 9 : i32
// CHECK:      %[[HANDLE:.*]] = builtin.unrealized_conversion_cast %[[PLAN]] : i64 to !moe.ep_plan
// CHECK:      %[[BACK:.*]] = builtin.unrealized_conversion_cast %[[HANDLE]] : !moe.ep_plan to i64
// CHECK:      %[[COUNT:.*]] = call @moe_ep_combine_rows(%[[BACK]]) : (i64) -> i64
// CHECK:      %[[Y:.*]] = memref.alloc(%{{.*}}) : memref<?x64xf32>
// CHECK:      call @moe_ep_combine(%[[BACK]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) : (i64, i64, i64, i64, i64) -> i32
// CHECK:      arith.constant 10 : i32
// LLVM-LABEL: llvm.func @ep
// LLVM: llvm.call @moe_ep_dispatch_begin
// LLVM: llvm.call @moe_ep_dispatch_finish
// LLVM: llvm.call @moe_ep_combine_rows
// LLVM: llvm.call @moe_ep_combine
// LLVM-NOT: moe.ep_plan
func.func @ep(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>,
              %wu: tensor<?x64x128xf32>, %wd: tensor<?x128x64xf32>) -> tensor<?x64xf32> {
  %c0 = arith.constant 0 : index
  %rows, %off, %slot, %plan = moe.ep_dispatch %x, %ids num_experts = 8
      placement = <blocks = [0, 3, 8]>
      : tensor<?x64xf32>, tensor<?x2xi32>
      -> tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xi32>
  %r = tensor.dim %rows, %c0 : tensor<?x64xf32>
  %init = tensor.empty(%r) : tensor<?x64xf32>
  %yl = moe.expert_ffn %rows, %off up(%wu : tensor<?x64x128xf32>)
      down(%wd : tensor<?x128x64xf32>) activation = relu into(%init)
      : tensor<?x64xf32>, tensor<?xi32> into tensor<?x64xf32>
  %y = moe.ep_combine %yl, %plan : tensor<?x64xf32> -> tensor<?x64xf32>
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  %oinit = tensor.empty(%t) : tensor<?x64xf32>
  %out = moe.combine %y, %slot, %ids, %w, %x experts = <compute = 8>
      into(%oinit) : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xi32>,
      tensor<?x2xf32>, tensor<?x64xf32> into tensor<?x64xf32>
  return %out : tensor<?x64xf32>
}
