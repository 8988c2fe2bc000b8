//===- MatmulSchedule.cpp - Schedule of the CPU matmul kernel ---*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The one place that decides how the CPU matmul kernel is blocked. The
// defaults were measured on AVX-512 machines (2-core Zen 4): 8x32 register
// blocks keep 16 accumulators, enough independent FMA chains for two FMA
// pipes; a [256, 32] f32 slice of B is 32 KiB (L1); 256-row chunks keep their
// packed rows in L2; packed weights are prefetched 32 k steps ahead (S1's
// expert FFN, 2 threads, cold weights: 8 rows per expert 17.7 -> 12.6 ms,
// 16 rows 22.3 -> 17.7 ms, 128 rows 97.8 -> 76.8 ms; distances of 16 and 64
// were no better).
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToLoops/MatmulSchedule.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Utils/Kernels.h"

#include "mlir/IR/Operation.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>

using namespace mlir;
using namespace mlir::moe;

int64_t MatmulSchedule::panelVectors() const { return kPanelColumns / lanes; }

std::array<int64_t, 3> MatmulSchedule::packShape() const {
  if (depthBlock == 0)
    return {0, 0, 0};
  return {(chunkRows + rows - 1) / rows, depthBlock, rows};
}

std::string MatmulSchedule::str() const {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "lanes = " << lanes << ", cols = " << cols << ", rows = " << rows
     << ", tail_rows = " << tailRows << ", tail_panels = " << tailPanels
     << ", chunk_rows = " << chunkRows << ", depth_block = " << depthBlock
     << ", prefetch = " << prefetchDistance
     << ", prefetch_min_rows = " << prefetchMinRows
     << ", ffn_rows = " << ffnRows;
  return text;
}

/// Depth blocks of quantized weights hold whole tiles of 32 depths.
static void roundToTiles(MatmulSchedule &s, const MatmulShape &shape) {
  if (shape.quant && s.depthBlock > 0)
    s.depthBlock = llvm::alignTo(s.depthBlock, kQuantTileSize);
}

MatmulSchedule mlir::moe::chooseMatmulSchedule(const CPUTarget &target,
                                               const MatmulShape &shape) {
  MatmulSchedule s;
  // Whole vectors per 32-column panel: 4, 8 or 16 lanes.
  s.lanes = std::clamp<int64_t>(llvm::bit_floor(static_cast<uint64_t>(
                                    std::max<int64_t>(target.vectorBits, 1))) /
                                    32,
                                4, 16);
  // Blocks of two vectors: rows x 2 accumulators, B's 2 vectors and the
  // broadcast of A fit the registers (AVX-512: 8 rows x 32 columns, capped
  // at 8; AVX2: 6 x 16, the classic shape). The last 1-3 rows go across as
  // many panels as half the registers hold (2 rows x panelVectors x
  // tailPanels accumulators).
  int64_t registers = std::max<int64_t>(target.vectorRegisters, 8);
  int64_t blockVectors = std::min<int64_t>(2, s.panelVectors());
  s.cols = blockVectors * s.lanes;
  s.rows = std::clamp<int64_t>((registers - blockVectors - 1) / blockVectors,
                               1, 8);
  s.tailRows = s.rows / 2;
  s.tailPanels = std::clamp<int64_t>(
      (registers / 2) / (2 * s.panelVectors()), 1, 4);
  // Partial sums between depth blocks are stored in C: only an f32 C can
  // hold them exactly. A depth that is static and small needs no deeper
  // block (nor a larger pack).
  if (!shape.c || !shape.c.isF32())
    s.depthBlock = 0;
  else if (!ShapedType::isDynamic(shape.depth))
    s.depthBlock = std::clamp<int64_t>(shape.depth, 1, s.depthBlock);
  // Only packed weights are prefetched (a panel is one contiguous stream).
  if (!shape.bPacked)
    s.prefetchDistance = 0;
  roundToTiles(s, shape);
  return s;
}

CPUTarget CPUTarget::get(CPUTargetAttr attr) {
  CPUTarget target;
  if (!attr)
    return target;
  if (attr.hasFeature("avx512f")) {
    target.vectorBits = 512;
    target.vectorRegisters = 32;
  } else if (attr.hasFeature("avx2") || attr.hasFeature("avx") ||
             attr.hasFeature("fma")) {
    target.vectorBits = 256;
    target.vectorRegisters = 16;
  } else {
    target.vectorBits = 128;
    target.vectorRegisters = 16;
  }
  return target;
}

CPUTargetAttr mlir::moe::lookupCPUTargetAttr(Operation *op) {
  for (; op; op = op->getParentOp())
    if (auto attr = op->getAttrOfType<CPUTargetAttr>(
            CPUTargetAttr::getAttributeName()))
      return attr;
  return {};
}

MatmulScheduleAttr mlir::moe::lookupMatmulScheduleAttr(Operation *op) {
  for (; op; op = op->getParentOp())
    if (auto attr = op->getAttrOfType<MatmulScheduleAttr>(
            MatmulScheduleAttr::getAttributeName()))
      return attr;
  return {};
}

MatmulSchedule mlir::moe::applyOverrides(MatmulSchedule s,
                                         MatmulScheduleAttr overrides,
                                         const MatmulShape &shape) {
  if (!overrides)
    return s;
  auto set = [](int64_t &field, std::optional<int64_t> value) {
    if (value)
      field = *value;
  };
  set(s.lanes, overrides.getLanes());
  set(s.cols, overrides.getCols());
  set(s.rows, overrides.getRows());
  set(s.tailRows, overrides.getTailRows());
  set(s.tailPanels, overrides.getTailPanels());
  set(s.chunkRows, overrides.getChunkRows());
  set(s.depthBlock, overrides.getDepthBlock());
  set(s.prefetchDistance, overrides.getPrefetch());
  set(s.prefetchMinRows, overrides.getPrefetchMinRows());
  set(s.ffnRows, overrides.getFfnRows());
  if (!shape.c || !shape.c.isF32())
    s.depthBlock = 0;
  // A block holds whole vectors (the default cols with lanes = 16 is 32).
  s.cols = std::max(s.cols, s.lanes);
  roundToTiles(s, shape);
  return s;
}

MatmulSchedule mlir::moe::getMatmulSchedule(Operation *op,
                                            const MatmulShape &shape) {
  CPUTarget target = CPUTarget::get(lookupCPUTargetAttr(op));
  return applyOverrides(chooseMatmulSchedule(target, shape),
                        lookupMatmulScheduleAttr(op), shape);
}
