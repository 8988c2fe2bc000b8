// RUN: moe-opt %s --split-input-file --ownership-based-buffer-deallocation -verify-diagnostics | FileCheck %s

// The upstream buffer deallocation with the GPU pipeline's models
// (DeviceBufferDeallocation.cpp): a device buffer freed by a gpu.dealloc is
// not the block's to free; the host temporary is.
// CHECK-LABEL: func.func @freed_on_the_device(
//       CHECK:   %[[D:.*]] = gpu.alloc (%{{.*}}) : memref<?xf32>
//       CHECK:   %[[H:.*]] = memref.alloc(%{{.*}}) : memref<?xf32>
//       CHECK:   gpu.dealloc %[[D]] : memref<?xf32>
//   CHECK-NOT:   %[[D]]
//       CHECK:   %[[BASE:[^,]*]], {{.*}} = memref.extract_strided_metadata %[[H]]
//       CHECK:   bufferization.dealloc (%[[BASE]] : memref<f32>)
//   CHECK-NOT:   %[[D]]
//       CHECK:   return
func.func @freed_on_the_device(%n: index) {
  %d = gpu.alloc (%n) : memref<?xf32>
  %h = memref.alloc(%n) : memref<?xf32>
  gpu.dealloc %d : memref<?xf32>
  return
}

// -----

// A device result: returned as owned, neither copied nor freed.
// CHECK-LABEL: func.func @returned_to_the_caller(
//       CHECK:   %[[D:.*]] = gpu.alloc (%{{.*}}) : memref<?xf32>
//   CHECK-NOT:   memref.alloc
//   CHECK-NOT:   memref.copy
//   CHECK-NOT:   bufferization.dealloc (
//       CHECK:   return %[[D]] : memref<?xf32>
func.func @returned_to_the_caller(%n: index) -> memref<?xf32> {
  %d = gpu.alloc (%n) : memref<?xf32>
  return %d : memref<?xf32>
}

// -----

func.func @leaked(%n: index) {
  // expected-error @+1 {{'gpu.alloc' op is neither freed by a gpu.dealloc nor returned by its function: the buffer deallocation cannot free device memory (free it with gpu.dealloc)}}
  %d = gpu.alloc (%n) : memref<?xf32>
  return
}
