// REQUIRES: cuda-toolkit
// A bf16 layer through moe-gpu-pipeline with PTX kept as text: the expert
// kernels hold the tensor-core instruction for both chips, and ptxas
// assembles every kernel of every chip with no spills and no serialisation
// notes (scripts/ptx-check.py exits 1 otherwise).
// RUN: moe-opt %s --moe-gpu-pipeline="fatbin=0" -o %t.mlir
// RUN: %python %moe_src_root/scripts/ptx-check.py %t.mlir | FileCheck %s
// CHECK-DAG: sm_80: 1 kernel(s), max {{[0-9]+}} registers, 0 spill bytes, mma.sync 8: ok
// CHECK-DAG: sm_90a: 1 kernel(s), max {{[0-9]+}} registers, 0 spill bytes, mma.sync 8: ok
// CHECK-DAG: sm_80: 1 kernel(s), max {{[0-9]+}} registers, 0 spill bytes, mma.sync 4: ok
// CHECK-DAG: sm_90a: 1 kernel(s), max {{[0-9]+}} registers, 0 spill bytes, mma.sync 4: ok
// The sm_90a kernels (wgmma), in modules of their own with the sm_90a
// target only: gate and up (2 products x 4 wgmma; a depth of 64 is one
// step), then down (4 wgmma in the peeled first step, 4 in the loop).
// CHECK-DAG: sm_90a: 1 kernel(s), max {{[0-9]+}} registers, 0 spill bytes, wgmma 8: ok
// CHECK-DAG: sm_90a: 1 kernel(s), max {{[0-9]+}} registers, 0 spill bytes, wgmma 8: ok
// The PTX instruction itself (bf16 x bf16 -> f32, row-major A, column B).
// RUN: rm -rf %t.ptx
// RUN: %python %moe_src_root/scripts/ptx-check.py %t.mlir --keep %t.ptx > /dev/null
// RUN: cat %t.ptx/*.sm_80.ptx | FileCheck %s --check-prefix=PTX
// PTX: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// On sm_90a: the staged tiles fenced for the async proxy, the warpgroup
// MMA from two shared-memory descriptors, its commit and wait.
// RUN: cat %t.ptx/*.sm_90a.ptx | FileCheck %s --check-prefix=SM90
// SM90: fence.proxy.async.shared::cta
// SM90: wgmma.fence.sync.aligned
// SM90: wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16
// SM90: wgmma.commit_group.sync.aligned
// SM90: wgmma.wait_group.sync.aligned 0
// No sm_80 PTX holds a wgmma (ptxas would reject it).
// RUN: not grep -l wgmma %t.ptx/*.sm_80.ptx
func.func @layer(%x: tensor<?x64xbf16>, %wr: tensor<64x8xbf16>, %wu: tensor<8x64x96xbf16>,
                 %wg: tensor<8x64x96xbf16>, %wd: tensor<8x96x64xbf16>) -> tensor<?x64xbf16> {
  %y = moe.layer %x router(%wr : tensor<64x8xbf16>) up(%wu : tensor<8x64x96xbf16>)
      gate(%wg : tensor<8x64x96xbf16>) down(%wd : tensor<8x96x64xbf16>)
      experts = <compute = 8> k = 2 strategy = top_k normalize = selected
      activation = silu gated : tensor<?x64xbf16> -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}
