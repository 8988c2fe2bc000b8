// RUN: moe-opt %s --split-input-file --convert-moe-to-loops --canonicalize --cse | FileCheck %s

// moe.dispatch is a stable counting sort over the compute slots only:
// histogram, exclusive scan, scatter. R is the scan total (the number of
// compute slots), never T*K.
// The token counts of x and ids are both dynamic: they are compared at run
// time, and a mismatch records an error instead of running the op.
// CHECK:      memref.global "public" @moe_runtime_error : memref<i32> = dense<0>
// CHECK-LABEL: func.func @dispatch
// CHECK-SAME: (%[[X:.*]]: tensor<?x8xf32>, %[[IDS:.*]]: tensor<?x2xi32>)
// CHECK-DAG:  %[[E:.*]] = arith.constant 4 : i32
// CHECK-DAG:  %[[ZERO:.*]] = arith.constant 0 : i32
// CHECK-DAG:  %[[T:.*]] = tensor.dim %[[X]], %c0
// CHECK-DAG:  %[[TIDS:.*]] = tensor.dim %[[IDS]], %c0
// CHECK:      %[[SAME:.*]] = arith.cmpi eq, %[[TIDS]], %[[T]]
// CHECK:      %[[RESULTS:.*]]:3 = scf.if %[[SAME]]
// CHECK:      %[[COUNT:.*]] = memref.alloc() : memref<4xindex>
// Histogram: only ids in [0, E) are counted.
// CHECK:      scf.for %[[T1:.*]] = %c0 to %[[T]]
// CHECK:        scf.for %[[J1:.*]] = %c0 to %c2
// CHECK:          %[[ID:.*]] = tensor.extract %[[IDS]][%[[T1]], %[[J1]]]
// CHECK-DAG:      arith.cmpi slt, %[[ID]], %[[E]]
// CHECK-DAG:      arith.cmpi sge, %[[ID]], %[[ZERO]]
// CHECK:          scf.if
// CHECK:            memref.load %[[COUNT]]
// CHECK:            arith.addi
// CHECK:            memref.store {{.*}}, %[[COUNT]]
// Exclusive scan into offsets; its total is R.
// CHECK:      %[[OFFSETS:.*]] = memref.alloc() : memref<5xi32>
// CHECK:      %[[R:.*]] = scf.for {{.*}} iter_args(%[[START:.*]] = %c0) -> (index)
// CHECK:        memref.store {{.*}}, %[[OFFSETS]]
// CHECK:        scf.yield
// CHECK:      memref.store {{.*}}, %[[OFFSETS]][%c4]
// CHECK:      %[[ROWS:.*]] = memref.alloc(%[[R]]) : memref<?x8xf32>
// CHECK:      %[[SLOTS:.*]] = memref.alloc(%[[T]]) : memref<?x2xi32>
// Scatter in (token, slot) order: a compute slot copies its token's row,
// every other slot gets slot_rows = -1.
// CHECK:      scf.for %[[T2:.*]] = %c0 to %[[T]]
// CHECK:        scf.for %[[J2:.*]] = %c0 to %c2
// CHECK:          scf.if
// CHECK:            %[[ROW:.*]] = memref.load %[[COUNT]]
// CHECK:            scf.for %[[H:.*]] = %c0 to %c8
// CHECK:              %[[V:.*]] = tensor.extract %[[X]][%[[T2]], %[[H]]]
// CHECK:              memref.store %[[V]], %[[ROWS]][%[[ROW]], %[[H]]]
// CHECK:            memref.store {{.*}}, %[[SLOTS]][%[[T2]], %[[J2]]]
// CHECK:          } else {
// CHECK:            memref.store %c-1_i32, %[[SLOTS]][%[[T2]], %[[J2]]]
// CHECK-NOT:  memref.atomic_rmw
// CHECK:      scf.yield %[[ROWS]], %[[OFFSETS]], %[[SLOTS]]
// CHECK:      } else {
// CHECK:        %[[FLAG:.*]] = memref.get_global @moe_runtime_error
// CHECK:        memref.store %c3_i32, %[[FLAG]][]
// CHECK:      bufferization.to_tensor %[[RESULTS]]#0
func.func @dispatch(%x: tensor<?x8xf32>, %ids: tensor<?x2xi32>)
    -> (tensor<?x8xf32>, tensor<5xi32>, tensor<?x2xi32>) {
  %rows, %offsets, %slot_rows = moe.dispatch %x, %ids num_experts = 4
      : tensor<?x8xf32>, tensor<?x2xi32>
      -> tensor<?x8xf32>, tensor<5xi32>, tensor<?x2xi32>
  return %rows, %offsets, %slot_rows
      : tensor<?x8xf32>, tensor<5xi32>, tensor<?x2xi32>
}

// -----

// The padded form allocates R_max rows, clamps the offsets to it, drops the
// slots whose row would not fit, and zeroes the padding rows.
// CHECK-LABEL: func.func @dispatch_padded
// CHECK:      %[[RMAX:.*]] = arith.constant 16 : index
// CHECK:      %[[R:.*]] = scf.for
// CHECK:      %[[ROWS:.*]] = memref.alloc() : memref<16x8xf32>
// CHECK:      %[[ROW:.*]] = memref.load
// CHECK:      %[[FITS:.*]] = arith.cmpi slt, %[[ROW]], %[[RMAX]]
// CHECK:      scf.if %[[FITS]]
// CHECK:        memref.store {{.*}}, %[[ROWS]][%[[ROW]],
// CHECK:      %[[USED:.*]] = arith.minsi %[[R]], %[[RMAX]]
// CHECK:      scf.for {{.*}} = %[[USED]] to %[[RMAX]]
// CHECK:        memref.store %cst, %[[ROWS]]
func.func @dispatch_padded(%x: tensor<?x8xf32>, %ids: tensor<?x2xi32>)
    -> tensor<16x8xf32> {
  %rows, %offsets, %slot_rows = moe.dispatch %x, %ids num_experts = 4
      : tensor<?x8xf32>, tensor<?x2xi32>
      -> tensor<16x8xf32>, tensor<5xi32>, tensor<?x2xi32>
  return %rows : tensor<16x8xf32>
}
