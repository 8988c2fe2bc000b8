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
  os << "lanes = " << lanes << ", rows = " << rows
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
  // Half the registers hold accumulators (the rest: B's vectors, the
  // broadcast of A, addresses): rows x panelVectors of them.
  int64_t budget = std::max<int64_t>(target.vectorRegisters / 2, 1);
  s.rows = std::clamp<int64_t>(budget / s.panelVectors(), 1, 8);
  s.tailRows = s.rows / 2;
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
  roundToTiles(s, shape);
  return s;
}

MatmulSchedule mlir::moe::getMatmulSchedule(Operation *op,
                                            const MatmulShape &shape,
                                            const CPUTarget &target) {
  return applyOverrides(chooseMatmulSchedule(target, shape),
                        lookupMatmulScheduleAttr(op), shape);
}
