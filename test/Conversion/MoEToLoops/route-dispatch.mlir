// RUN: moe-opt %s --convert-moe-to-loops --canonicalize --cse | FileCheck %s
// RUN: moe-opt %s --moe-fuse-gating-dispatch="tile=16" --convert-moe-to-loops | FileCheck %s --check-prefix=FUSED
// RUN: moe-opt %s --convert-moe-to-loops | FileCheck %s --check-prefix=UNFUSED

// The fused lowering walks the tokens in tiles: the only logits buffer is a
// [min(tile, T), S] one; no [T, S] buffer is ever allocated (the unfused
// path allocates one for the gate's result).
// FUSED-LABEL: func.func @layer_routing
// FUSED-NOT: memref.alloc(%{{.*}}) : memref<?x12xf32>
// FUSED:     %[[TILE_ROWS:.*]] = arith.minsi %{{.*}}, %{{.*}} : index
// FUSED:     memref.alloc(%[[TILE_ROWS]]) : memref<?x12xf32>
// FUSED-NOT: memref.alloc(%{{.*}}) : memref<?x12xf32>
// FUSED:     arith.ceildivui
// FUSED-NOT: memref.alloc(%{{.*}}) : memref<?x12xf32>
// FUSED:     return
// UNFUSED-LABEL: func.func @layer_routing
// UNFUSED:   memref.alloc(%{{.*}}) : memref<?x12xf32>
func.func @layer_routing(%x: tensor<?x64xf32>, %wr: tensor<64x12xf32>)
    -> (tensor<?x4xf32>, tensor<?x64xf32>, tensor<9xi32>) {
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %x, %init_l_c0 : tensor<?x64xf32>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x12xf32>
  %l = moe.gate %x, %wr into(%init_l) : tensor<?x64xf32>, tensor<64x12xf32> into tensor<?x12xf32>
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x12xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x4xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x12xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x4xf32>
  %ids, %w = moe.route %l experts = <compute = 8, null = 4> k = 4 strategy = top_k
      normalize = non_null into(%init_ids, %init_w) : tensor<?x12xf32> into tensor<?x4xi32>, tensor<?x4xf32>
  %rows, %off, %slots = moe.dispatch %x, %ids num_experts = 8
      : tensor<?x64xf32>, tensor<?x4xi32> -> tensor<?x64xf32>, tensor<9xi32>, tensor<?x4xi32>
  return %w, %rows, %off : tensor<?x4xf32>, tensor<?x64xf32>, tensor<9xi32>
}

// The fused op itself: tile loop (ceildiv), per tile the router matmul into
// the tile buffer, then per token the routing and the expert counts; then
// the scan and the scatter. The tile buffer holds min(tile, T) rows.
// CHECK-LABEL: func.func @fused
// CHECK:      %[[T:.*]] = tensor.dim %arg0, %c0
// CHECK:      %[[TROWS:.*]] = arith.minsi %[[T]], %c32
// CHECK:      %[[TILE:.*]] = memref.alloc(%[[TROWS]]) : memref<?x12xf32>
// CHECK:      %[[NT:.*]] = arith.ceildivui
// CHECK:      scf.for %[[I:.*]] = %c0 to %[[NT]]
// CHECK:        %[[BEGIN:.*]] = arith.muli %[[I]], %c32
// CHECK:        %[[END:.*]] = arith.minsi
// The router matmul of the tile: moe.gate's register-blocked kernel (S = 12:
// one masked 16-lane block per row), stored into the tile buffer.
// CHECK:        vector.constant_mask [12] : vector<16xi1>
// CHECK:        vector.fma
// CHECK:        vector.maskedstore %[[TILE]]
// CHECK:        scf.for %[[T2:.*]] = %[[BEGIN]] to %[[END]] step
// CHECK:          memref.load %[[TILE]]
// CHECK-NOT:  memref.alloc(%{{.*}}) : memref<?x12xf32>
// CHECK:      memref.alloc(%{{.*}}) : memref<?x64xf32>
func.func @fused(%x: tensor<?x64xf32>, %wr: tensor<64x12xf32>)
    -> (tensor<?x4xi32>, tensor<?x4xf32>, tensor<?x64xf32>, tensor<9xi32>, tensor<?x4xi32>) {
  %0:5 = moe.route_dispatch %x router(%wr : tensor<64x12xf32>)
      experts = <compute = 8, null = 4> k = 4 strategy = top_k normalize = non_null
      : tensor<?x64xf32> -> tensor<?x4xi32>, tensor<?x4xf32>, tensor<?x64xf32>,
        tensor<9xi32>, tensor<?x4xi32>
  return %0#0, %0#1, %0#2, %0#3, %0#4
      : tensor<?x4xi32>, tensor<?x4xf32>, tensor<?x64xf32>, tensor<9xi32>, tensor<?x4xi32>
}
