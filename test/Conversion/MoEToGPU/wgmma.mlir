// RUN: moe-opt %s --convert-moe-to-gpu="wgmma=1" --split-input-file | FileCheck %s
// RUN: moe-opt %s --convert-moe-to-gpu="wgmma=1 emulate=1" --split-input-file | FileCheck %s --check-prefix=EMU
// RUN: moe-opt %s --convert-moe-to-gpu --split-input-file | FileCheck %s --check-prefix=NOWG

// With wgmma, a tensor-core matmul is launched twice over: the sm_90a
// kernel (one warpgroup per 64 x 64 tile, operands staged in swizzled
// workgroup memory, four wgmma m64n64k16 per 64-deep step) when the device
// runs it, the sm_80 mma.sync kernel otherwise.
// CHECK-LABEL: func.func private @moeCudaHasWgmma() -> i32
// CHECK-LABEL: func.func @grouped_bf16
// CHECK:       %[[HAS:.*]] = func.call @moeCudaHasWgmma() : () -> i32
// CHECK:       %[[USE:.*]] = arith.cmpi ne, %[[HAS]], %{{.*}} : i32
// CHECK:       scf.if %[[USE]] {
// With 128 rows per expert on average (the rows' bound, on the host), the
// 128-row tiles: two warpgroups (256 threads) share the staged B tiles
// (two stages of a 16 KiB A tile and an 8 KiB B tile, plus 1 KiB).
// CHECK:         %[[WIDE:.*]] = arith.cmpi uge, %{{.*}}, %{{.*}} : index
// CHECK:         scf.if %[[WIDE]] {
// CHECK:           gpu.launch
// CHECK:           %[[WBYTES:.*]] = arith.constant 50176 : i32
// CHECK:           gpu.launch
// CHECK-SAME:        threads(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %c256
// CHECK-SAME:        dynamic_shared_memory_size %[[WBYTES]]
// Each warpgroup's A descriptor starts at its 64 rows (8 KiB apart).
// CHECK:             %[[WG:.*]] = arith.divui %{{.*}}, %c128
// CHECK:             %[[WG64:.*]] = arith.index_castui %[[WG]] : index to i64
// CHECK:             arith.muli %[[WG64]], %c8192_i64 : i64
// CHECK-COUNT-4:     nvvm.wgmma.mma_async
// CHECK:         } else {
// Otherwise the 64-row tile schedule (one device thread), then the
// one-warpgroup kernel.
// CHECK:         gpu.launch
// The staging buffer is the launch's dynamic shared memory: two stages of
// an A and a B tile of 8 KiB each, plus 1 KiB to align them to the swizzle
// atom.
// CHECK:         %[[BYTES:.*]] = arith.constant 33792 : i32
// CHECK:         gpu.launch
// CHECK-SAME:      threads(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %c128
// CHECK-SAME:      dynamic_shared_memory_size %[[BYTES]]
// CHECK:           %[[DYN:.*]] = gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
// CHECK:           %[[SMEM:.*]] = memref.view %[[DYN]]{{.*}} to memref<16896xbf16, #gpu.address_space<workgroup>>
// CHECK:           memref.extract_aligned_pointer_as_index %[[SMEM]]
// CHECK:           scf.for
// CHECK:             memref.store %{{.*}}, %[[SMEM]][%{{.*}}] : memref<16896xbf16, #gpu.address_space<workgroup>>
// The first step is staged, published (fence for the async proxy, then a
// barrier), and its MMAs issued; while they run, the threads stage the
// next step into the other stage; then wait, publish.
// CHECK:           nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// CHECK-NEXT:      gpu.barrier
// CHECK:           nvvm.wgmma.fence.aligned
// The first step of all starts the sums (scale-d zero, no accumulator
// input), the later steps accumulate.
// CHECK:           nvvm.wgmma.mma_async %{{.*}}, %{{.*}}, %{{.*}}, <m = 64, n = 64, k = 16>, D[<f32>, <zero>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// CHECK-COUNT-3:   nvvm.wgmma.mma_async %{{.*}}, %{{.*}}, %{{.*}}, <m = 64, n = 64, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// CHECK:           nvvm.wgmma.commit.group.sync.aligned
// CHECK:           scf.if
// CHECK:             memref.store %{{.*}}, %[[SMEM]]
// CHECK:           nvvm.wgmma.wait.group.sync.aligned 0
// CHECK-NEXT:      nvvm.fence.proxy
// CHECK-NEXT:      gpu.barrier
// CHECK:           scf.for
// CHECK:             nvvm.wgmma.fence.aligned
// CHECK-COUNT-4:     nvvm.wgmma.mma_async {{.*}} D[<f32>, <one>]
// CHECK:       } else {
// CHECK:         gpu.launch
// CHECK-COUNT-4:   nvvm.mma.sync
// CHECK:       }
// The emulation runs the wgmma kernel's threads and MMAs on the host: no
// device op, no runtime query; 128 threads x 32 accumulators, and a host
// buffer for the staged tiles.
// EMU-LABEL: func.func @grouped_bf16
// EMU-NOT:   call @moeCudaHasWgmma
// EMU-NOT:   nvvm.
// EMU-NOT:   gpu.launch
// EMU-DAG:   memref.alloc() : memref<16896xbf16>
// EMU-DAG:   memref.alloc() : memref<128x32xf32>
// Without the option: the sm_80 kernel only.
// NOWG-LABEL: func.func @grouped_bf16
// NOWG-NOT:  moeCudaHasWgmma
// NOWG-NOT:  nvvm.wgmma
func.func @grouped_bf16(%a: tensor<?x40xbf16>, %b: tensor<4x40x72xbf16>,
                        %off: tensor<5xi32>, %init: tensor<?x72xbf16>)
    -> tensor<?x72xbf16> {
  %y = moe.grouped_matmul %a, %b, %off into(%init)
      : tensor<?x40xbf16>, tensor<4x40x72xbf16>, tensor<5xi32> into tensor<?x72xbf16>
  return %y : tensor<?x72xbf16>
}

// -----

// The FFN's gate and up projections share a warpgroup tile: 2 products x 4
// wgmma per step (the peeled first step, then the loop's), then the down
// projection's 4 (twice likewise), in the same branch: one schedule and
// one choice of kernel serve both projections.
// CHECK-LABEL: func.func @ffn_bf16
// CHECK-COUNT-1: func.call @moeCudaHasWgmma
// CHECK-NOT:   func.call @moeCudaHasWgmma
// CHECK:         memref.view {{.*}} to memref<25088xbf16, #gpu.address_space<workgroup>>
// CHECK-COUNT-16:    nvvm.wgmma.mma_async
// CHECK:         memref.view {{.*}} to memref<16896xbf16, #gpu.address_space<workgroup>>
// CHECK-COUNT-8:     nvvm.wgmma.mma_async
// CHECK-NOT:         nvvm.wgmma.mma_async
// CHECK:       } else {
// CHECK-COUNT-12:  nvvm.mma.sync
// EMU-LABEL: func.func @ffn_bf16
// EMU-DAG:   memref.alloc() : memref<25088xbf16>
// EMU-DAG:   memref.alloc() : memref<128x64xf32>
// NOWG-LABEL: func.func @ffn_bf16
// NOWG-NOT:  nvvm.wgmma
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

// f32 weights keep the SIMT tiles: no query, no wgmma.
// CHECK-LABEL: func.func @grouped_f32
// CHECK-NOT:   moeCudaHasWgmma
// CHECK-NOT:   nvvm.wgmma
// CHECK:       return
func.func @grouped_f32(%a: tensor<?x40xf32>, %b: tensor<4x40x72xf32>,
                       %off: tensor<5xi32>, %init: tensor<?x72xf32>)
    -> tensor<?x72xf32> {
  %y = moe.grouped_matmul %a, %b, %off into(%init)
      : tensor<?x40xf32>, tensor<4x40x72xf32>, tensor<5xi32> into tensor<?x72xf32>
  return %y : tensor<?x72xf32>
}

// -----

// f16 rows and f16 weights: the same kernels with f16 operands (f32 sums).
// CHECK-LABEL: func.func @grouped_f16
// CHECK:       scf.if
// CHECK:         memref.view {{.*}} to memref<16896xf16, #gpu.address_space<workgroup>>
// CHECK:         nvvm.wgmma.mma_async {{.*}} D[<f32>, <zero>], A[<f16>, <one>, <row>], B[<f16>, <one>, <col>]
// CHECK:       } else {
// CHECK:         nvvm.mma.sync {{.*}} : (vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// EMU-LABEL: func.func @grouped_f16
// EMU:       memref.alloc() : memref<16896xf16>
// NOWG-LABEL: func.func @grouped_f16
// NOWG:       nvvm.mma.sync {{.*}} : (vector<2xf16>, vector<2xf16>, f32)
func.func @grouped_f16(%a: tensor<?x40xf16>, %b: tensor<4x40x72xf16>,
                       %off: tensor<5xi32>, %init: tensor<?x72xf16>)
    -> tensor<?x72xf16> {
  %y = moe.grouped_matmul %a, %b, %off into(%init)
      : tensor<?x40xf16>, tensor<4x40x72xf16>, tensor<5xi32> into tensor<?x72xf16>
  return %y : tensor<?x72xf16>
}

// -----

// Mixed 16-bit types keep the SIMT tiles.
// CHECK-LABEL: func.func @grouped_mixed
// CHECK-NOT:   nvvm.wgmma
// CHECK-NOT:   nvvm.mma.sync
// CHECK:       return
func.func @grouped_mixed(%a: tensor<?x40xf16>, %b: tensor<4x40x72xbf16>,
                         %off: tensor<5xi32>, %init: tensor<?x72xf16>)
    -> tensor<?x72xf16> {
  %y = moe.grouped_matmul %a, %b, %off into(%init)
      : tensor<?x40xf16>, tensor<4x40x72xbf16>, tensor<5xi32> into tensor<?x72xf16>
  return %y : tensor<?x72xf16>
}
