// REQUIRES: cuda-toolkit
// Host temporaries of the tensor ops around the moe kernels are freed by the
// upstream buffer deallocation; device buffers are freed by
// convert-moe-to-gpu, on the device (never with the host allocator); a
// device result returned with device-arguments is neither freed nor copied.
// RUN: moe-opt %s --split-input-file --moe-gpu-pipeline="fatbin=false" | FileCheck %s
// RUN: moe-opt %s --split-input-file --moe-gpu-pipeline="fatbin=false device-arguments=true" | FileCheck %s --check-prefix=DEV

// CHECK-LABEL: llvm.func @temps(
//       CHECK:   %[[SUM:.*]] = llvm.call @malloc(
//       CHECK:   %[[D0:.*]] = llvm.call @mgpuMemAlloc(
//       CHECK:   %[[D1:.*]] = llvm.call @mgpuMemAlloc(
//       CHECK:   %[[D2:.*]] = llvm.call @mgpuMemAlloc(
//       CHECK:   gpu.launch_func
//       CHECK:   llvm.call @mgpuMemFree(%[[D0]],
//       CHECK:   llvm.call @mgpuMemFree(%[[D1]],
//       CHECK:   llvm.call @mgpuMemFree(%[[D2]],
//   CHECK-NOT:   llvm.call @free(%[[D0]])
//       CHECK:   llvm.call @free(%[[SUM]])
//   CHECK-NOT:   llvm.call @free
//       CHECK:   llvm.return
func.func @temps(%x: tensor<?x16xf32>, %w: tensor<16x4xf32>) -> tensor<?x4xf32> {
  %s = arith.addf %x, %x : tensor<?x16xf32>
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %s, %init_l_c0 : tensor<?x16xf32>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x4xf32>
  %l = moe.gate %s, %w into(%init_l) : tensor<?x16xf32>, tensor<16x4xf32> into tensor<?x4xf32>
  %r = arith.mulf %l, %l : tensor<?x4xf32>
  return %r : tensor<?x4xf32>
}

// -----

// DEV-LABEL: llvm.func @resident(
//       DEV:   llvm.call @mgpuMemAlloc(
//       DEV:   gpu.launch_func
//   DEV-NOT:   llvm.call @mgpuMemFree
//   DEV-NOT:   llvm.call @mgpuMemcpy
//   DEV-NOT:   llvm.call @malloc
//       DEV:   llvm.return
func.func @resident(%x: tensor<?x16xf32>, %w: tensor<16x4xf32>) -> tensor<?x4xf32> {
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %x, %init_l_c0 : tensor<?x16xf32>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x4xf32>
  %l = moe.gate %x, %w into(%init_l) : tensor<?x16xf32>, tensor<16x4xf32> into tensor<?x4xf32>
  return %l : tensor<?x4xf32>
}
