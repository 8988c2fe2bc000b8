// RUN: moe-opt %s --split-input-file --convert-moe-to-loops --canonicalize --cse | FileCheck %s
// RUN: moe-opt %s --split-input-file --convert-moe-to-loops="instrument-ffn" --canonicalize --cse | FileCheck %s --check-prefix=COUNT
// RUN: moe-opt %s --split-input-file --convert-moe-to-loops="parallel" --canonicalize --cse | FileCheck %s --check-prefix=PAR

// The FFN runs work items: each expert's rows, bounded by the sanitised
// offsets, in chunks (of the matmul schedule's ffn_rows; the blocking is
// checked in matmul-schedule.mlir): an expert without rows has no item, so
// no block of the matmul reads its weights. Rows past offsets[E] are zeroed.
// Nothing iterates over T*K slots.
// CHECK-LABEL: func.func @ffn
// CHECK-SAME: (%[[ROWS:.*]]: tensor<?x8xf32>, %[[OFF:.*]]: tensor<5xi32>, %[[WU:.*]]: tensor<4x8x16xf32>, %[[WD:.*]]: tensor<4x16x8xf32>)
// CHECK:      %[[R:.*]] = tensor.dim %[[ROWS]], %c0
// The weights need a unit innermost stride (checked at run time).
// CHECK:      %[[WUANY:.*]] = bufferization.to_buffer %[[WU]]
// CHECK:      %[[WUBUF:.*]] = scf.if %{{.*}} -> (memref<4x8x16xf32, strided<[?, ?, 1], offset: ?>>)
// CHECK:      %[[WDBUF:.*]] = scf.if %{{.*}} -> (memref<4x16x8xf32, strided<[?, ?, 1], offset: ?>>)
// The destination (a tensor.empty): a new buffer.
// CHECK:      %[[OUT:.*]] = memref.alloc(%[[R]]) : memref<?x8xf32>
// Sanitised offsets: o[0] = 0, o[e+1] = clamp(o[e+1], o[e], R).
// CHECK:      %[[SAFE:.*]] = memref.alloc() : memref<5xindex>
// CHECK:      memref.store %c0, %[[SAFE]][%c0]
// CHECK:      scf.for %[[G:.*]] = %c0 to %c4
// CHECK:        %[[PREV:.*]] = memref.load %[[SAFE]][%[[G]]]
// CHECK:        %[[RAW:.*]] = tensor.extract %[[OFF]]
// CHECK:        %[[IDX:.*]] = arith.index_cast %[[RAW]]
// CHECK:        %[[LOW:.*]] = arith.maxsi %[[IDX]], %[[PREV]]
// CHECK:        %[[CLAMPED:.*]] = arith.minsi %[[LOW]], %[[R]]
// CHECK:        memref.store %[[CLAMPED]], %[[SAFE]]
// Work items: each expert's rows in chunks, counted, then listed as
// (expert, first row); an expert without rows has none.
// CHECK:      %[[NITEMS:.*]] = scf.for %[[E0:.*]] = %c0 to %c4 step %c1 iter_args
// CHECK:        arith.ceildivui
// CHECK:      %[[ITEM_E:.*]] = memref.alloc(%[[NITEMS]]) : memref<?xindex>
// CHECK:      %[[ITEM_R:.*]] = memref.alloc(%[[NITEMS]]) : memref<?xindex>
// CHECK:      scf.for
// CHECK:        scf.for
// CHECK:          memref.store %{{.*}}, %[[ITEM_E]]
// CHECK:          memref.store %{{.*}}, %[[ITEM_R]]
// The items (scf.parallel with parallel=true), each with its own f32
// scratch for the hidden activations of its rows.
// CHECK:      scf.for %[[I:.*]] = %c0 to %[[NITEMS]]
// CHECK:        %[[E:.*]] = memref.load %[[ITEM_E]][%[[I]]]
// CHECK:        %[[FIRST:.*]] = memref.load %[[ITEM_R]][%[[I]]]
// CHECK:        %[[UP:.*]] = memref.alloc() : memref<{{[0-9]+}}x16xf32>
// Up projection: the item's rows packed, then register blocks with the
// expert's weights as vectors.
// CHECK:        %[[PACK:.*]] = memref.alloc() : memref<{{[0-9]+x[0-9]+x[0-9]+}}xf32>
// CHECK:          tensor.extract %[[ROWS]]
// CHECK:          memref.store {{.*}}, %[[PACK]][
// CHECK:          scf.for {{.*}} iter_args
// CHECK:            vector.load %[[WUBUF]][%[[E]], %{{.*}}, %c0]
// CHECK:            memref.load %[[PACK]]
// CHECK:            vector.fma
// CHECK:          vector.store %{{.*}}, %[[UP]]
// The activation (relu) over the scratch.
// CHECK:          arith.cmpf ogt
// Down projection into the output rows, 8 columns: one masked panel.
// CHECK:          vector.maskedload %[[WDBUF]][%[[E]],
// CHECK:          vector.maskedstore %[[OUT]]
// CHECK:      %[[USED:.*]] = memref.load %[[SAFE]][%c4]
// CHECK:      scf.for {{.*}} = %[[USED]] to %[[R]]
// CHECK-NOT:  vector.load %[[WUBUF]]
// CHECK:      return
// With parallel, the items are an scf.parallel, scratch allocated inside.
// PAR-LABEL: func.func @ffn
// PAR:      %[[NITEMS:.*]] = scf.for
// PAR:      scf.parallel (%[[I:.*]]) = (%c0) to (%[[NITEMS]]) step (%c1)
// PAR:        memref.load %{{.*}}[%[[I]]] : memref<?xindex>
// PAR:        memref.alloc() : memref<{{[0-9]+}}x16xf32>
// PAR:        vector.fma
func.func @ffn(%rows: tensor<?x8xf32>, %offsets: tensor<5xi32>,
               %wu: tensor<4x8x16xf32>, %wd: tensor<4x16x8xf32>)
    -> tensor<?x8xf32> {
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %rows, %init_y_c0 : tensor<?x8xf32>
  %init_y = tensor.empty(%init_y_d0) : tensor<?x8xf32>
  %y = moe.expert_ffn %rows, %offsets up(%wu : tensor<4x8x16xf32>)
      down(%wd : tensor<4x16x8xf32>) activation = relu into(%init_y)
      : tensor<?x8xf32>, tensor<5xi32> into tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// Instrumented: a public global of [E, 2] counters (rows, multiply-adds):
// each item adds its rows, and each register block its rows x columns x
// depth as it finishes; items of one expert may run concurrently, so the
// adds are atomic.
// COUNT: memref.global "public" @moe_ffn_counters_0 : memref<4x2xi64> = dense<0>
// COUNT-LABEL: func.func @ffn
// COUNT: %[[C:.*]] = memref.get_global @moe_ffn_counters_0 : memref<4x2xi64>
// COUNT:   %[[E:.*]] = memref.load %{{.*}}[%{{.*}}] : memref<?xindex>
// COUNT:   %[[FIRST:.*]] = memref.load %{{.*}}[%{{.*}}] : memref<?xindex>
// COUNT:   %[[LAST:.*]] = arith.minsi
// COUNT:   memref.alloc() : memref<{{[0-9]+}}x16xf32>
// COUNT:   %[[N:.*]] = arith.subi %[[LAST]], %[[FIRST]]
// COUNT:   %[[N64:.*]] = arith.index_cast %[[N]] : index to i64
// COUNT:   memref.atomic_rmw addi %[[N64]], %[[C]][%[[E]], %c0]
// Each register block of the up projection (depth 8, 16 columns) adds its
// rows x 16 x 8 (8 rows by default: 1024).
// COUNT:   scf.for
// COUNT:     scf.for
// COUNT:       vector.fma
// COUNT:     memref.atomic_rmw addi %c{{[0-9]+}}_i64, %[[C]][%[[E]], %c1]

// -----

// Gated (SwiGLU): up and gate projections of the item's rows into two
// scratch buffers, SiLU(gate) * up, then the down projection, all inside
// the item.
// CHECK-LABEL: func.func @swiglu
// CHECK-SAME: %[[WU:[a-z0-9]+]]: tensor<2x4x6xf32>, %[[WG:[a-z0-9]+]]: tensor<2x4x6xf32>, %[[WD:[a-z0-9]+]]: tensor<2x6x4xf32>
// CHECK:      %[[WUBUF:.*]] = scf.if
// CHECK:      %[[WDBUF:.*]] = scf.if
// CHECK:      %[[WGBUF:.*]] = scf.if
// CHECK:        %[[E:.*]] = memref.load %{{.*}}[%{{.*}}] : memref<?xindex>
// CHECK:        %[[UP:.*]] = memref.alloc() : memref<128x6xf32>
// CHECK:        %[[GATE:.*]] = memref.alloc() : memref<128x6xf32>
// CHECK:          vector.maskedload %[[WUBUF]][%[[E]],
// CHECK:          vector.maskedstore %[[UP]][
// CHECK:          vector.maskedload %[[WGBUF]][%[[E]],
// CHECK:          vector.maskedstore %[[GATE]][
// CHECK:          math.exp
// CHECK:          vector.maskedload %[[WDBUF]][%[[E]],
func.func @swiglu(%rows: tensor<?x4xf32>, %offsets: tensor<3xi32>,
                  %wu: tensor<2x4x6xf32>, %wg: tensor<2x4x6xf32>,
                  %wd: tensor<2x6x4xf32>) -> tensor<?x4xf32> {
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %rows, %init_y_c0 : tensor<?x4xf32>
  %init_y = tensor.empty(%init_y_d0) : tensor<?x4xf32>
  %y = moe.expert_ffn %rows, %offsets up(%wu : tensor<2x4x6xf32>)
      gate(%wg : tensor<2x4x6xf32>) down(%wd : tensor<2x6x4xf32>)
      activation = silu gated into(%init_y) : tensor<?x4xf32>, tensor<3xi32> into tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}
