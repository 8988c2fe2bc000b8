// RUN: moe-opt %s --split-input-file --convert-moe-to-loops --canonicalize --cse | FileCheck %s

// logits = x @ w + b with the shared matmul kernel (its blocking is checked
// in matmul-schedule.mlir): x's rows are read (packed into a scratch), the
// weights as vectors, one fused multiply-add per step; the bias is added
// after the sum, and the logits are stored into the destination.
// CHECK-LABEL: func.func @gate
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<?x8xf32>, %[[W:[a-z0-9]+]]: tensor<8x48xf32>, %[[B:[a-z0-9]+]]: tensor<48xf32>)
// CHECK:      %[[T:.*]] = tensor.dim %[[X]], %c0
// The weights need a unit innermost stride: checked at run time, a buffer
// with another stride is copied (element by element: no runtime library).
// CHECK:      %[[WANY:.*]] = bufferization.to_buffer %[[W]] read_only : tensor<8x48xf32> to memref<8x48xf32, strided<[?, ?], offset: ?>>
// CHECK:      %{{.*}}, %{{.*}}, %{{.*}}:2, %[[WSTRIDES:.*]]:2 = memref.extract_strided_metadata %[[WANY]]
// CHECK:      %[[UNIT:.*]] = arith.cmpi eq, %[[WSTRIDES]]#1, %c1
// CHECK:      %[[WBUF:.*]] = scf.if %[[UNIT]] -> (memref<8x48xf32, strided<[?, 1], offset: ?>>)
// CHECK:        memref.cast %[[WANY]]
// CHECK:      } else {
// CHECK:        %[[COPY:.*]] = memref.alloc() : memref<8x48xf32>
// CHECK:        memref.store %{{.*}}, %[[COPY]]
// CHECK:        memref.cast %[[COPY]]
// CHECK-NOT:    memref.copy
// CHECK:      %[[BBUF:.*]] = scf.if %{{.*}} -> (memref<48xf32, strided<[1], offset: ?>>)
// The destination (a tensor.empty): a new buffer.
// CHECK:      %[[OUT:.*]] = memref.alloc(%[[T]]) : memref<?x48xf32>
// CHECK:      scf.for
// CHECK:        tensor.extract %[[X]]
// CHECK:        scf.for
// CHECK:          scf.for {{.*}} iter_args
// CHECK:            vector.load %[[WBUF]]
// CHECK:            vector.fma
// CHECK:          %[[BIAS:.*]] = vector.load %[[BBUF]]
// CHECK:          %[[SUM:.*]] = arith.addf %{{.*}}, %[[BIAS]] : vector<{{[0-9]+}}xf32>
// CHECK:          vector.store %[[SUM]], %[[OUT]]
// CHECK-NOT:  math.fma
// CHECK:      return
func.func @gate(%x: tensor<?x8xf32>, %w: tensor<8x48xf32>, %b: tensor<48xf32>)
    -> tensor<?x48xf32> {
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %x, %init_l_c0 : tensor<?x8xf32>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x48xf32>
  %l = moe.gate %x, %w bias(%b : tensor<48xf32>) into(%init_l)
      : tensor<?x8xf32>, tensor<8x48xf32> into tensor<?x48xf32>
  return %l : tensor<?x48xf32>
}

// -----

// A width that is not a multiple of 16 ends with one masked block: masked
// loads of the weights and the bias (lanes past S read nothing) and a masked
// store. bf16 weights are loaded as bf16 and extended.
// CHECK-LABEL: func.func @masked_bf16
// CHECK:      %[[MASK:.*]] = vector.constant_mask [4] : vector<[[N:[0-9]+]]xi1>
// CHECK:      scf.for
// CHECK:        vector.maskedload %{{.*}}, %[[MASK]], %{{.*}} : memref<8x20xbf16, strided<[?, 1], offset: ?>>, vector<[[N]]xi1>, vector<[[N]]xbf16> into vector<[[N]]xbf16>
// CHECK:        arith.extf %{{.*}} : vector<[[N]]xbf16> to vector<[[N]]xf32>
// CHECK:      vector.maskedstore %{{.*}}, %[[MASK]]
func.func @masked_bf16(%x: tensor<?x8xbf16>, %w: tensor<8x20xbf16>)
    -> tensor<?x20xf32> {
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %x, %init_l_c0 : tensor<?x8xbf16>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x20xf32>
  %l = moe.gate %x, %w into(%init_l) : tensor<?x8xbf16>, tensor<8x20xbf16> into tensor<?x20xf32>
  return %l : tensor<?x20xf32>
}
