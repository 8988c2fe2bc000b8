// RUN: moe-opt %s --moe-gpu-capturable --split-input-file -verify-diagnostics | FileCheck %s

// What gpu-async-region leaves: a stream per call (gpu.wait async), device
// allocations and frees on it, a synchronisation at the end. The capturable
// form takes the caller's stream and workspace instead.
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @scale(%x: memref<?x64xf32>, %t: memref<?x4xi32>, %y: memref<?x64xf32>) kernel {
      gpu.return
    }
    gpu.func @reduce(%y: memref<?x64xf32>, %c: memref<?x16xf32>) kernel {
      gpu.return
    }
  }
  // The workspace query: three slots (a and c share one: c is allocated
  // after the last use of a), each as large as its largest buffer, 256-byte
  // aligned, computed from the shapes of the arguments only.
  // CHECK-LABEL: func.func @layer_workspace_size(
  //  CHECK-SAME:     %[[QX:.*]]: memref<?x64xf32>) -> index
  //       CHECK:   %[[QT:.*]] = memref.dim %[[QX]], %{{.*}} : memref<?x64xf32>
  //       CHECK:   arith.muli %{{.*}}, %[[QT]]
  //       CHECK:   arith.maxui
  //       CHECK:   arith.maxui
  //       CHECK:   arith.maxui
  //       CHECK:   arith.maxui
  //       CHECK:   arith.addi
  //       CHECK:   arith.addi
  //       CHECK:   %[[END:.*]] = arith.addi
  //   CHECK-NOT:   gpu.
  //       CHECK:   return %[[END]] : index

  // CHECK-LABEL: func.func @layer(
  //  CHECK-SAME:     %[[X:.*]]: memref<?x64xf32>, %[[STREAM:.*]]: !llvm.ptr {moe.stream}, %[[WS:.*]]: memref<?xi8> {moe.workspace}) -> memref<?x64xf32>
  //       CHECK:   arith.addi
  //       CHECK:   arith.addi
  //       CHECK:   %[[SIZE:.*]] = arith.addi
  //       CHECK:   %[[HAVE:.*]] = memref.dim %[[WS]], %{{.*}} : memref<?xi8>
  //       CHECK:   %[[FITS:.*]] = arith.cmpi uge, %[[HAVE]], %[[SIZE]] : index
  //       CHECK:   %[[TOKEN:.*]] = builtin.unrealized_conversion_cast %[[STREAM]] : !llvm.ptr to !gpu.async.token
  //       CHECK:   %[[RESULT:.*]] = scf.if %[[FITS]] -> (memref<?x64xf32>) {
  //   CHECK-NOT:     gpu.wait
  //       CHECK:     %[[A:.*]] = memref.view %[[WS]][%[[OA:.*]]][%{{.*}}] : memref<?xi8> to memref<?x64xf32>
  //       CHECK:     %[[B:.*]] = memref.view %[[WS]][%[[OB:.*]]][%{{.*}}] : memref<?xi8> to memref<?x4xi32>
  //       CHECK:     %[[Y:.*]] = memref.view %[[WS]][%[[OY:.*]]][%{{.*}}] : memref<?xi8> to memref<?x64xf32>
  //       CHECK:     gpu.launch_func async [%[[TOKEN]]] @kernels::@scale {{.*}} args(%[[X]] : memref<?x64xf32>, %[[B]] : memref<?x4xi32>, %[[A]] : memref<?x64xf32>)
  //       CHECK:     gpu.launch_func async [%[[TOKEN]]] @kernels::@scale {{.*}} args(%[[A]] : memref<?x64xf32>, %[[B]] : memref<?x4xi32>, %[[Y]] : memref<?x64xf32>)
  //       CHECK:     %[[C:.*]] = memref.view %[[WS]][%[[OA]]][%{{.*}}] : memref<?xi8> to memref<?x16xf32>
  //       CHECK:     gpu.launch_func async [%[[TOKEN]]] @kernels::@reduce {{.*}} args(%[[Y]] : memref<?x64xf32>, %[[C]] : memref<?x16xf32>)
  //   CHECK-NOT:     gpu.dealloc
  //   CHECK-NOT:     gpu.wait
  //       CHECK:     scf.yield %[[Y]] : memref<?x64xf32>
  //       CHECK:   } else {
  //       CHECK:     %[[FLAG:.*]] = memref.get_global @moe_runtime_error : memref<i32>
  //       CHECK:     %[[CODE:.*]] = arith.constant 11 : i32
  //       CHECK:     memref.store %[[CODE]], %[[FLAG]][] : memref<i32>
  //       CHECK:     %[[EMPTY:.*]] = memref.view %[[WS]][%{{.*}}][%{{.*}}] : memref<?xi8> to memref<?x64xf32>
  //       CHECK:     scf.yield %[[EMPTY]] : memref<?x64xf32>
  //       CHECK:   return %[[RESULT]] : memref<?x64xf32>
  func.func @layer(%x: memref<?x64xf32>) -> memref<?x64xf32> {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %t = memref.dim %x, %c0 : memref<?x64xf32>
    %s0 = gpu.wait async
    %a, %s1 = gpu.alloc async [%s0] (%t) : memref<?x64xf32>
    %b, %s2 = gpu.alloc async [%s1] (%t) : memref<?x4xi32>
    %y, %s3 = gpu.alloc async [%s2] (%t) : memref<?x64xf32>
    %s4 = gpu.launch_func async [%s3] @kernels::@scale blocks in (%t, %c1, %c1) threads in (%c1, %c1, %c1) args(%x : memref<?x64xf32>, %b : memref<?x4xi32>, %a : memref<?x64xf32>)
    %s5 = gpu.launch_func async [%s4] @kernels::@scale blocks in (%t, %c1, %c1) threads in (%c1, %c1, %c1) args(%a : memref<?x64xf32>, %b : memref<?x4xi32>, %y : memref<?x64xf32>)
    %c, %s6 = gpu.alloc async [%s5] (%t) : memref<?x16xf32>
    %s7 = gpu.launch_func async [%s6] @kernels::@reduce blocks in (%t, %c1, %c1) threads in (%c1, %c1, %c1) args(%y : memref<?x64xf32>, %c : memref<?x16xf32>)
    %s8 = gpu.dealloc async [%s7] %a : memref<?x64xf32>
    %s9 = gpu.dealloc async [%s8] %b : memref<?x4xi32>
    %s10 = gpu.dealloc async [%s9] %c : memref<?x16xf32>
    gpu.wait [%s10]
    return %y : memref<?x64xf32>
  }
  // Private functions keep their form.
  // CHECK-LABEL: func.func private @helper(
  //       CHECK:   gpu.wait async
  func.func private @helper() {
    %s = gpu.wait async
    gpu.wait [%s]
    return
  }
}

// -----

// The size guards of the kernels (host conditions, the error flag) stay;
// launches in them run on the caller's stream too, static buffers have
// static sizes in the layout.
module attributes {gpu.container_module} {
  memref.global "public" @moe_runtime_error : memref<i32> = dense<0>
  gpu.module @kernels {
    gpu.func @fill(%y: memref<16xindex>) kernel {
      gpu.return
    }
  }
  // CHECK-LABEL: func.func @guarded_workspace_size(
  //       CHECK:   %[[BYTES:.*]] = arith.constant 128 : index
  // CHECK-LABEL: func.func @guarded(
  //       CHECK:   %[[TOKEN:.*]] = builtin.unrealized_conversion_cast
  //       CHECK:   scf.if
  //       CHECK:     scf.if %{{.*}} {
  //       CHECK:       gpu.launch_func async [%[[TOKEN]]] @kernels::@fill
  //       CHECK:     } else {
  //       CHECK:       memref.store
  func.func @guarded(%x: memref<?xf32>) -> memref<16xindex> {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c16 = arith.constant 16 : index
    %n = memref.dim %x, %c0 : memref<?xf32>
    %ok = arith.cmpi eq, %n, %c16 : index
    %y = gpu.alloc () : memref<16xindex>
    scf.if %ok {
      %s0 = gpu.wait async
      %s1 = gpu.launch_func async [%s0] @kernels::@fill blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%y : memref<16xindex>)
      gpu.wait [%s1]
    } else {
      %flag = memref.get_global @moe_runtime_error : memref<i32>
      %code = arith.constant 5 : i32
      memref.store %code, %flag[] : memref<i32>
    }
    return %y : memref<16xindex>
  }
}

// -----

module attributes {gpu.container_module} {
  func.func @host_tensor_op(%x: memref<?xf32>) -> memref<?xf32> {
    %c0 = arith.constant 0 : index
    %n = memref.dim %x, %c0 : memref<?xf32>
    // expected-error @+1 {{'memref.alloc' op is not allowed in a capturable function (moe-gpu-capturable): it touches memory on the host; a capturable function takes device arguments and only launches kernels (move host tensor ops out of the function)}}
    %y = memref.alloc(%n) : memref<?xf32>
    return %y : memref<?xf32>
  }
}

// -----

module attributes {gpu.container_module} {
  func.func @copy_back(%x: memref<?xf32>, %h: memref<?xf32>) {
    // expected-error @+1 {{'gpu.memcpy' op is not allowed in a capturable function (moe-gpu-capturable): it copies between host and device}}
    gpu.memcpy %h, %x : memref<?xf32>, memref<?xf32>
    return
  }
}

// -----

module attributes {gpu.container_module} {
  func.func private @other()
  func.func @calls() {
    // expected-error @+1 {{'func.call' op is not allowed in a capturable function (moe-gpu-capturable): it calls another function}}
    func.call @other() : () -> ()
    return
  }
}

// -----

module attributes {gpu.container_module} {
  func.func @alloc_in_loop(%n: index) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    scf.for %i = %c0 to %n step %c1 {
      // expected-error @+1 {{'gpu.alloc' op in a loop cannot be placed in the workspace of a capturable function (moe-gpu-capturable)}}
      %y = gpu.alloc (%i) : memref<?xf32>
    }
    return
  }
}

// -----

module attributes {gpu.container_module} {
  func.func @size_from_a_branch(%c: i1, %n: index) -> memref<?xf32> {
    %m = scf.if %c -> index {
      scf.yield %n : index
    } else {
      %c1 = arith.constant 1 : index
      scf.yield %c1 : index
    }
    // expected-error @+1 {{'gpu.alloc' op has a size that is not computed from the arguments' shapes: it cannot be placed in the workspace of a capturable function}}
    %y = gpu.alloc (%m) : memref<?xf32>
    return %y : memref<?xf32>
  }
}

// -----

module attributes {gpu.container_module} {
  func.func private @f_workspace_size()
  // expected-error @+1 {{'func.func' op cannot be made capturable: the module already has a symbol named 'f_workspace_size'}}
  func.func @f() {
    return
  }
}
