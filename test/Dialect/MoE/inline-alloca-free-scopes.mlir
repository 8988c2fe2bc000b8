// RUN: moe-opt %s --moe-inline-alloca-free-scopes --split-input-file | FileCheck %s

// A scope with heap allocations only is inlined.
// CHECK-LABEL: func.func @heap_only
// CHECK-NOT: memref.alloca_scope
// CHECK: %[[B:.*]] = memref.alloc() : memref<4xf32>
// CHECK-NEXT: memref.dealloc %[[B]] : memref<4xf32>
// CHECK-NEXT: return
func.func @heap_only() {
  memref.alloca_scope {
    %b = memref.alloc() : memref<4xf32>
    memref.dealloc %b : memref<4xf32>
  }
  return
}

// -----

// A scope's results are replaced by the values it returned.
// CHECK-LABEL: func.func @with_result
// CHECK-SAME: (%[[X:.*]]: f32)
// CHECK-NOT: memref.alloca_scope
// CHECK: %[[S:.*]] = arith.addf %[[X]], %[[X]] : f32
// CHECK-NEXT: return %[[S]] : f32
func.func @with_result(%x: f32) -> f32 {
  %r = memref.alloca_scope -> f32 {
    %s = arith.addf %x, %x : f32
    memref.alloca_scope.return %s : f32
  }
  return %r : f32
}

// -----

// A scope with an alloca anywhere inside (here in a nested loop) stays.
// CHECK-LABEL: func.func @keeps_alloca
// CHECK: memref.alloca_scope {
// CHECK: scf.for
// CHECK: memref.alloca() : memref<4xf32>
func.func @keeps_alloca(%n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  memref.alloca_scope {
    scf.for %i = %c0 to %n step %c1 {
      %a = memref.alloca() : memref<4xf32>
    }
  }
  return
}

// -----

// Nested scopes: the inner one (no alloca) goes, the outer one (its alloca)
// stays.
// CHECK-LABEL: func.func @nested
// CHECK: memref.alloca_scope {
// CHECK-NEXT: memref.alloca() : memref<2xf32>
// CHECK-NEXT: memref.alloc() : memref<2xf32>
// CHECK-NOT: memref.alloca_scope
func.func @nested() {
  memref.alloca_scope {
    %a = memref.alloca() : memref<2xf32>
    memref.alloca_scope {
      %b = memref.alloc() : memref<2xf32>
    }
  }
  return
}
