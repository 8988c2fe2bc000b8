// RUN: moe-opt %s --moe-cost-report --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-cost-report="print=false" --split-input-file | FileCheck %s --check-prefix=ATTR

// AdaMoE: top-4 over 8 compute + 4 null experts: 0 to 4 compute slots per
// token; a compute slot costs 2 * 64 * 128 * 3 = 49152 FLOPs; an expert's
// weights are 64 * 128 * 3 * 4 = 98304 bytes.
// CHECK-LABEL: moe cost report: 1 MoE layer(s)
// CHECK: moe.layer at loc(
// CHECK: experts #moe.experts<compute = 8, null = 4>, k = 4, strategy top_k, H = 64, F = 128, gated
// CHECK: compute slots per token: 0 to 4 (dense top-4: 4)
// CHECK: FLOPs per token: 0 to 1.966e+05 (dense top-4: 1.966e+05, 49152 per compute slot)
// CHECK: expert weights: 98304 bytes per expert, 786432 in all
// ATTR-LABEL: func.func @adamoe
// ATTR: moe.layer {{.*}} {moe.cost = {dense_slots = 4 : i64, expert_weight_bytes = 98304 : i64, max_slots = 4 : i64, min_slots = 0 : i64, slot_flops = 49152 : i64}}
func.func @adamoe(%x: tensor<?x64xf32>, %wr: tensor<64x12xf32>,
                  %wu: tensor<8x64x128xf32>, %wg: tensor<8x64x128xf32>,
                  %wd: tensor<8x128x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer %x router(%wr : tensor<64x12xf32>)
      up(%wu : tensor<8x64x128xf32>) gate(%wg : tensor<8x64x128xf32>)
      down(%wd : tensor<8x128x64xf32>)
      experts = <compute = 8, null = 4> k = 4 strategy = top_k
      normalize = non_null activation = silu gated
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Plain top-2 over 8 experts: always 2 compute slots. A decomposed layer is
// reported at its route (followed through dispatch to the FFN); not gated:
// 2 * 16 * 32 * 2 = 2048 FLOPs per slot, f16 weights of 16 * 32 * 2 * 2 bytes.
// CHECK-LABEL: moe cost report:
// CHECK: moe.route at
// CHECK: experts #moe.experts<compute = 8>, k = 2, strategy top_k, H = 16, F = 32
// CHECK: compute slots per token: 2 to 2 (dense top-2: 2)
// CHECK: FLOPs per token: 4096 to 4096 (dense top-2: 4096, 2048 per compute slot)
// CHECK: expert weights: 2048 bytes per expert
func.func @decomposed(%x: tensor<?x16xf16>, %l: tensor<?x8xf32>, %wu: tensor<8x16x32xf16>,
                      %wd: tensor<8x32x16xf16>) -> tensor<?x16xf16> {
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x8xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %ids, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k into(%init_ids, %init_w)
      : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  %rows, %off, %slots = moe.dispatch %x, %ids num_experts = 8
      : tensor<?x16xf16>, tensor<?x2xi32> -> tensor<?x16xf16>, tensor<9xi32>, tensor<?x2xi32>
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %rows, %init_y_c0 : tensor<?x16xf16>
  %init_y = tensor.empty(%init_y_d0) : tensor<?x16xf16>
  %y = moe.expert_ffn %rows, %off up(%wu : tensor<8x16x32xf16>) down(%wd : tensor<8x32x16xf16>)
      activation = relu into(%init_y) : tensor<?x16xf16>, tensor<9xi32> into tensor<?x16xf16>
  return %y : tensor<?x16xf16>
}

// -----

// Variable k: top-p can stop after one slot, never before; threshold keeps
// at least k_min - (zero-computation experts).
// CHECK-LABEL: moe cost report:
// CHECK: strategy top_p
// CHECK: compute slots per token: 1 to 3
// CHECK: strategy threshold
// CHECK: compute slots per token: 1 to 3
func.func @variable_k(%x: tensor<?x16xf32>, %wr: tensor<16x8xf32>, %wr2: tensor<16x9xf32>,
                      %wu: tensor<8x16x32xf32>, %wd: tensor<8x32x16xf32>)
    -> (tensor<?x16xf32>, tensor<?x16xf32>) {
  %a = moe.layer %x router(%wr : tensor<16x8xf32>) up(%wu : tensor<8x16x32xf32>)
      down(%wd : tensor<8x32x16xf32>) experts = <compute = 8> k = 3
      strategy = top_p<p = 0.5> activation = relu : tensor<?x16xf32> -> tensor<?x16xf32>
  %b = moe.layer %x router(%wr2 : tensor<16x9xf32>) up(%wu : tensor<8x16x32xf32>)
      down(%wd : tensor<8x32x16xf32>) experts = <compute = 8, null = 1> k = 3
      strategy = threshold<tau = 0.1, k_min = 2> activation = relu
      : tensor<?x16xf32> -> tensor<?x16xf32>
  return %a, %b : tensor<?x16xf32>, tensor<?x16xf32>
}

// -----

// Quantized q8_0 weights: H = 64 and F = 128 from the tiles, 1088 bytes per
// 32 x 32 weights: 64 * 128 * 3 * 1088 / 1024 = 26112 bytes per expert.
// CHECK-LABEL: moe cost report: 1 MoE layer(s)
// CHECK: H = 64, F = 128, gated
// CHECK: expert weights: 26112 bytes per expert, 52224 in all
func.func @quantized(%x: tensor<?x64xf32>, %wr: tensor<64x2xf32>,
                     %wu: tensor<2x4x2x1088xi8>, %wd: tensor<2x2x4x1088xi8>) -> tensor<?x64xf32> {
  %y = moe.layer %x router(%wr : tensor<64x2xf32>) up(%wu : tensor<2x4x2x1088xi8>)
      gate(%wu : tensor<2x4x2x1088xi8>) down(%wd : tensor<2x2x4x1088xi8>)
      experts = <compute = 2> k = 1 strategy = top_k activation = silu gated packed quant = q8_0
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
