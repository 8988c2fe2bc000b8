// RUN: moe-opt %s -split-input-file -moe-status-argument -verify-diagnostics | FileCheck %s

// The code stores go through the trailing status argument; the global goes.
// CHECK-NOT:   memref.global
// CHECK-LABEL: func.func @layer(
// CHECK-SAME:      %[[OK:.*]]: i1, %[[STATUS:.*]]: !llvm.ptr {moe.status})
// CHECK:         scf.if %[[OK]] {
// CHECK-NEXT:    } else {
// CHECK-NEXT:      %[[CODE:.*]] = arith.constant 3 : i32
// CHECK-NEXT:      llvm.store %[[CODE]], %[[STATUS]] : i32, !llvm.ptr
// CHECK-NOT:     memref.get_global
memref.global "public" @moe_runtime_error : memref<i32> = dense<0>
func.func @layer(%ok: i1) {
  scf.if %ok {
  } else {
    %flag = memref.get_global @moe_runtime_error : memref<i32>
    %c3 = arith.constant 3 : i32
    memref.store %c3, %flag[] : memref<i32>
  }
  return
}

// -----

// Private helpers that record errors get it, their callers pass theirs on;
// a private function that cannot fail keeps its signature; every public
// function with a body has one ABI (it gets the argument even without an
// error site); declarations are left alone.
// CHECK-LABEL: func.func private @check(
// CHECK-SAME:      %{{.*}}: i1, %[[S0:.*]]: !llvm.ptr {moe.status})
// CHECK:         llvm.store %{{.*}}, %[[S0]] : i32, !llvm.ptr
// CHECK-LABEL: func.func private @middle(
// CHECK-SAME:      %[[A:.*]]: i1, %[[S1:.*]]: !llvm.ptr {moe.status})
// CHECK:         call @check(%[[A]], %[[S1]]) : (i1, !llvm.ptr) -> ()
// CHECK-LABEL: func.func private @pure(%{{.*}}: i32) -> i32
// CHECK-LABEL: func.func @entry(
// CHECK-SAME:      %[[B:.*]]: i1, %[[S2:.*]]: !llvm.ptr {moe.status}) -> i32
// CHECK:         call @middle(%[[B]], %[[S2]]) : (i1, !llvm.ptr) -> ()
// CHECK:         call @pure(%{{.*}}) : (i32) -> i32
// CHECK:         call @other(%[[S2]]) : (!llvm.ptr) -> ()
// CHECK-LABEL: func.func @other(
// CHECK-SAME:      %{{.*}}: !llvm.ptr {moe.status})
// CHECK-LABEL: func.func private @external(i32)
memref.global "public" @moe_runtime_error : memref<i32> = dense<0>
func.func private @check(%ok: i1) {
  scf.if %ok {
  } else {
    %flag = memref.get_global @moe_runtime_error : memref<i32>
    %c2 = arith.constant 2 : i32
    memref.store %c2, %flag[] : memref<i32>
  }
  return
}
func.func private @middle(%ok: i1) {
  call @check(%ok) : (i1) -> ()
  return
}
func.func private @pure(%x: i32) -> i32 {
  return %x : i32
}
func.func @entry(%ok: i1) -> i32 {
  call @middle(%ok) : (i1) -> ()
  %c1 = arith.constant 1 : i32
  %r = call @pure(%c1) : (i32) -> i32
  call @other() : () -> ()
  return %r : i32
}
func.func @other() {
  return
}
func.func private @external(i32)

// -----

// Without error sites, public functions still get the argument.
// CHECK-LABEL: func.func @plain(
// CHECK-SAME:      %{{.*}}: f32, %{{.*}}: !llvm.ptr {moe.status}) -> f32
func.func @plain(%x: f32) -> f32 {
  return %x : f32
}

// -----

memref.global "public" @moe_runtime_error : memref<i32> = dense<0>
func.func @reads(%ok: i1) -> i32 {
  %flag = memref.get_global @moe_runtime_error : memref<i32>
  // expected-error @below {{'memref.load' op uses @moe_runtime_error other than by storing an i32 error code into it; only stores can become stores through the status argument}}
  %v = memref.load %flag[] : memref<i32>
  return %v : i32
}

// -----

// expected-note @below {{function defined here}}
func.func @target() {
  return
}
func.func @takes_address() {
  // expected-error @below {{'func.constant' op uses @target other than by func.call, but that function gets a status argument (it is public or records run-time errors)}}
  %f = func.constant @target : () -> ()
  return
}
