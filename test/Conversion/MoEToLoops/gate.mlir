// RUN: moe-opt %s --split-input-file --convert-moe-to-loops --canonicalize --cse | FileCheck %s

// The matmul is register blocked: 8 rows x 32 columns (two
// vector<16xf32> per row) accumulate in loop-carried vectors across the
// whole depth loop, one fused multiply-add per accumulator and step; S = 48
// leaves one 16-wide panel; the bias is added after the sum. Rows past the
// last block of 8 use one block of 4, then blocks of one row.
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
// Chunks of 256 rows; per depth block of 256 (one here: depth 8) the
// chunk's rows are packed [group of 8][k][row in group], then, panel by
// panel, blocks of 8 rows broadcast from the pack.
// CHECK:      %[[CHUNKS:.*]] = arith.ceildivui %[[T]], %c256
// CHECK:      %[[PACK:.*]] = memref.alloc() : memref<32x256x8xf32>
// CHECK:      scf.for %[[C:.*]] = %c0 to %[[CHUNKS]]
// CHECK:        %[[FIRST:.*]] = arith.muli %[[C]], %c256
// CHECK:        tensor.extract %[[X]]
// CHECK:        memref.store {{.*}}, %[[PACK]]
// The 32-wide panel (S / 32 = 1 panel): 8 rows x 2 vectors = 16 accumulators.
// CHECK:        %[[BLOCKS:.*]] = arith.divui %{{.*}}, %c8
// CHECK:        scf.for %[[RB:.*]] = %c0 to %[[BLOCKS]]
// CHECK:          %[[OFF:.*]] = arith.muli %[[RB]], %c8
// CHECK:          %[[ROW:.*]] = arith.addi %[[FIRST]], %[[OFF]]
// CHECK:          %[[ACC:.*]]:16 = scf.for %[[K:.*]] = %c0 to %c8 step %c1 iter_args({{.*}}) -> ({{(vector<16xf32>, ){15}vector<16xf32>}})
// CHECK:            %[[B0:.*]] = vector.load %[[WBUF]][%[[K]], %c0]
// CHECK:            %[[B1:.*]] = vector.load %[[WBUF]][%[[K]], %c16]
// CHECK:            %[[A0:.*]] = memref.load %[[PACK]][%{{.*}}, %[[K]], %{{.*}}]
// CHECK:            %[[A0V:.*]] = vector.broadcast %[[A0]] : f32 to vector<16xf32>
// CHECK:            vector.fma %[[A0V]], %[[B0]]
// CHECK:            vector.fma %[[A0V]], %[[B1]]
// CHECK-COUNT-14:   vector.fma
// CHECK:            scf.yield
// CHECK:          %[[BIAS0:.*]] = vector.load %[[BBUF]][%c0]
// CHECK:          %[[SUM0:.*]] = arith.addf %[[ACC]]#0, %[[BIAS0]] : vector<16xf32>
// CHECK:          vector.store %[[SUM0]], %[[OUT]][%[[ROW]], %c0]
// Then at most one block of 4 rows, then single rows.
// CHECK:        scf.if
// CHECK:          scf.for {{.*}} iter_args({{.*}}) -> ({{(vector<16xf32>, ){7}vector<16xf32>}})
// CHECK:        scf.for
// CHECK:          scf.for {{.*}} iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>)
// The 16-wide panel at column 32: 8 rows x 1 vector.
// CHECK:        scf.for {{.*}} iter_args({{.*}}) -> ({{(vector<16xf32>, ){7}vector<16xf32>}})
// CHECK:          vector.load %[[WBUF]][%{{.*}}, %c32]
// CHECK-COUNT-8:  vector.fma
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
// CHECK:      %[[MASK:.*]] = vector.constant_mask [4] : vector<16xi1>
// CHECK:      scf.for
// CHECK:        vector.maskedload %{{.*}}, %[[MASK]], %{{.*}} : memref<8x20xbf16, strided<[?, 1], offset: ?>>, vector<16xi1>, vector<16xbf16> into vector<16xbf16>
// CHECK:        arith.extf %{{.*}} : vector<16xbf16> to vector<16xf32>
// CHECK:      vector.maskedstore %{{.*}}, %[[MASK]]
func.func @masked_bf16(%x: tensor<?x8xbf16>, %w: tensor<8x20xbf16>)
    -> tensor<?x20xf32> {
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %x, %init_l_c0 : tensor<?x8xbf16>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x20xf32>
  %l = moe.gate %x, %w into(%init_l) : tensor<?x8xbf16>, tensor<8x20xbf16> into tensor<?x20xf32>
  return %l : tensor<?x20xf32>
}
