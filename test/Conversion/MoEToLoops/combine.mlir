// RUN: moe-opt %s --split-input-file --convert-moe-to-loops --canonicalize --cse | FileCheck %s

// Null and empty slots do no work: only a compute slot whose id is in
// [0, E) and whose row is in [0, R) reads its weight and its row of y. With
// no copy or constant experts, x is never read (only its size). Each token
// is accumulated in slot order into its own scratch row: no atomics.
// CHECK-LABEL: func.func @combine_null_experts
// CHECK-SAME: (%[[Y:.*]]: tensor<?x8xf32>, %[[SLOTS:.*]]: tensor<?x2xi32>, %[[IDS:.*]]: tensor<?x2xi32>, %[[W:.*]]: tensor<?x2xf32>, %[[X:.*]]: tensor<?x8xf32>)
// CHECK-DAG:  %[[E:.*]] = arith.constant 4 : i32
// CHECK-DAG:  %[[T:.*]] = tensor.dim %[[X]], %c0
// CHECK-DAG:  %[[R:.*]] = tensor.dim %[[Y]], %c0
// CHECK:      %[[ACC:.*]] = memref.alloc() : memref<8xf32>
// CHECK:      scf.for %[[T1:.*]] = %c0 to %[[T]]
// CHECK:        scf.for %[[J:.*]] = %c0 to %c2
// CHECK:          %[[ID:.*]] = tensor.extract %[[IDS]][%[[T1]], %[[J]]]
// CHECK:          %[[ROW:.*]] = tensor.extract %[[SLOTS]][%[[T1]], %[[J]]]
// CHECK:          %[[RI32:.*]] = arith.index_cast %[[R]]
// CHECK-DAG:      arith.cmpi slt, %[[ROW]], %[[RI32]]
// CHECK-DAG:      arith.cmpi slt, %[[ID]], %[[E]]
// CHECK:          scf.if
// CHECK:            tensor.extract %[[W]][%[[T1]], %[[J]]]
// CHECK:            scf.for
// CHECK:              tensor.extract %[[Y]]
// CHECK-NOT:  tensor.extract %[[X]]
// CHECK-NOT:  memref.atomic_rmw
// CHECK:      return
func.func @combine_null_experts(%y: tensor<?x8xf32>, %s: tensor<?x2xi32>,
                                %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                                %x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %x, %init_0_c0 : tensor<?x8xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x8xf32>
  %0 = moe.combine %y, %s, %ids, %w, %x experts = <compute = 4, null = 2> into(%init_0)
      : tensor<?x8xf32>, tensor<?x2xi32>, tensor<?x2xi32>, tensor<?x2xf32>,
        tensor<?x8xf32> into tensor<?x8xf32>
  return %0 : tensor<?x8xf32>
}

// -----

// Copy experts read x[t]; constant experts compute softmax(x[t] @ Wc[i])
// and mix x[t] with v[i].
// CHECK-LABEL: func.func @combine_moepp
// CHECK-SAME: %[[X:[a-z0-9]+]]: tensor<?x8xf32>, %[[WC:[a-z0-9]+]]: tensor<1x8x2xf32>, %[[V:[a-z0-9]+]]: tensor<1x8xf32>
// Copy range [5, 6).
// CHECK-DAG:  %[[C5:.*]] = arith.constant 5 : i32
// CHECK-DAG:  %[[C6:.*]] = arith.constant 6 : i32
// CHECK-DAG:  arith.cmpi slt, %{{.*}}, %[[C6]]
// CHECK-DAG:  arith.cmpi sge, %{{.*}}, %[[C5]]
// CHECK:      scf.if
// CHECK:        tensor.extract %[[X]]
// CHECK:      scf.if
// CHECK:        tensor.extract %[[WC]]
// CHECK:        arith.maximumf
// CHECK:        math.exp
// CHECK:        math.exp
// CHECK:        tensor.extract %[[V]]
func.func @combine_moepp(%y: tensor<?x8xf32>, %s: tensor<?x2xi32>,
                         %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                         %x: tensor<?x8xf32>, %wc: tensor<1x8x2xf32>,
                         %v: tensor<1x8xf32>) -> tensor<?x8xf32> {
  %init_0_c0 = arith.constant 0 : index
  %init_0_d0 = tensor.dim %x, %init_0_c0 : tensor<?x8xf32>
  %init_0 = tensor.empty(%init_0_d0) : tensor<?x8xf32>
  %0 = moe.combine %y, %s, %ids, %w, %x const_proj(%wc : tensor<1x8x2xf32>)
      const_values(%v : tensor<1x8xf32>)
      experts = <compute = 4, null = 1, copy = 1, const = 1> into(%init_0)
      : tensor<?x8xf32>, tensor<?x2xi32>, tensor<?x2xi32>, tensor<?x2xf32>,
        tensor<?x8xf32> into tensor<?x8xf32>
  return %0 : tensor<?x8xf32>
}
