// RUN: moe-opt %s --split-input-file --convert-moe-to-loops --canonicalize --cse | FileCheck %s

// The schedules of the CPU matmul kernel, one case per schedule. The other
// lowering tests check what is read and written where; the blocking is
// checked here only. Every schedule computes the same values (the Python
// test test_matmul_schedules.py runs them against the reference and against
// each other, bit for bit).

// The default schedule: chunks of 256 rows, A packed per chunk and depth
// block as [group of 8 rows][k][row] (the depth block no deeper than the
// static depth, 8), 8 x 32 register blocks (16 accumulators of
// vector<16xf32>) across the whole depth loop, one FMA per accumulator and
// step, the bias added after the sum; then one block of 4 rows, then single
// rows; S = 48 leaves one 16-wide vector.
// CHECK-LABEL: func.func @default_schedule
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<?x8xf32>, %[[W:[a-z0-9]+]]: tensor<8x48xf32>, %[[B:[a-z0-9]+]]: tensor<48xf32>)
// CHECK:      %[[T:.*]] = tensor.dim %[[X]], %c0
// CHECK:      %[[WBUF:.*]] = scf.if %{{.*}} -> (memref<8x48xf32, strided<[?, 1], offset: ?>>)
// CHECK:      %[[BBUF:.*]] = scf.if %{{.*}} -> (memref<48xf32, strided<[1], offset: ?>>)
// CHECK:      %[[OUT:.*]] = memref.alloc(%[[T]]) : memref<?x48xf32>
// CHECK:      %[[CHUNKS:.*]] = arith.ceildivui %[[T]], %c256
// CHECK:      %[[PACK:.*]] = memref.alloc() : memref<32x8x8xf32>
// CHECK:      scf.for %[[C:.*]] = %c0 to %[[CHUNKS]]
// CHECK:        %[[FIRST:.*]] = arith.muli %[[C]], %c256
// CHECK:        arith.ceildivui %{{.*}}, %c8
// CHECK:        tensor.extract %[[X]]
// CHECK:        memref.store {{.*}}, %[[PACK]]
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
// CHECK:        scf.if
// CHECK:          scf.for {{.*}} iter_args({{.*}}) -> ({{(vector<16xf32>, ){7}vector<16xf32>}})
// CHECK:        scf.for
// CHECK:          scf.for {{.*}} iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>)
// CHECK:        scf.for {{.*}} iter_args({{.*}}) -> ({{(vector<16xf32>, ){7}vector<16xf32>}})
// CHECK:          vector.load %[[WBUF]][%{{.*}}, %c32]
// CHECK-COUNT-8:  vector.fma
// CHECK-NOT:  math.fma
// CHECK:      return
func.func @default_schedule(%x: tensor<?x8xf32>, %w: tensor<8x48xf32>,
                            %b: tensor<48xf32>) -> tensor<?x48xf32> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x8xf32>
  %init = tensor.empty(%t) : tensor<?x48xf32>
  %l = moe.gate %x, %w bias(%b : tensor<48xf32>) into(%init)
      : tensor<?x8xf32>, tensor<8x48xf32> into tensor<?x48xf32>
  return %l : tensor<?x48xf32>
}

// -----

// The default schedule on 128 columns: one group of 4 panels. Per panel the
// blocks of 8 and 4 rows; the last 1-3 rows in one block of 2 and one of 1
// across the 4 panels (16 and 8 accumulators).
// CHECK-LABEL: func.func @default_groups
// CHECK:      scf.for {{.*}} -> ({{(vector<16xf32>, ){15}vector<16xf32>}})
// CHECK:      scf.for {{.*}} -> ({{(vector<16xf32>, ){7}vector<16xf32>}})
// CHECK:      %[[PAIR:.*]] = arith.cmpi sge, %{{.*}}, %c2
// CHECK:      scf.if %[[PAIR]] {
// CHECK:        scf.for {{.*}} -> ({{(vector<16xf32>, ){15}vector<16xf32>}})
// CHECK-COUNT-16: vector.fma
// CHECK:      scf.if
// CHECK:        scf.for {{.*}} -> ({{(vector<16xf32>, ){7}vector<16xf32>}})
// CHECK-COUNT-8: vector.fma
func.func @default_groups(%x: tensor<?x8xf32>, %w: tensor<8x128xf32>)
    -> tensor<?x128xf32> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x8xf32>
  %init = tensor.empty(%t) : tensor<?x128xf32>
  %l = moe.gate %x, %w into(%init)
      : tensor<?x8xf32>, tensor<8x128xf32> into tensor<?x128xf32>
  return %l : tensor<?x128xf32>
}

// -----

// Overridden on the function: vectors of 8 lanes (4 per 32-column panel),
// blocks of 4 rows and no tail block (16 accumulators of vector<8xf32>),
// groups of one panel, chunks of 64 rows, depth blocks of 4 (a pack of
// [16, 4, 4]; two depth blocks, the second starting from the partial sums
// stored in the output). 44 columns: one panel, one whole vector, then 4
// masked lanes.
// CHECK-LABEL: func.func @narrow_vectors
// CHECK-SAME: %[[W:[a-z0-9]+]]: tensor<8x44xf32>
// CHECK:      %[[OUT:.*]] = memref.alloc(%{{.*}}) : memref<?x44xf32>
// CHECK:      arith.ceildivui %{{.*}}, %c64
// CHECK:      %[[PACK:.*]] = memref.alloc() : memref<16x4x4xf32>
// CHECK:      scf.for %[[KB:.*]] = %c0 to %c2
// CHECK:        %[[ISFIRST:.*]] = arith.cmpi eq, %[[KB]], %c0
// CHECK:        memref.store {{.*}}, %[[PACK]]
// CHECK:        scf.if %[[ISFIRST]] -> ({{(vector<8xf32>, ){15}vector<8xf32>}})
// CHECK:          vector.load %[[OUT]]{{.*}} vector<8xf32>
// CHECK:        scf.for {{.*}} -> ({{(vector<8xf32>, ){15}vector<8xf32>}})
// CHECK:          vector.load %{{.*}}, %c24] : memref<8x44xf32, strided<[?, 1], offset: ?>>, vector<8xf32>
// CHECK-COUNT-16: vector.fma {{.*}} : vector<8xf32>
// The rows left after the blocks of 4: a pair, then a single row.
// CHECK:        arith.cmpi sge, %{{.*}}, %c2
// CHECK:        scf.for {{.*}} -> ({{(vector<8xf32>, ){7}vector<8xf32>}})
// CHECK:        scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// The whole vector at column 32 (a loop over the vectors left), then the
// masked one at column 40.
// CHECK:        scf.for
// CHECK:          scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK:        vector.constant_mask [4] : vector<8xi1>
// CHECK:          vector.maskedload
// CHECK:          vector.maskedstore %{{.*}} : memref<?x44xf32>, vector<8xi1>, vector<8xf32>
func.func @narrow_vectors(%x: tensor<?x8xf32>, %w: tensor<8x44xf32>)
    -> tensor<?x44xf32> attributes {moe.matmul_schedule =
        #moe.matmul_schedule<lanes = 8, rows = 4, tail_rows = 0,
                             tail_panels = 1, chunk_rows = 64,
                             depth_block = 4>} {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x8xf32>
  %init = tensor.empty(%t) : tensor<?x44xf32>
  %l = moe.gate %x, %w into(%init)
      : tensor<?x8xf32>, tensor<8x44xf32> into tensor<?x44xf32>
  return %l : tensor<?x44xf32>
}

// -----

// Blocks of 16 rows and a tail block of 3 leave up to 12 rows: their pairs
// are a loop, not a single block.
// CHECK-LABEL: func.func @long_tail
// CHECK:      scf.for {{.*}} -> ({{(vector<16xf32>, ){31}vector<16xf32>}})
// CHECK:      scf.for {{.*}} -> ({{(vector<16xf32>, ){5}vector<16xf32>}})
// CHECK:      %[[PAIRS:.*]] = arith.divui %{{.*}}, %c2
// CHECK:      scf.for %{{.*}} = %c0 to %[[PAIRS]]
// CHECK:        scf.for {{.*}} -> ({{(vector<16xf32>, ){15}vector<16xf32>}})
func.func @long_tail(%x: tensor<?x8xf32>, %w: tensor<8x128xf32>)
    -> tensor<?x128xf32> attributes {moe.matmul_schedule =
        #moe.matmul_schedule<rows = 16, tail_rows = 3>} {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x8xf32>
  %init = tensor.empty(%t) : tensor<?x128xf32>
  %l = moe.gate %x, %w into(%init)
      : tensor<?x8xf32>, tensor<8x128xf32> into tensor<?x128xf32>
  return %l : tensor<?x128xf32>
}

// -----

// bf16 rows: the up projection writes the f32 scratch and is blocked over
// the depth with A packed; the down projection writes bf16 rows, which
// cannot hold partial sums, so it is not blocked: it broadcasts the scratch
// in place.
// CHECK-LABEL: func.func @unblocked_bf16
// CHECK:      %[[UP:.*]] = memref.alloc() : memref<128x16xf32>
// CHECK:      %[[PACK:.*]] = memref.alloc() : memref<32x8x8xf32>
// CHECK:        scf.for {{.*}} -> ({{(vector<16xf32>, ){7}vector<16xf32>}})
// CHECK:          memref.load %[[PACK]]
// CHECK:      arith.cmpf ogt
// CHECK:        scf.for {{.*}} -> ({{(vector<16xf32>, ){7}vector<16xf32>}})
// CHECK-NOT:      memref.load %[[PACK]]
// CHECK:          memref.load %[[UP]]
// CHECK:        arith.truncf %{{.*}} : vector<16xf32> to vector<16xbf16>
func.func @unblocked_bf16(%rows: tensor<?x8xbf16>, %offsets: tensor<3xi32>,
                          %wu: tensor<2x8x16xbf16>, %wd: tensor<2x16x8xbf16>)
    -> tensor<?x8xbf16> {
  %c0 = arith.constant 0 : index
  %r = tensor.dim %rows, %c0 : tensor<?x8xbf16>
  %init = tensor.empty(%r) : tensor<?x8xbf16>
  %y = moe.expert_ffn %rows, %offsets up(%wu : tensor<2x8x16xbf16>)
      down(%wd : tensor<2x16x8xbf16>) activation = relu into(%init)
      : tensor<?x8xbf16>, tensor<3xi32> into tensor<?x8xbf16>
  return %y : tensor<?x8xbf16>
}

// -----

// Packed weights are prefetched `prefetch` k steps ahead (here 8, from the
// function), clamped to the last k of the depth block: one prefetch per
// 64-byte line of the panel's row (two for an f32 row of 32 columns). Work
// items of 32 rows (ffn_rows) get a [32, F] scratch. An attribute on the op
// wins over the function's.
// CHECK-LABEL: func.func @packed_prefetch
// CHECK-SAME: %[[WU:[a-z0-9]+]]: tensor<2x1x64x32xf32>
// CHECK:      %[[WUBUF:.*]] = scf.if %{{.*}} -> (memref<2x1x64x32xf32, strided<[?, ?, ?, 1], offset: ?>>)
// CHECK:      arith.ceildivui %{{.*}}, %c32
// CHECK:      memref.alloc() : memref<32x32xf32>
// CHECK:      scf.for %[[K:.*]] = %c0 to %c64 step %c1 iter_args
// CHECK:        %[[AHEAD:.*]] = arith.addi %[[K]], %c8
// CHECK:        %[[CLAMPED:.*]] = arith.minsi %[[AHEAD]], %c63
// CHECK:        memref.prefetch %[[WUBUF]][%{{.*}}, %c0, %[[CLAMPED]], %c0], read, locality<3>, data
// CHECK:        memref.prefetch %[[WUBUF]][%{{.*}}, %c0, %[[CLAMPED]], %c16], read, locality<3>, data
// CHECK-LABEL: func.func @op_wins
// CHECK-NOT:  memref.prefetch
// CHECK:      return
func.func @packed_prefetch(%rows: tensor<?x64xf32>, %offsets: tensor<3xi32>,
                           %wu: tensor<2x1x64x32xf32>,
                           %wd: tensor<2x2x32x32xf32>) -> tensor<?x64xf32>
    attributes {moe.matmul_schedule = #moe.matmul_schedule<prefetch = 8,
                                          prefetch_min_rows = 2,
                                          ffn_rows = 32>} {
  %c0 = arith.constant 0 : index
  %r = tensor.dim %rows, %c0 : tensor<?x64xf32>
  %init = tensor.empty(%r) : tensor<?x64xf32>
  %y = moe.expert_ffn %rows, %offsets up(%wu : tensor<2x1x64x32xf32>)
      down(%wd : tensor<2x2x32x32xf32>) activation = relu packed into(%init)
      : tensor<?x64xf32>, tensor<3xi32> into tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
func.func @op_wins(%rows: tensor<?x64xf32>, %offsets: tensor<3xi32>,
                   %wu: tensor<2x1x64x32xf32>,
                   %wd: tensor<2x2x32x32xf32>) -> tensor<?x64xf32>
    attributes {moe.matmul_schedule = #moe.matmul_schedule<prefetch = 8>} {
  %c0 = arith.constant 0 : index
  %r = tensor.dim %rows, %c0 : tensor<?x64xf32>
  %init = tensor.empty(%r) : tensor<?x64xf32>
  %y = moe.expert_ffn %rows, %offsets up(%wu : tensor<2x1x64x32xf32>)
      down(%wd : tensor<2x2x32x32xf32>) activation = relu packed into(%init)
      {moe.matmul_schedule = #moe.matmul_schedule<prefetch = 0>}
      : tensor<?x64xf32>, tensor<3xi32> into tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// The default schedule with packed weights, one group of 4 panels (128
// columns). Blocks of 8 and 4 rows run panel by panel and prefetch their panel 32 k steps ahead,
// clamped to the depth block; the last 1-3 rows of a chunk go in one block
// of 2 rows (16 accumulators) and one of 1 row (8), each across the 4
// panels, so that 2 or 3 rows per expert stream the weights once or twice.
// CHECK-LABEL: func.func @packed_quad
// CHECK:      %[[WUBUF:.*]] = scf.if %{{.*}} -> (memref<2x4x32x32xf32
// CHECK:      scf.for %[[K8:.*]] = %c0 to %c32 step %c1 iter_args({{.*}}) -> ({{(vector<16xf32>, ){15}vector<16xf32>}})
// CHECK-NEXT:   %[[A8:.*]] = arith.addi %[[K8]], %c32
// CHECK-NEXT:   %[[P8:.*]] = arith.minsi %[[A8]], %c31
// CHECK-NEXT:   memref.prefetch %[[WUBUF]][%[[E:.*]], %c0, %[[P8]], %c0], read, locality<3>, data
// CHECK-NEXT:   memref.prefetch %[[WUBUF]][%[[E]], %c0, %[[P8]], %c16], read, locality<3>, data
// CHECK-NEXT:   vector.load %[[WUBUF]][%[[E]], %c0, %[[K8]], %c0]
// CHECK:      scf.for %[[K4:.*]] = %c0 to %c32 step %c1 iter_args({{.*}}) -> ({{(vector<16xf32>, ){7}vector<16xf32>}})
// CHECK-NEXT:   %[[A4:.*]] = arith.addi %[[K4]], %c32
// CHECK-NEXT:   %[[P4:.*]] = arith.minsi %[[A4]], %c31
// CHECK-NEXT:   memref.prefetch %[[WUBUF]][%[[E]], %c0, %[[P4]], %c0]
// CHECK:      arith.cmpi sge, %{{.*}}, %c2
// CHECK-NEXT: scf.if
// CHECK:      scf.for %[[K2:.*]] = %c0 to %c32 step %c1 iter_args({{.*}}) -> ({{(vector<16xf32>, ){15}vector<16xf32>}})
// CHECK-NOT:    memref.prefetch
// CHECK:        vector.load %[[WUBUF]][%[[E]], %c0, %[[K2]], %c0]
// CHECK:        vector.load %[[WUBUF]][%[[E]], %c3, %[[K2]], %c16]
// CHECK:      scf.if
// CHECK:      scf.for %[[K1:.*]] = %c0 to %c32 step %c1 iter_args({{.*}}) -> ({{(vector<16xf32>, ){7}vector<16xf32>}})
// CHECK-NOT:    memref.prefetch
// CHECK:        vector.load %[[WUBUF]][%[[E]], %c3, %[[K1]], %c16]
func.func @packed_quad(%rows: tensor<?x32xf32>, %offsets: tensor<3xi32>,
                       %wu: tensor<2x4x32x32xf32>,
                       %wd: tensor<2x1x128x32xf32>) -> tensor<?x32xf32> {
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %rows, %init_y_c0 : tensor<?x32xf32>
  %init_y = tensor.empty(%init_y_d0) : tensor<?x32xf32>
  %y = moe.expert_ffn %rows, %offsets up(%wu : tensor<2x4x32x32xf32>)
      down(%wd : tensor<2x1x128x32xf32>)
      activation = relu packed into(%init_y) : tensor<?x32xf32>, tensor<3xi32> into tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// bf16 packed weights: a panel's row of 32 bf16 columns is one 64-byte
// line, prefetched once per k step.
// CHECK-LABEL: func.func @packed_bf16
// CHECK:      %[[WUBUF:.*]] = scf.if %{{.*}} -> (memref<2x4x32x32xbf16
// CHECK:      scf.for %[[K8:.*]] = %c0 to %c32 step %c1 iter_args({{.*}}) -> ({{(vector<16xf32>, ){15}vector<16xf32>}})
// CHECK-NEXT:   %[[A8:.*]] = arith.addi %[[K8]], %c32
// CHECK-NEXT:   %[[P8:.*]] = arith.minsi %[[A8]], %c31
// CHECK-NEXT:   memref.prefetch %[[WUBUF]][%{{.*}}, %c0, %[[P8]], %c0], read, locality<3>, data
// CHECK-NEXT:   vector.load %[[WUBUF]][%{{.*}}, %c0, %[[K8]], %c0] : {{.*}}, vector<16xbf16>
func.func @packed_bf16(%rows: tensor<?x32xf32>, %offsets: tensor<3xi32>,
                       %wu: tensor<2x4x32x32xbf16>,
                       %wd: tensor<2x1x128x32xbf16>) -> tensor<?x32xf32> {
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %rows, %init_y_c0 : tensor<?x32xf32>
  %init_y = tensor.empty(%init_y_d0) : tensor<?x32xf32>
  %y = moe.expert_ffn %rows, %offsets up(%wu : tensor<2x4x32x32xbf16>)
      down(%wd : tensor<2x1x128x32xbf16>)
      activation = relu packed into(%init_y) : tensor<?x32xf32>, tensor<3xi32> into tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}
