// RUN: moe-opt %s --split-input-file --convert-moe-to-loops --canonicalize --cse | FileCheck %s

// Quantized weights (q4_0 tiles of 32 columns x 32 depths): per tile of a
// register block's depth, the f16 scales of the block's columns are loaded
// once (64 bytes, bitcast, extended), then each of the tile's 32 depth rows
// is one vector load of 16 bytes: the low nibbles are columns 0-15, the high
// ones 16-31, each minus 8, converted and scaled; then the usual FMAs. The
// bytes are read where they are stored (no dequantised copy of the weights).
// CHECK-LABEL: func.func @q4
// CHECK-SAME:  %[[WU:[a-z0-9]+]]: tensor<2x2x2x576xi8>
// CHECK:       %[[WUBUF:.*]] = scf.if %{{.*}} -> (memref<2x2x2x576xi8, strided<[?, ?, ?, 1], offset: ?>>)
// CHECK-NOT:   memref.alloc() : memref<2x{{.*}}xf32>
// CHECK:       scf.for %[[KB:.*]] = %c0 to %c2 step %c1 iter_args({{.*}}) -> ({{(vector<16xf32>, )+}}vector<16xf32>)
// CHECK:         %[[S0B:.*]] = vector.load %[[WUBUF]][%[[E:.*]], %[[P:.*]], %[[KB]], %c0] : {{.*}}, vector<32xi8>
// CHECK:         %[[S0H:.*]] = vector.bitcast %[[S0B]] : vector<32xi8> to vector<16xf16>
// CHECK:         %[[S0:.*]] = arith.extf %[[S0H]] : vector<16xf16> to vector<16xf32>
// CHECK:         %[[S1B:.*]] = vector.load %[[WUBUF]][%[[E]], %[[P]], %[[KB]], %c32] : {{.*}}, vector<32xi8>
// CHECK:         %[[S1:.*]] = arith.extf
// CHECK:         scf.for %[[KK:.*]] = %c0 to %c32 step %c1 iter_args({{.*}}) -> ({{(vector<16xf32>, )+}}vector<16xf32>)
// CHECK:           %[[ROW:.*]] = arith.muli %[[KK]], %c16
// CHECK:           %[[BYTE:.*]] = arith.addi %[[ROW]], %c64
// CHECK:           %[[Q:.*]] = vector.load %[[WUBUF]][%[[E]], %[[P]], %[[KB]], %[[BYTE]]] : {{.*}}, vector<16xi8>
// CHECK:           %[[LO:.*]] = arith.andi %[[Q]], %{{.*}} : vector<16xi8>
// CHECK:           %[[LO8:.*]] = arith.subi %[[LO]], %{{.*}} : vector<16xi8>
// CHECK:           %[[LOF:.*]] = arith.sitofp %[[LO8]] : vector<16xi8> to vector<16xf32>
// CHECK:           %[[B0:.*]] = arith.mulf %[[LOF]], %[[S0]] : vector<16xf32>
// CHECK:           %[[HI:.*]] = arith.shrui %[[Q]], %{{.*}} : vector<16xi8>
// CHECK:           %[[HI8:.*]] = arith.subi %[[HI]], %{{.*}} : vector<16xi8>
// CHECK:           %[[HIF:.*]] = arith.sitofp %[[HI8]] : vector<16xi8> to vector<16xf32>
// CHECK:           %[[B1:.*]] = arith.mulf %[[HIF]], %[[S1]] : vector<16xf32>
// CHECK:           vector.fma %{{.*}}, %[[B0]], %{{.*}} : vector<16xf32>
// CHECK:           vector.fma %{{.*}}, %[[B1]], %{{.*}} : vector<16xf32>
func.func @q4(%rows: tensor<?x64xf32>, %offsets: tensor<3xi32>,
              %wu: tensor<2x2x2x576xi8>, %wd: tensor<2x2x2x576xi8>)
    -> tensor<?x64xf32> {
  %c0 = arith.constant 0 : index
  %r = tensor.dim %rows, %c0 : tensor<?x64xf32>
  %init = tensor.empty(%r) : tensor<?x64xf32>
  %y = moe.expert_ffn %rows, %offsets up(%wu : tensor<2x2x2x576xi8>)
      down(%wd : tensor<2x2x2x576xi8>) activation = relu packed quant = q4_0
      into(%init) : tensor<?x64xf32>, tensor<3xi32> into tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// q8_0: a depth row of a tile is 32 int8 quants, one vector load of 16
// bytes per 16 columns, converted and scaled.
// CHECK-LABEL: func.func @q8
// CHECK:       scf.for %[[KK:.*]] = %c0 to %c32 step %c1 iter_args({{.*}}) -> ({{(vector<16xf32>, )+}}vector<16xf32>)
// CHECK:         %[[ROW:.*]] = arith.muli %[[KK]], %c32
// CHECK:         %[[BYTE0:.*]] = arith.addi %[[ROW]], %c64
// CHECK:         %[[Q0:.*]] = vector.load %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}, %[[BYTE0]]] : {{.*}}, vector<16xi8>
// CHECK:         %[[F0:.*]] = arith.sitofp %[[Q0]] : vector<16xi8> to vector<16xf32>
// CHECK:         arith.mulf %[[F0]], %{{.*}} : vector<16xf32>
// CHECK:         %[[BYTE1:.*]] = arith.addi %[[ROW]], %c80
// CHECK:         %[[Q1:.*]] = vector.load %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}, %[[BYTE1]]] : {{.*}}, vector<16xi8>
// CHECK-NOT:     arith.andi
// CHECK:         vector.fma
func.func @q8(%rows: tensor<?x64xf32>, %offsets: tensor<3xi32>,
              %wu: tensor<2x2x2x1088xi8>, %wg: tensor<2x2x2x1088xi8>,
              %wd: tensor<2x2x2x1088xi8>) -> tensor<?x64xf32> {
  %c0 = arith.constant 0 : index
  %r = tensor.dim %rows, %c0 : tensor<?x64xf32>
  %init = tensor.empty(%r) : tensor<?x64xf32>
  %y = moe.expert_ffn %rows, %offsets up(%wu : tensor<2x2x2x1088xi8>)
      gate(%wg : tensor<2x2x2x1088xi8>) down(%wd : tensor<2x2x2x1088xi8>)
      activation = silu gated packed quant = q8_0 into(%init)
      : tensor<?x64xf32>, tensor<3xi32> into tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
