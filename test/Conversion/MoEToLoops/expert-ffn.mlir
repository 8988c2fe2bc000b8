// RUN: moe-opt %s --split-input-file --convert-moe-to-loops --canonicalize --cse | FileCheck %s
// RUN: moe-opt %s --split-input-file --convert-moe-to-loops="instrument-ffn" --canonicalize --cse | FileCheck %s --check-prefix=COUNT

// The FFN loops over experts, and over each expert's rows with bounds loaded
// from the sanitised offsets: an expert without rows runs no iteration, and
// its weights are read only inside that row loop. Rows past offsets[E] are
// zeroed. Nothing iterates over T*K slots.
// CHECK-LABEL: func.func @ffn
// CHECK-SAME: (%[[ROWS:.*]]: tensor<?x8xf32>, %[[OFF:.*]]: tensor<5xi32>, %[[WU:.*]]: tensor<4x8x16xf32>, %[[WD:.*]]: tensor<4x16x8xf32>)
// CHECK:      %[[R:.*]] = tensor.dim %[[ROWS]], %c0
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
// The expert loop; the row loop runs from offsets[e] to offsets[e+1].
// CHECK:      scf.for %[[E:.*]] = %c0 to %c4
// CHECK:        %[[BEGIN:.*]] = memref.load %[[SAFE]][%[[E]]]
// CHECK:        %[[END:.*]] = memref.load %[[SAFE]][
// CHECK:        scf.for %[[ROW:.*]] = %[[BEGIN]] to %[[END]]
// CHECK:          tensor.extract %[[ROWS]][%[[ROW]],
// CHECK:          tensor.extract %[[WU]][%[[E]],
// CHECK:          tensor.extract %[[WD]][%[[E]],
// CHECK:        }
// CHECK:      }
// CHECK:      %[[USED:.*]] = memref.load %[[SAFE]][%c4]
// CHECK:      scf.for {{.*}} = %[[USED]] to %[[R]]
// CHECK-NOT:  tensor.extract %[[WU]]
func.func @ffn(%rows: tensor<?x8xf32>, %offsets: tensor<5xi32>,
               %wu: tensor<4x8x16xf32>, %wd: tensor<4x16x8xf32>)
    -> tensor<?x8xf32> {
  %y = moe.expert_ffn %rows, %offsets up(%wu : tensor<4x8x16xf32>)
      down(%wd : tensor<4x16x8xf32>) activation = relu
      : tensor<?x8xf32>, tensor<5xi32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// Instrumented: a public global of [E, 2] counters (rows, multiply-adds).
// COUNT: memref.global "public" @moe_ffn_counters_0 : memref<4x2xi64> = dense<0>
// COUNT-LABEL: func.func @ffn
// COUNT: %[[C:.*]] = memref.get_global @moe_ffn_counters_0 : memref<4x2xi64>
// COUNT: scf.for %[[E:.*]] = %c0 to %c4
// COUNT:   scf.for {{.*}} = %{{.*}} to %{{.*}}
// One row more for this expert ...
// COUNT:     %[[ROWS:.*]] = memref.load %[[C]][%[[E]], %c0]
// COUNT:     %[[NEXT:.*]] = arith.addi %[[ROWS]], %c1_i64
// COUNT:     memref.store %[[NEXT]], %[[C]][%[[E]], %c0]
// ... and each inner loop's trip count of multiply-adds, added after it ran.
// COUNT:     scf.for
// COUNT:       scf.for
// COUNT:       }
// COUNT:       %[[MACS:.*]] = memref.load %[[C]][%[[E]], %c1]
// COUNT:       arith.addi %[[MACS]], %c16_i64
// COUNT:       memref.store {{.*}}, %[[C]][%[[E]], %c1]

// -----

// Gated (SwiGLU): up and gate projections, then the down projection, all
// inside the row loop of the expert.
// CHECK-LABEL: func.func @swiglu
// CHECK-SAME: %[[WU:[a-z0-9]+]]: tensor<2x4x6xf32>, %[[WG:[a-z0-9]+]]: tensor<2x4x6xf32>, %[[WD:[a-z0-9]+]]: tensor<2x6x4xf32>
// CHECK:      scf.for %[[E:.*]] = %c0 to %c2
// CHECK:        scf.for %[[ROW:.*]] = %{{.*}} to %{{.*}}
// CHECK:          tensor.extract %[[WU]][%[[E]],
// CHECK:          tensor.extract %[[WG]][%[[E]],
// CHECK:          math.exp
// CHECK:          tensor.extract %[[WD]][%[[E]],
func.func @swiglu(%rows: tensor<?x4xf32>, %offsets: tensor<3xi32>,
                  %wu: tensor<2x4x6xf32>, %wg: tensor<2x4x6xf32>,
                  %wd: tensor<2x6x4xf32>) -> tensor<?x4xf32> {
  %y = moe.expert_ffn %rows, %offsets up(%wu : tensor<2x4x6xf32>)
      gate(%wg : tensor<2x4x6xf32>) down(%wd : tensor<2x6x4xf32>)
      activation = silu gated : tensor<?x4xf32>, tensor<3xi32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}
