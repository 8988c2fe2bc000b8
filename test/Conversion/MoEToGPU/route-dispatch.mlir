// RUN: moe-opt %s --convert-moe-to-gpu | FileCheck %s

// The fused gating-dispatch op on the GPU (padded rows, R_max = 64): the first kernel computes each
// token's logits into per-thread scratch (moe.gate's dot product) and routes
// from them, so no [T, S] logits buffer exists; the dispatch kernels follow
// on the ids (per (chunk, expert) counts, one scan, per slot, per (chunk,
// expert) rows, the row copy).
// CHECK-LABEL: func.func @fused
//   CHECK-NOT:   memref<?x12xf32>
//       CHECK:   %[[IDS:.*]] = gpu.alloc (%{{.*}}) : memref<?x4xi32>
//       CHECK:   %[[W:.*]] = gpu.alloc (%{{.*}}) : memref<?x4xf32>
//       CHECK:   %[[ROWS:.*]] = gpu.alloc () : memref<64x64xf32>
//       CHECK:   %[[OFF:.*]] = gpu.alloc () : memref<9xi32>
//       CHECK:   %[[SLOTS:.*]] = gpu.alloc (%{{.*}}) : memref<?x4xi32>
//       CHECK:   gpu.launch
//       CHECK:     %[[LOGITS:.*]] = memref.alloca() : memref<12xf32>
//       CHECK:     scf.for
//       CHECK:       scf.for
//       CHECK:         arith.mulf
//       CHECK:         arith.addf
//       CHECK:       memref.store %{{.*}}, %[[LOGITS]]
//       CHECK:     memref.load %[[LOGITS]]
//       CHECK:     memref.store %{{.*}}, %[[IDS]]
//       CHECK:   gpu.launch
//       CHECK:   gpu.launch
//       CHECK:   gpu.launch
//       CHECK:   gpu.launch
//       CHECK:   gpu.launch
//   CHECK-NOT:   gpu.launch
//   CHECK-NOT:   memref<?x12xf32>
//       CHECK:   return
func.func @fused(%x: tensor<?x64xf32>, %wr: tensor<64x12xf32>)
    -> (tensor<?x4xi32>, tensor<?x4xf32>, tensor<64x64xf32>, tensor<9xi32>, tensor<?x4xi32>) {
  %0:5 = moe.route_dispatch %x router(%wr : tensor<64x12xf32>)
      experts = <compute = 8, null = 4> k = 4 strategy = top_k normalize = non_null
      : tensor<?x64xf32> -> tensor<?x4xi32>, tensor<?x4xf32>, tensor<64x64xf32>,
        tensor<9xi32>, tensor<?x4xi32>
  return %0#0, %0#1, %0#2, %0#3, %0#4
      : tensor<?x4xi32>, tensor<?x4xf32>, tensor<64x64xf32>, tensor<9xi32>, tensor<?x4xi32>
}
