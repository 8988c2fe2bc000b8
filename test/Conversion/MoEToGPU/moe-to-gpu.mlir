// RUN: moe-opt %s --convert-moe-to-gpu --split-input-file | FileCheck %s
// RUN: moe-opt %s --convert-moe-to-gpu="emulate=true" --split-input-file | FileCheck %s --check-prefix=EMU
// RUN: moe-opt %s --convert-moe-to-gpu --split-input-file | FileCheck %s --check-prefix=COPIES

// The gate: host operands are copied to the device once, one thread per
// logit, the result goes back to the host where it leaves moe code, and
// every device buffer is freed at the end of the block.
// CHECK-LABEL: func.func @gate
//  CHECK-SAME:   (%[[X:.*]]: tensor<?x16xf32>, %[[W:.*]]: tensor<16x4xf32>)
//       CHECK:   %[[XH:.*]] = bufferization.to_buffer %[[X]] read_only : tensor<?x16xf32> to memref<?x16xf32>
//       CHECK:   %[[XD:.*]] = gpu.alloc (%{{.*}}) : memref<?x16xf32>
//       CHECK:   gpu.memcpy  %[[XD]], %[[XH]] : memref<?x16xf32>, memref<?x16xf32>
//       CHECK:   %[[WD:.*]] = gpu.alloc () : memref<16x4xf32>
//       CHECK:   gpu.memcpy  %[[WD]], %{{.*}} : memref<16x4xf32>, memref<16x4xf32>
//       CHECK:   %[[LD:.*]] = gpu.alloc (%{{.*}}) : memref<?x4xf32>
//       CHECK:   gpu.launch blocks(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) threads(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}, %{{.*}} = %{{.*}})
//       CHECK:     memref.store %{{.*}}, %[[LD]]
//       CHECK:     gpu.terminator
//       CHECK:   %[[LH:.*]] = memref.alloc(%{{.*}}) : memref<?x4xf32>
//       CHECK:   gpu.memcpy  %[[LH]], %[[LD]]
//       CHECK:   %[[OUT:.*]] = bufferization.to_tensor %[[LH]]
//   CHECK-DAG:   gpu.dealloc  %[[XD]]
//   CHECK-DAG:   gpu.dealloc  %[[WD]]
//   CHECK-DAG:   gpu.dealloc  %[[LD]]
//       CHECK:   return %[[OUT]]

// Emulated: the same kernel as a host loop over the threads, no device ops.
// EMU-LABEL: func.func @gate
//   EMU-NOT:   gpu.
//       EMU:   scf.for
//   EMU-NOT:   gpu.
//       EMU:   return
func.func @gate(%x: tensor<?x16xf32>, %w: tensor<16x4xf32>) -> tensor<?x4xf32> {
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %x, %init_l_c0 : tensor<?x16xf32>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x4xf32>
  %l = moe.gate %x, %w into(%init_l) : tensor<?x16xf32>, tensor<16x4xf32> into tensor<?x4xf32>
  return %l : tensor<?x4xf32>
}

// -----

// A decomposed layer: nothing goes back to the host between the ops (no
// host buffer until the result's), the dispatched rows live in a T * K row
// buffer on the device, and every kernel is a launch.
// CHECK-LABEL: func.func @layer
//   CHECK-NOT:   {{memref.alloc[(]}}
//       CHECK:   gpu.launch
//   CHECK-NOT:   {{memref.alloc[(]}}
//       CHECK:   %[[HOST:.*]] = memref.alloc(%{{.*}}) : memref<?x8xf32>
//  CHECK-NEXT:   gpu.memcpy  %[[HOST]]
//   CHECK-NOT:   {{memref.alloc[(]}}
//       CHECK:   return
// Each host operand crosses once, however many ops read it (x: gate,
// dispatch, combine), and the result once: 5 copies in, 1 out.
// COPIES-LABEL: func.func @layer
// COPIES-COUNT-6: gpu.memcpy
//   COPIES-NOT: gpu.memcpy
//       COPIES: return
func.func @layer(%x: tensor<?x8xf32>, %wr: tensor<8x6xf32>, %wu: tensor<4x8x16xf32>,
                 %wg: tensor<4x8x16xf32>, %wd: tensor<4x16x8xf32>) -> tensor<?x8xf32> {
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %x, %init_l_c0 : tensor<?x8xf32>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x6xf32>
  %l = moe.gate %x, %wr into(%init_l) : tensor<?x8xf32>, tensor<8x6xf32> into tensor<?x6xf32>
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x6xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x6xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %ids, %w = moe.route %l experts = <compute = 4, null = 2> k = 2 scoring = softmax
      strategy = top_k normalize = non_null scale = 1.0 into(%init_ids, %init_w)
      : tensor<?x6xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  %rows, %off, %sr = moe.dispatch %x, %ids num_experts = 4
      : tensor<?x8xf32>, tensor<?x2xi32> -> tensor<?x8xf32>, tensor<5xi32>, tensor<?x2xi32>
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %rows, %init_y_c0 : tensor<?x8xf32>
  %init_y = tensor.empty(%init_y_d0) : tensor<?x8xf32>
  %y = moe.expert_ffn %rows, %off up(%wu : tensor<4x8x16xf32>) gate(%wg : tensor<4x8x16xf32>)
      down(%wd : tensor<4x16x8xf32>) activation = silu gated into(%init_y)
      : tensor<?x8xf32>, tensor<5xi32> into tensor<?x8xf32>
  %init_out_c0 = arith.constant 0 : index
  %init_out_d0 = tensor.dim %x, %init_out_c0 : tensor<?x8xf32>
  %init_out = tensor.empty(%init_out_d0) : tensor<?x8xf32>
  %out = moe.combine %y, %sr, %ids, %w, %x experts = <compute = 4, null = 2> into(%init_out)
      : tensor<?x8xf32>, tensor<?x2xi32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x8xf32> into tensor<?x8xf32>
  return %out : tensor<?x8xf32>
}

// -----

// With device-arguments, arguments are device pointers (no copy in) and the
// result stays on the device (no copy out, not freed: the buffer deallocation
// of the pipeline sees it returned, not freed, and hands it to the caller).
// RUN: moe-opt %s --convert-moe-to-gpu="device-arguments=true" --split-input-file | FileCheck %s --check-prefix=DEV
// DEV-LABEL: func.func @resident
//   DEV-NOT:   gpu.memcpy
//       DEV:   %[[OUT:.*]] = gpu.alloc (%{{.*}}) : memref<?x4xf32>
//       DEV:   gpu.launch
//   DEV-NOT:   gpu.memcpy
//   DEV-NOT:   gpu.dealloc %[[OUT]]
//       DEV:   %[[T:.*]] = bufferization.to_tensor %[[OUT]]
//   DEV-NOT:   gpu.memcpy
//   DEV-NOT:   gpu.dealloc %[[OUT]]
//       DEV:   return %[[T]]
func.func @resident(%x: tensor<?x16xf32>, %w: tensor<16x4xf32>) -> tensor<?x4xf32> {
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %x, %init_l_c0 : tensor<?x16xf32>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x4xf32>
  %l = moe.gate %x, %w into(%init_l) : tensor<?x16xf32>, tensor<16x4xf32> into tensor<?x4xf32>
  return %l : tensor<?x4xf32>
}

// -----

// Capacity (a cross-token ordering) in parallel kernels: the per-token
// selection; per (chunk, expert) counts, per expert a prefix, a clear of the
// drop marks; score priority: the experts' starts in a list of the T * K
// slots (one thread), per (chunk, expert) a scatter into it, per expert a
// radix select (256-bucket per-thread histogram); per token the compaction.
// Buffers sized by T * K are allocated on the host and freed with the rest.
// CHECK-LABEL: func.func @capacity
//       CHECK:   gpu.launch
//       CHECK:   %[[COUNTS:.*]] = gpu.alloc (%{{.*}}) : memref<?x4xindex>
//       CHECK:   %[[DROPPED:.*]] = gpu.alloc (%{{.*}}) : memref<?x2xi1>
//       CHECK:   gpu.launch
//       CHECK:   gpu.launch
//       CHECK:   gpu.launch
//       CHECK:   %[[STARTS:.*]] = gpu.alloc () : memref<4xindex>
//       CHECK:   %[[LIST:.*]] = gpu.alloc (%{{.*}}) : memref<?xindex>
//       CHECK:   gpu.launch
//       CHECK:   gpu.launch
//       CHECK:   gpu.launch
//       CHECK:     memref.alloca() : memref<256xindex>
//       CHECK:   gpu.launch
//       CHECK:   gpu.launch
//   CHECK-NOT:   gpu.launch
//   CHECK-DAG:   gpu.dealloc  %[[COUNTS]]
//   CHECK-DAG:   gpu.dealloc  %[[DROPPED]]
//   CHECK-DAG:   gpu.dealloc  %[[STARTS]]
//   CHECK-DAG:   gpu.dealloc  %[[LIST]]
//       CHECK:   return
func.func @capacity(%l: tensor<?x4xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x4xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x4xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %ids, %w = moe.route %l experts = <compute = 4> k = 2 scoring = softmax strategy = top_k
      normalize = selected scale = 1.0 capacity = <factor = 1.0, priority = score> into(%init_ids, %init_w)
      : tensor<?x4xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}
