// RUN: moe-opt %s --moe-decompose-layer --moe-fuse-gating-dispatch --convert-moe-to-loops --canonicalize --cse | FileCheck %s
// RUN: moe-opt %s --moe-decompose-layer --convert-moe-to-loops --canonicalize --cse | FileCheck %s --check-prefix=UNFUSED

// Null-expert elision is a property of the lowering, not a separate pass: a
// whole AdaMoE layer (8 compute + 4 null experts, K = 4), fused or not, does
// no work for a null or empty slot.
//  * dispatch: only ids in [0, 8) get a row (the copy of x[t] sits under that
//    guard); every other slot gets slot_rows = -1;
//  * FFN: work items are the rows of the 8 compute experts (not 12), bounded
//    by the offsets, in chunks; an expert's weights are read only by the
//    matmul blocks of its items, so an expert without rows has no item,
//    loads no weights and does no FLOPs;
//  * combine: a slot contributes only if its id is a compute expert and its
//    row is valid; with no copy or constant experts x is never read after
//    dispatch.
// CHECK-LABEL: func.func @adamoe
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<?x64xf32>, %[[WR:[a-z0-9]+]]: tensor<64x12xf32>, %[[WU:[a-z0-9]+]]: tensor<8x64x128xf32>, %[[WG:[a-z0-9]+]]: tensor<8x64x128xf32>, %[[WD:[a-z0-9]+]]: tensor<8x128x64xf32>)
// CHECK-DAG:  %[[E:.*]] = arith.constant 8 : i32
// CHECK-DAG:  %[[ZERO:.*]] = arith.constant 0 : i32
// The fused router reads x (packed per tile) and the router weights for the
// logits of a tile.
// CHECK:      bufferization.to_buffer %[[WR]]
// CHECK:      tensor.extract %[[X]]
// CHECK:      vector.maskedload
// CHECK:      vector.fma
// Scatter: compute slots only.
// CHECK:      %[[ROWS:.*]] = memref.alloc(%[[R:.*]]) : memref<?x64xf32>
// CHECK:      scf.for %[[T:.*]] = %c0 to %{{.*}}
// CHECK:        scf.for %[[J:.*]] = %c0 to %c4
// CHECK:          %[[ID:.*]] = memref.load %{{.*}}[%[[T]], %[[J]]] : memref<?x4xi32>
// CHECK-DAG:      arith.cmpi sge, %[[ID]], %[[ZERO]]
// CHECK-DAG:      arith.cmpi slt, %[[ID]], %[[E]]
// CHECK:          scf.if
// CHECK:            scf.for %[[H:.*]] = %c0 to %c64
// CHECK:              tensor.extract %[[X]][%[[T]], %[[H]]]
// CHECK:              memref.store {{.*}}, %[[ROWS]]
// CHECK:          } else {
// CHECK:            memref.store %c-1_i32
// FFN: 8 experts; an expert's rows [offsets[e], offsets[e+1]) form work
// items, and its weights are read only by the matmul blocks of those items.
// CHECK:      %[[WUBUF:.*]] = scf.if {{.*}} -> (memref<8x64x128xf32
// CHECK:      %[[WDBUF:.*]] = scf.if {{.*}} -> (memref<8x128x64xf32
// CHECK:      %[[WGBUF:.*]] = scf.if {{.*}} -> (memref<8x64x128xf32
// CHECK:      %[[SAFE:.*]] = memref.alloc() : memref<9xindex>
// CHECK:      scf.for %{{.*}} = %c0 to %c8
// Work items: the rows of each of the 8 compute experts, in chunks.
// CHECK:      %[[NITEMS:.*]] = scf.for %{{.*}} = %c0 to %c8 step %c1 iter_args
// CHECK:        memref.load %[[SAFE]]
// CHECK:        arith.ceildivui %{{.*}}, %c128
// CHECK:      scf.for %[[I:.*]] = %c0 to %[[NITEMS]]
// CHECK:        %[[EX:.*]] = memref.load %{{.*}}[%[[I]]] : memref<?xindex>
// CHECK:          vector.load %[[WUBUF]][%[[EX]],
// CHECK:          memref.load %[[ROWS]][
// CHECK:          vector.load %[[WGBUF]][%[[EX]],
// CHECK:          vector.load %[[WDBUF]][%[[EX]],
// Combine: guarded on a compute id and a valid row, reads only the FFN output.
// CHECK:      scf.for
// CHECK:        scf.for %{{.*}} = %c0 to %c4
// CHECK-DAG:      arith.cmpi slt, %{{.*}}, %[[E]]
// CHECK-DAG:      arith.cmpi slt, %{{.*}}, %[[R32:.*]] : i32
// CHECK:          scf.if
// CHECK-NOT:  tensor.extract %[[X]]
// CHECK-NOT:  vector.load %[[WUBUF]]
// CHECK:      return

// Unfused, the same guards hold; the [T, 12] logits exist here only.
// UNFUSED-LABEL: func.func @adamoe
// UNFUSED-SAME: (%[[X:[a-z0-9]+]]: tensor<?x64xf32>
// UNFUSED-DAG:  %[[E:.*]] = arith.constant 8 : i32
// UNFUSED:      memref.alloc(%{{.*}}) : memref<?x12xf32>
// UNFUSED:      scf.if
// UNFUSED:        scf.for %{{.*}} = %c0 to %c64
// UNFUSED:          tensor.extract %[[X]]
// UNFUSED:      scf.for %{{.*}} = %c0 to %c8
// UNFUSED:        arith.ceildivui %{{.*}}, %c128
// UNFUSED-NOT:  tensor.extract %[[X]]
// UNFUSED:      return
func.func @adamoe(%x: tensor<?x64xf32>, %wr: tensor<64x12xf32>,
                  %wu: tensor<8x64x128xf32>, %wg: tensor<8x64x128xf32>,
                  %wd: tensor<8x128x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer %x router(%wr : tensor<64x12xf32>)
      up(%wu : tensor<8x64x128xf32>) gate(%wg : tensor<8x64x128xf32>)
      down(%wd : tensor<8x128x64xf32>)
      experts = <compute = 8, null = 4> k = 4 strategy = top_k
      normalize = non_null activation = silu gated
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
