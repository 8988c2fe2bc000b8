// RUN: moe-opt %s --convert-moe-to-gpu --split-input-file | FileCheck %s
// RUN: moe-opt %s --convert-moe-to-gpu="tensor-cores=0" --split-input-file | FileCheck %s --check-prefix=SIMT
// RUN: moe-opt %s --convert-moe-to-gpu="emulate=1" --split-input-file | FileCheck %s --check-prefix=EMU

// bf16 rows and bf16 weights: the gate and up projections share one warp
// tile (2 products x 4 n8 tiles: 8 mma.sync per 16-deep step), then the
// down projection (4); 4 warps (128 threads) per block.
// CHECK-LABEL: func.func @ffn_bf16
// CHECK:     gpu.launch
// CHECK-SAME:  threads(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %c128
// CHECK-COUNT-8: nvvm.mma.sync A[{{.*}}] B[{{.*}}] C[{{.*}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// CHECK:     gpu.launch
// CHECK-COUNT-4: nvvm.mma.sync
// CHECK-NOT: nvvm.mma.sync
// SIMT-LABEL: func.func @ffn_bf16
// SIMT-NOT:  nvvm.mma.sync
// The emulation runs the lanes on the host: no device op at all.
// EMU-LABEL: func.func @ffn_bf16
// EMU-NOT:   nvvm.
// EMU-NOT:   gpu.launch
func.func @ffn_bf16(%rows: tensor<?x64xbf16>, %off: tensor<9xi32>,
                    %wu: tensor<8x64x96xbf16>, %wg: tensor<8x64x96xbf16>,
                    %wd: tensor<8x96x64xbf16>, %init: tensor<?x64xbf16>)
    -> tensor<?x64xbf16> {
  %y = moe.expert_ffn %rows, %off up(%wu : tensor<8x64x96xbf16>)
      gate(%wg : tensor<8x64x96xbf16>) down(%wd : tensor<8x96x64xbf16>)
      activation = silu gated into(%init)
      : tensor<?x64xbf16>, tensor<9xi32> into tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// f32 rows keep the SIMT tiles (a pure-f32 layer, and f32 rows with bf16
// weights, for now).
// CHECK-LABEL: func.func @ffn_f32_rows
// CHECK-NOT: nvvm.mma.sync
// SIMT-LABEL: func.func @ffn_f32_rows
// EMU-LABEL: func.func @ffn_f32_rows
func.func @ffn_f32_rows(%rows: tensor<?x64xf32>, %off: tensor<9xi32>,
                        %wu: tensor<8x64x96xbf16>, %wd: tensor<8x96x64xbf16>,
                        %init: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %y = moe.expert_ffn %rows, %off up(%wu : tensor<8x64x96xbf16>)
      down(%wd : tensor<8x96x64xbf16>) activation = relu into(%init)
      : tensor<?x64xf32>, tensor<9xi32> into tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// moe.grouped_matmul of bf16 operands: one product per warp tile.
// CHECK-LABEL: func.func @grouped_bf16
// CHECK-COUNT-4: nvvm.mma.sync
// CHECK-NOT: nvvm.mma.sync
// SIMT-LABEL: func.func @grouped_bf16
// SIMT-NOT: nvvm.mma.sync
// EMU-LABEL: func.func @grouped_bf16
func.func @grouped_bf16(%a: tensor<?x40xbf16>, %b: tensor<4x40x72xbf16>,
                        %off: tensor<5xi32>, %init: tensor<?x72xbf16>)
    -> tensor<?x72xbf16> {
  %y = moe.grouped_matmul %a, %b, %off into(%init)
      : tensor<?x40xbf16>, tensor<4x40x72xbf16>, tensor<5xi32> into tensor<?x72xbf16>
  return %y : tensor<?x72xbf16>
}
