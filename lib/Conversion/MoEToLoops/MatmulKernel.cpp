//===- MatmulKernel.cpp - Register-blocked row-block matmul -----*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The matmul of the router (moe.gate, the fused moe.route_dispatch) and of
// the expert FFNs (moe.expert_ffn, moe.grouped_matmul):
//
//   for each chunk of up to 256 rows (its A rows stay in L2):
//     for each panel of 32 columns (then one of 16, then one masked):
//       for each block of 8 rows (then one of 4, then one of 2 and single
//       rows, those two across 4 panels at once):
//         rows x (panel / 16) vector<16xf32> accumulators live in registers
//         across the whole depth loop: per k, the panel's vector loads of
//         B, one broadcast per row of A, one vector.fma per accumulator
//
// The panel of B ([depth, 32], 128 KiB at depth 1024) is reused by every row
// block of the chunk from L2; an 8x32 block keeps 16 accumulators, enough
// independent FMA chains to cover the FMA latency of two pipes. The masked
// panel touches nothing outside the matrix.
//
// Every output element is `fma(a[k], b[k], ...)` over k = 0, 1, ... from
// 0.0, then `+ bias`: the blocking never changes the value, so lowerings
// that share this kernel (moe.gate and moe.route_dispatch) agree bit for
// bit whatever their tiles.
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

namespace {
/// f32 lanes of one vector.
constexpr int64_t kLanes = 16;
/// Vectors per row of a full panel (32 columns).
constexpr int64_t kPanelVectors = 2;
/// Panels whose last 1-3 rows (blocks of 2 and 1) are computed together.
constexpr int64_t kQuadPanels = 4;
/// Rows of the largest register block, then of the next one.
constexpr int64_t kBigRows = 8;
constexpr int64_t kMidRows = 4;
/// Rows per L2 chunk.
constexpr int64_t kChunkRows = 256;
/// Depth per L1 block (a [256, 32] f32 slice of B is 32 KiB).
constexpr int64_t kDepthBlock = 256;
/// How many k steps ahead blocks of packed B prefetch their panel. The
/// hardware prefetchers stop at 4 KiB pages, and a block of 4 or 8 rows
/// streams a single panel: without software prefetch it waits for DRAM at
/// every page and overlaps neither its FMAs with the loads nor the loads
/// with each other. Measured on S1's expert FFN (2 threads, cold weights):
/// 8 rows per expert 17.7 -> 12.6 ms, 16 rows 22.3 -> 17.7 ms, 128 rows
/// 97.8 -> 76.8 ms. Distances of 16 and 64 were no better.
constexpr int64_t kPrefetchDistance = 32;
/// Blocks with at least this many rows prefetch; the blocks of 1 and 2
/// rows stream 4 panels at once and gain nothing measurable from it.
constexpr int64_t kPrefetchMinRows = 4;

class MatmulEmitter {
public:
  MatmulEmitter(LoopEmitter &e, const RowMatmul &m)
      : e(e), m(m),
        vectorType(VectorType::get({kLanes}, e.b.getF32Type())) {}

  void emit() {
    Value chunk = e.index(kChunkRows);
    Value chunks = arith::CeilDivUIOp::create(
        e.b, e.sub(m.rowEnd, m.rowBegin), chunk);
    // Depth blocks keep a panel's [256, 32] slice of B in L1 across the row
    // blocks of a chunk; the partial sums go through C, which must be f32
    // for that (exactly the same FMA chain: a stored f32 is reloaded as is).
    bool blocked = llvm::cast<MemRefType>(m.c.getType())
                       .getElementType()
                       .isF32();
    if (blocked)
      aPack = m.aPack ? m.aPack : allocMatmulPack(e);
    e.loop(e.index(0), chunks, [&](Value c) {
      Value begin = e.add(m.rowBegin, e.mul(c, chunk));
      Value end = e.minSI(e.add(begin, chunk), m.rowEnd);
      if (!blocked) {
        aPack = Value();
        kBegin = e.index(0);
        kEnd = m.depth;
        isFirst = isLast = Value();
        emitChunk(begin, end);
        return;
      }
      Value depthBlock = e.index(kDepthBlock);
      Value blocks = arith::CeilDivUIOp::create(e.b, m.depth, depthBlock);
      chunkBegin = begin;
      // At least one block, so that a zero depth still writes 0 + bias.
      blocks = e.maxSI(blocks, e.index(1));
      e.loop(e.index(0), blocks, [&](Value kb) {
        kBegin = e.mul(kb, depthBlock);
        kEnd = e.minSI(e.add(kBegin, depthBlock), m.depth);
        isFirst = e.cmpi(arith::CmpIPredicate::eq, kb, e.index(0));
        isLast = e.cmpi(arith::CmpIPredicate::eq, kb,
                        e.sub(blocks, e.index(1)));
        emitPackA(begin, end);
        emitChunk(begin, end);
      });
    });
  }

private:
  /// Copies the chunk's rows [begin, end) x depth block of A into aPack,
  /// [group of 8 rows][k][row in group], so that a block's 8 broadcasts per
  /// k come from one contiguous 32-byte run. Rows past `end` read as 0.
  void emitPackA(Value begin, Value end) {
    Value eight = e.index(kBigRows);
    Value groups = arith::CeilDivUIOp::create(e.b, e.sub(end, begin), eight);
    Value zeroF = e.f32(0.0f);
    e.loop(e.index(0), groups, [&](Value g) {
      e.loop(e.index(0), eight, [&](Value j) {
        Value row = e.add(begin, e.add(e.mul(g, eight), j));
        Value valid = e.cmpi(arith::CmpIPredicate::slt, row, end);
        Value safeRow = e.select(valid, row, begin);
        Value aRow = m.rowOfA ? m.rowOfA(safeRow) : safeRow;
        e.loop(kBegin, kEnd, [&](Value k) {
          Value a = e.toF32(e.load(m.a, {aRow, k}));
          Value masked = e.select(valid, a, zeroF);
          Value depth = e.sub(k, kBegin);
          e.store(masked, aPack, {g, depth, j});
        });
      });
    });
  }

  /// Rows [begin, end) over all columns, panel by panel.
  void emitChunk(Value begin, Value end) {
    Value wide = e.index(kLanes * kPanelVectors);
    Value narrow = e.index(kLanes);
    // Groups of 4 panels: blocks of 8 and 4 rows panel by panel, then the
    // last 1-3 rows across all 4 panels at once (8 or 16 accumulators:
    // enough independent FMA chains when an expert has only a few rows).
    Value quadWidth = e.index(kLanes * kPanelVectors * kQuadPanels);
    Value quads = arith::DivUIOp::create(e.b, m.n, quadWidth);
    e.loop(e.index(0), quads, [&](Value q) {
      Value col = e.mul(q, quadWidth);
      Value singles;
      for (int64_t p = 0; p < kQuadPanels; ++p)
        singles = emitPanelBlocks(begin, end, e.add(col, e.index(p * 32)),
                                  kPanelVectors, {});
      // At most 3 rows are left: a block of 2 and one of 1, each across
      // the 4 panels, so that a decode step with 2 or 3 rows per expert
      // streams the expert's weights once or twice, not once per row.
      Value two = e.index(2);
      Value hasPair =
          e.cmpi(arith::CmpIPredicate::sge, e.sub(end, singles), two);
      e.ifThen(hasPair, [&] {
        emitBlock(singles, 2, col, kPanelVectors * kQuadPanels, {});
      });
      Value pairEnd = e.select(hasPair, e.add(singles, two), singles);
      e.ifThen(e.cmpi(arith::CmpIPredicate::slt, pairEnd, end), [&] {
        emitBlock(pairEnd, 1, col, kPanelVectors * kQuadPanels, {});
      });
    });
    Value quadEnd = e.mul(quads, quadWidth);
    Value panels = arith::DivUIOp::create(e.b, e.sub(m.n, quadEnd), wide);
    e.loop(e.index(0), panels, [&](Value p) {
      emitPanel(begin, end, e.add(quadEnd, e.mul(p, wide)), kPanelVectors,
                {});
    });
    Value done = e.add(quadEnd, e.mul(panels, wide));
    auto maskType = VectorType::get({kLanes}, e.b.getI1Type());
    if (m.bPacked) {
      // The last, partial panel: B holds it whole (padded), so only the
      // bias and the stores are masked.
      Value rest = e.sub(m.n, done);
      e.ifThen(e.cmpi(arith::CmpIPredicate::ne, rest, e.index(0)), [&] {
        SmallVector<Value> masks;
        for (int64_t v = 0; v < kPanelVectors; ++v) {
          Value lanes = e.sub(rest, e.index(v * kLanes));
          masks.push_back(vector::CreateMaskOp::create(e.b, maskType, lanes));
        }
        emitPanel(begin, end, done, kPanelVectors, masks);
      });
      return;
    }
    Value narrowEnd = e.mul(arith::DivUIOp::create(e.b, m.n, narrow), narrow);
    // At most one 16-wide panel is left, then fewer than 16 columns.
    e.ifThen(e.cmpi(arith::CmpIPredicate::ult, done, narrowEnd),
             [&] { emitPanel(begin, end, done, 1, {}); });
    Value rest = e.sub(m.n, narrowEnd);
    e.ifThen(e.cmpi(arith::CmpIPredicate::ne, rest, e.index(0)), [&] {
      Value mask = vector::CreateMaskOp::create(e.b, maskType, rest);
      emitPanel(begin, end, narrowEnd, 1, {mask});
    });
  }

  /// One panel (`vectors` x 16 columns at `col`) for rows [begin, end):
  /// blocks of 8 rows, then at most one of 4, then single rows. `masks`
  /// (one per vector, or none) limit the columns.
  void emitPanel(Value begin, Value end, Value col, int64_t vectors,
                 ArrayRef<Value> masks) {
    Value singles = emitPanelBlocks(begin, end, col, vectors, masks);
    e.loop(singles, end,
           [&](Value row) { emitBlock(row, 1, col, vectors, masks); });
  }

  /// The blocks of 8 rows and at most one of 4 of a panel; returns the first
  /// row left for single-row blocks.
  Value emitPanelBlocks(Value begin, Value end, Value col, int64_t vectors,
                        ArrayRef<Value> masks) {
    Value big = e.index(kBigRows);
    Value bigBlocks = arith::DivUIOp::create(e.b, e.sub(end, begin), big);
    e.loop(e.index(0), bigBlocks, [&](Value b) {
      emitBlock(e.add(begin, e.mul(b, big)), kBigRows, col, vectors, masks);
    });
    Value next = e.add(begin, e.mul(bigBlocks, big));
    Value mid = e.index(kMidRows);
    Value hasMid = e.cmpi(arith::CmpIPredicate::sge, e.sub(end, next), mid);
    e.ifThen(hasMid, [&] { emitBlock(next, kMidRows, col, vectors, masks); });
    return e.select(hasMid, e.add(next, mid), next);
  }

  /// A register block: `rows` x `vectors` accumulators at column `col`;
  /// with `masks`, only their lanes are stored (and loaded, except from a
  /// packed B, whose padding is in bounds).
  void emitBlock(Value row, int64_t rows, Value col, int64_t vectors,
                 ArrayRef<Value> masks) {
    auto maskOf = [&](int64_t v) { return masks.empty() ? Value() : masks[v]; };
    // Packed B: vector v of the block is in panel col / 32 + v / 2, at
    // lane offset 16 (v % 2) (`col` is a multiple of 32 there).
    Value panel = m.bPacked ? arith::DivUIOp::create(
                                  e.b, col, e.index(kLanes * kPanelVectors))
                            : Value();
    SmallVector<Value> panels, offsets;
    if (m.bPacked)
      for (int64_t v = 0; v < vectors; ++v) {
        panels.push_back(e.add(panel, e.index(v / kPanelVectors)));
        offsets.push_back(e.index((v % kPanelVectors) * kLanes));
      }
    SmallVector<Value> cols;
    for (int64_t v = 0; v < vectors; ++v)
      cols.push_back(e.add(col, e.index(v * kLanes)));
    SmallVector<Value> aRows, cRows, groups, lanes;
    for (int64_t r = 0; r < rows; ++r) {
      Value rowR = e.add(row, e.index(r));
      aRows.push_back(m.rowOfA ? m.rowOfA(rowR) : rowR);
      cRows.push_back(m.rowOfC ? m.rowOfC(rowR) : rowR);
      if (aPack) {
        Value local = e.sub(rowR, chunkBegin);
        groups.push_back(
            arith::DivUIOp::create(e.b, local, e.index(kBigRows)));
        lanes.push_back(arith::RemUIOp::create(e.b, local, e.index(kBigRows)));
      }
    }
    // The chains start from 0 in the first depth block and from the partial
    // sums stored in C in the others.
    Value zero = arith::ConstantOp::create(
        e.b, vectorType, DenseElementsAttr::get(vectorType, 0.0f));
    SmallVector<Value> inits(rows * vectors, zero);
    if (isFirst) {
      SmallVector<Type> types(rows * vectors, vectorType);
      auto ifOp = scf::IfOp::create(e.b, types, isFirst, true);
      OpBuilder::InsertionGuard guard(e.b);
      e.b.setInsertionPointToStart(ifOp.thenBlock());
      scf::YieldOp::create(e.b, inits);
      e.b.setInsertionPointToStart(ifOp.elseBlock());
      SmallVector<Value> partial;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t v = 0; v < vectors; ++v)
          partial.push_back(
              loadVector(m.c, {}, {cRows[r], cols[v]}, maskOf(v)));
      scf::YieldOp::create(e.b, partial);
      inits = SmallVector<Value>(ifOp.getResults());
    }
    bool prefetch = m.bPacked && rows >= kPrefetchMinRows;
    int64_t bBytes =
        llvm::cast<MemRefType>(m.b.getType()).getElementTypeBitWidth() / 8;
    SmallVector<Value> sums = e.loop(
        kBegin, kEnd, inits, [&](Value k, ValueRange acc) {
          if (prefetch) {
            // Clamped to the depth block: the address stays in bounds. One
            // prefetch per 64-byte line of the panel's row (a bf16 row of
            // 32 columns is a single line).
            Value wanted = e.add(k, e.index(kPrefetchDistance));
            Value lastK = e.sub(kEnd, e.index(1));
            Value ahead = e.minSI(wanted, lastK);
            for (int64_t v = 0; v < vectors; ++v)
              if ((v % kPanelVectors) * kLanes * bBytes % 64 == 0)
                memref::PrefetchOp::create(
                    e.b, m.b,
                    indices(m.bPrefix, {panels[v], ahead, offsets[v]}),
                    /*isWrite=*/false, /*localityHint=*/3,
                    /*isDataCache=*/true);
          }
          SmallVector<Value> b;
          for (int64_t v = 0; v < vectors; ++v) {
            if (m.bPacked)
              b.push_back(loadVector(m.b, m.bPrefix, {panels[v], k, offsets[v]},
                                     Value()));
            else
              b.push_back(loadVector(m.b, m.bPrefix, {k, cols[v]}, maskOf(v)));
          }
          SmallVector<Value> next;
          for (int64_t r = 0; r < rows; ++r) {
            Value scalar =
                aPack ? e.load(aPack, {groups[r], e.sub(k, kBegin), lanes[r]})
                      : e.toF32(e.load(m.a, {aRows[r], k}));
            Value a = vector::BroadcastOp::create(e.b, vectorType, scalar);
            for (int64_t v = 0; v < vectors; ++v)
              next.push_back(vector::FMAOp::create(e.b, a, b[v],
                                                   acc[r * vectors + v]));
          }
          return next;
        });
    // After the last depth block: + bias, rounded to C's type. Before it:
    // the f32 partial sums.
    auto storeFinal = [&] {
      SmallVector<Value> bias;
      if (m.bias)
        for (int64_t v = 0; v < vectors; ++v)
          bias.push_back(
              loadVector(m.bias, m.biasPrefix, {cols[v]}, maskOf(v)));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t v = 0; v < vectors; ++v) {
          Value sum = sums[r * vectors + v];
          if (m.bias)
            sum = e.add(sum, bias[v]);
          storeVector(sum, cRows[r], cols[v], maskOf(v));
        }
    };
    if (isLast) {
      e.ifThenElse(isLast, storeFinal, [&] {
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t v = 0; v < vectors; ++v)
            storeVector(sums[r * vectors + v], cRows[r], cols[v], maskOf(v));
      });
    } else {
      storeFinal();
    }
    if (m.afterBlock) {
      Value width = e.index(vectors * kLanes);
      if (!masks.empty())
        width = e.minSI(width, e.sub(m.n, col));
      Value blockRows = e.index(rows);
      Value blockDepth = e.sub(kEnd, kBegin);
      m.afterBlock(blockRows, width, blockDepth);
    }
  }

  static SmallVector<Value> indices(ValueRange prefix, ValueRange rest) {
    SmallVector<Value> all(prefix.begin(), prefix.end());
    all.append(rest.begin(), rest.end());
    return all;
  }

  /// 16 consecutive elements of the innermost dimension, in f32 (the lanes
  /// off `mask` are not read and are 0).
  Value loadVector(Value memref, ValueRange prefix, ValueRange rest,
                   Value mask) {
    Type element = llvm::cast<MemRefType>(memref.getType()).getElementType();
    auto type = VectorType::get({kLanes}, element);
    Value loaded;
    if (mask) {
      Value zero = arith::ConstantOp::create(
          e.b, type, DenseElementsAttr::get(type, e.b.getZeroAttr(element)));
      loaded = vector::MaskedLoadOp::create(e.b, type, memref,
                                            indices(prefix, rest), mask, zero);
    } else {
      loaded = vector::LoadOp::create(e.b, type, memref, indices(prefix, rest));
    }
    if (element.isF32())
      return loaded;
    return arith::ExtFOp::create(e.b, vectorType, loaded);
  }

  void storeVector(Value value, Value row, Value col, Value mask) {
    Type element = llvm::cast<MemRefType>(m.c.getType()).getElementType();
    if (!element.isF32())
      value = arith::TruncFOp::create(
          e.b, VectorType::get({kLanes}, element), value);
    if (mask)
      vector::MaskedStoreOp::create(e.b, m.c, ValueRange{row, col}, mask,
                                    value);
    else
      vector::StoreOp::create(e.b, value, m.c, ValueRange{row, col});
  }

  LoopEmitter &e;
  const RowMatmul &m;
  VectorType vectorType;
  /// The depth block being emitted: [kBegin, kEnd); isFirst / isLast are
  /// runtime conditions, or null when there is a single block.
  Value kBegin, kEnd, isFirst, isLast;
  /// Packed A of the current (chunk, depth block), or null; the chunk's
  /// first row.
  Value aPack, chunkBegin;
};
} // namespace

Value mlir::moe::detail::allocMatmulPack(LoopEmitter &e) {
  return e.alloc(e.b.getF32Type(),
                 {kChunkRows / kBigRows, kDepthBlock, kBigRows});
}

void mlir::moe::detail::emitRowMatmul(LoopEmitter &e, const RowMatmul &m) {
  MatmulEmitter(e, m).emit();
}
