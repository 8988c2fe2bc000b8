//===- MatmulKernel.cpp - Register-blocked row-block matmul -----*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The matmul of the router (moe.gate, the fused moe.route_dispatch) and of
// the expert FFNs (moe.expert_ffn, moe.grouped_matmul), generated from a
// MatmulSchedule (MatmulSchedule.h; the defaults in brackets):
//
//   for each chunk of `chunkRows` rows [256] (its A rows stay in L2):
//     for each depth block of `depthBlock` [256] (f32 C only; A's rows of
//     the chunk and block packed first):
//       for each group of `tailPanels` [4] panels of 32 columns:
//         per panel, blocks of `rows` [8] rows, then at most one of
//         `tailRows` [4]; the rows left, in blocks of 2 and 1 across the
//         whole group of panels
//       the remaining 32-column panels, then single vectors of `lanes`
//       [16] columns, then one masked vector (packed B: one masked panel)
//
// A block keeps rows x (32 / lanes) vector accumulators in registers across
// its depth: per k, the panel's vector loads of B, one broadcast per row of
// A, one vector.fma per accumulator. The panel of B is reused by every row
// block of the chunk from L2. The masked panel touches nothing outside the
// matrix.
//
// Every output element is `fma(a[k], b[k], ...)` over k = 0, 1, ... from
// 0.0, then `+ bias`: the schedule never changes the value, so lowerings
// that share this kernel (moe.gate and moe.route_dispatch) agree bit for
// bit whatever their tiles and schedules.
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

namespace {
class MatmulEmitter {
public:
  MatmulEmitter(LoopEmitter &e, const RowMatmul &m)
      : e(e), m(m), s(m.schedule), panelVectors(s.panelVectors()),
        blockVectors(s.cols / s.lanes),
        vectorType(VectorType::get({s.lanes}, e.b.getF32Type())) {}

  void emit() {
    Value chunk = e.index(s.chunkRows);
    Value chunks = arith::CeilDivUIOp::create(
        e.b, e.sub(m.rowEnd, m.rowBegin), chunk);
    // Depth blocks keep a panel's [depthBlock, 32] slice of B in L1 across
    // the row blocks of a chunk; the partial sums go through C, which must
    // be f32 for that (exactly the same FMA chain: a stored f32 is reloaded
    // as is). The schedule blocks nothing else.
    bool blocked = s.depthBlock > 0;
    assert((!blocked || llvm::cast<MemRefType>(m.c.getType())
                            .getElementType()
                            .isF32()) &&
           "only an f32 C holds the partial sums of depth blocks");
    if (blocked)
      aPack = m.aPack ? m.aPack : allocMatmulPack(e, s);
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
      Value depthBlock = e.index(s.depthBlock);
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
  /// [group of `rows` rows][k][row in group], so that a block's broadcasts
  /// per k come from one contiguous run. Rows past `end` read as 0.
  void emitPackA(Value begin, Value end) {
    Value groupRows = e.index(s.rows);
    Value groups =
        arith::CeilDivUIOp::create(e.b, e.sub(end, begin), groupRows);
    Value zeroF = e.f32(0.0f);
    e.loop(e.index(0), groups, [&](Value g) {
      e.loop(e.index(0), groupRows, [&](Value j) {
        Value row = e.add(begin, e.add(e.mul(g, groupRows), j));
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
    Value wide = e.index(kPanelColumns);
    Value narrow = e.index(s.lanes);
    // Groups of `tailPanels` panels: the main and tail blocks panel by
    // panel, then the rows left in blocks of 2 and 1 across the whole group
    // (enough independent FMA chains when an expert has only a few rows).
    Value groupWidth = e.index(kPanelColumns * s.tailPanels);
    Value groups = arith::DivUIOp::create(e.b, m.n, groupWidth);
    e.loop(e.index(0), groups, [&](Value q) {
      Value col = e.mul(q, groupWidth);
      Value singles;
      for (int64_t p = 0; p < s.tailPanels; ++p) {
        Value panelCol = e.add(col, e.index(p * kPanelColumns));
        singles = emitPanelBlocks(begin, end, panelCol, panelVectors, {});
      }
      emitGroupTail(singles, end, col);
    });
    Value groupEnd = e.mul(groups, groupWidth);
    Value panels = arith::DivUIOp::create(e.b, e.sub(m.n, groupEnd), wide);
    e.loop(e.index(0), panels, [&](Value p) {
      emitPanel(begin, end, e.add(groupEnd, e.mul(p, wide)), panelVectors,
                {});
    });
    Value done = e.add(groupEnd, e.mul(panels, wide));
    auto maskType = VectorType::get({s.lanes}, e.b.getI1Type());
    if (m.bPacked) {
      // The last, partial panel: B holds it whole (padded), so only the
      // bias and the stores are masked.
      Value rest = e.sub(m.n, done);
      e.ifThen(e.cmpi(arith::CmpIPredicate::ne, rest, e.index(0)), [&] {
        SmallVector<Value> masks;
        for (int64_t v = 0; v < panelVectors; ++v) {
          Value lanes = e.sub(rest, e.index(v * s.lanes));
          masks.push_back(vector::CreateMaskOp::create(e.b, maskType, lanes));
        }
        emitPanel(begin, end, done, panelVectors, masks);
      });
      return;
    }
    Value narrowEnd = e.mul(arith::DivUIOp::create(e.b, m.n, narrow), narrow);
    // Fewer than 32 columns are left: whole vectors one at a time (with two
    // vectors per panel, at most one), then one masked vector.
    if (panelVectors == 2) {
      e.ifThen(e.cmpi(arith::CmpIPredicate::ult, done, narrowEnd),
               [&] { emitPanel(begin, end, done, 1, {}); });
    } else if (panelVectors > 2) {
      Value vectors = arith::DivUIOp::create(e.b, e.sub(narrowEnd, done),
                                             narrow);
      e.loop(e.index(0), vectors, [&](Value v) {
        emitPanel(begin, end, e.add(done, e.mul(v, narrow)), 1, {});
      });
    }
    Value rest = e.sub(m.n, narrowEnd);
    e.ifThen(e.cmpi(arith::CmpIPredicate::ne, rest, e.index(0)), [&] {
      Value mask = vector::CreateMaskOp::create(e.b, maskType, rest);
      emitPanel(begin, end, narrowEnd, 1, {mask});
    });
  }

  /// The rows [first, end) left by a group's main and tail blocks: blocks of
  /// 2 rows, then one of 1, each across all the group's panels, so that a
  /// decode step with 2 or 3 rows per expert streams the expert's weights
  /// once or twice, not once per row.
  void emitGroupTail(Value first, Value end, Value col) {
    int64_t vectors = panelVectors * s.tailPanels;
    Value two = e.index(2);
    Value pairEnd;
    if (maxRowsLeft() <= 3) {
      // At most one pair.
      Value hasPair =
          e.cmpi(arith::CmpIPredicate::sge, e.sub(end, first), two);
      e.ifThen(hasPair, [&] { emitBlock(first, 2, col, 0, vectors, {}); });
      pairEnd = e.select(hasPair, e.add(first, two), first);
    } else {
      Value pairs = arith::DivUIOp::create(e.b, e.sub(end, first), two);
      e.loop(e.index(0), pairs, [&](Value p) {
        emitBlock(e.add(first, e.mul(p, two)), 2, col, 0, vectors, {});
      });
      pairEnd = e.add(first, e.mul(pairs, two));
    }
    e.ifThen(e.cmpi(arith::CmpIPredicate::slt, pairEnd, end), [&] {
      emitBlock(pairEnd, 1, col, 0, vectors, {});
    });
  }

  /// The most rows that the main and tail blocks of a panel leave.
  int64_t maxRowsLeft() const {
    if (s.tailRows <= 0 || s.tailRows >= s.rows)
      return s.rows - 1;
    return std::max(s.tailRows - 1, s.rows - 1 - s.tailRows);
  }

  /// One panel (`vectors` x `lanes` columns at `col`) for rows [begin,
  /// end): the main and tail blocks, then single rows across the whole
  /// panel. `masks` (one per vector, or none) limit the columns.
  void emitPanel(Value begin, Value end, Value col, int64_t vectors,
                 ArrayRef<Value> masks) {
    Value singles = emitPanelBlocks(begin, end, col, vectors, masks);
    e.loop(singles, end,
           [&](Value row) { emitBlock(row, 1, col, 0, vectors, masks); });
  }

  /// The main blocks and at most one tail block of a panel, `cols` columns
  /// at a time (the register blocks may be narrower than the panel);
  /// returns the first row left.
  Value emitPanelBlocks(Value begin, Value end, Value col, int64_t vectors,
                        ArrayRef<Value> masks) {
    int64_t width = std::min(vectors, blockVectors);
    Value next;
    for (int64_t first = 0; first < vectors; first += width) {
      ArrayRef<Value> sub = masks.empty() ? masks : masks.slice(first, width);
      next = emitRowBlocks(begin, end, col, first * s.lanes, width, sub);
    }
    return next;
  }

  /// The main blocks and at most one tail block of the `vectors` vectors at
  /// column `col + inPanel`; returns the first row left.
  Value emitRowBlocks(Value begin, Value end, Value col, int64_t inPanel,
                      int64_t vectors, ArrayRef<Value> masks) {
    Value big = e.index(s.rows);
    Value bigBlocks = arith::DivUIOp::create(e.b, e.sub(end, begin), big);
    e.loop(e.index(0), bigBlocks, [&](Value b) {
      emitBlock(e.add(begin, e.mul(b, big)), s.rows, col, inPanel, vectors,
                masks);
    });
    Value next = e.add(begin, e.mul(bigBlocks, big));
    if (s.tailRows <= 0 || s.tailRows >= s.rows)
      return next;
    Value mid = e.index(s.tailRows);
    Value hasMid = e.cmpi(arith::CmpIPredicate::sge, e.sub(end, next), mid);
    e.ifThen(hasMid, [&] {
      emitBlock(next, s.tailRows, col, inPanel, vectors, masks);
    });
    return e.select(hasMid, e.add(next, mid), next);
  }

  /// A register block: `rows` x `vectors` accumulators at column
  /// `col + inPanel` (`inPanel` static: the offset of the block within the
  /// 32-column panel that starts at `col`); with `masks`, only their lanes
  /// are stored (and loaded, except from a packed B, whose padding is in
  /// bounds).
  void emitBlock(Value row, int64_t rows, Value col, int64_t inPanel,
                 int64_t vectors, ArrayRef<Value> masks) {
    auto maskOf = [&](int64_t v) { return masks.empty() ? Value() : masks[v]; };
    // Vector v covers the columns from inPanel + v lanes of the panel at
    // `col` on: packed B holds them in panel col / 32 + that / 32, at
    // offset that % 32 (`col` is a multiple of 32 there), both static.
    columnInPanel.clear();
    for (int64_t v = 0; v < vectors; ++v)
      columnInPanel.push_back((inPanel + v * s.lanes) % kPanelColumns);
    Value panel =
        m.bPacked ? arith::DivUIOp::create(e.b, col, e.index(kPanelColumns))
                  : Value();
    SmallVector<Value> panels, offsets;
    if (m.bPacked)
      for (int64_t v = 0; v < vectors; ++v) {
        int64_t panelOffset = (inPanel + v * s.lanes) / kPanelColumns;
        panels.push_back(e.add(panel, e.index(panelOffset)));
        offsets.push_back(e.index(columnInPanel[v]));
      }
    SmallVector<Value> cols;
    for (int64_t v = 0; v < vectors; ++v)
      cols.push_back(e.add(col, e.index(inPanel + v * s.lanes)));
    SmallVector<Value> aRows, cRows, groups, lanes;
    for (int64_t r = 0; r < rows; ++r) {
      Value rowR = e.add(row, e.index(r));
      aRows.push_back(m.rowOfA ? m.rowOfA(rowR) : rowR);
      cRows.push_back(m.rowOfC ? m.rowOfC(rowR) : rowR);
      if (aPack) {
        Value local = e.sub(rowR, chunkBegin);
        groups.push_back(arith::DivUIOp::create(e.b, local, e.index(s.rows)));
        lanes.push_back(arith::RemUIOp::create(e.b, local, e.index(s.rows)));
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
    bool prefetch =
        m.bPacked && s.prefetchDistance > 0 && rows >= s.prefetchMinRows;
    int64_t bBytes =
        llvm::cast<MemRefType>(m.b.getType()).getElementTypeBitWidth() / 8;
    // One step k of the depth: B's vectors (quantized tiles: `kb`, `kk` and
    // the block's `scales` given), the broadcast of each row of A, one FMA
    // per accumulator.
    auto step = [&](Value k, ValueRange acc, Value kb, Value kk,
                    ArrayRef<Value> scales) -> SmallVector<Value> {
      if (prefetch)
        emitPrefetch(k, vectors, panels, offsets, bBytes);
      SmallVector<Value> b;
      for (int64_t v = 0; v < vectors; ++v) {
        if (m.quant)
          b.push_back(loadQuantVector(panels[v], kb, kk, v, scales[v]));
        else if (m.bPacked)
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
          next.push_back(
              vector::FMAOp::create(e.b, a, b[v], acc[r * vectors + v]));
      }
      return next;
    };
    SmallVector<Value> sums;
    if (!m.quant) {
      sums = e.loop(kBegin, kEnd, inits, [&](Value k, ValueRange acc) {
        return step(k, acc, Value(), Value(), {});
      });
    } else {
      // Quantized tiles: per block of 32 depths, the scales of the block's
      // columns (f16 -> f32, once), then its 32 steps. Depth blocks start
      // and end on tile boundaries (the schedule makes depthBlock a
      // multiple of 32, and the depth is one).
      Value tile = e.index(kQuantTileSize);
      Value firstTile = arith::DivUIOp::create(e.b, kBegin, tile);
      Value endTile = arith::CeilDivUIOp::create(e.b, kEnd, tile);
      sums = e.loop(firstTile, endTile, inits, [&](Value kb, ValueRange acc) {
        SmallVector<Value> scales;
        for (int64_t v = 0; v < vectors; ++v)
          scales.push_back(loadQuantScales(panels[v], kb, v));
        Value k0 = e.mul(kb, tile);
        Value zeroK = e.index(0);
        return e.loop(zeroK, tile, acc, [&](Value kk, ValueRange inner) {
          Value k = e.add(k0, kk);
          return step(k, inner, kb, kk, scales);
        });
      });
    }
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
      Value width = e.index(vectors * s.lanes);
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

  /// Prefetches the packed B row `prefetchDistance` steps after `k`, clamped
  /// to the depth block (the address stays in bounds): one prefetch per
  /// 64-byte line of the panel's row (a bf16 row of 32 columns, or a row of
  /// quants, is a single line).
  void emitPrefetch(Value k, int64_t vectors, ArrayRef<Value> panels,
                    ArrayRef<Value> offsets, int64_t bBytes) {
    Value wanted = e.add(k, e.index(s.prefetchDistance));
    Value lastK = e.sub(kEnd, e.index(1));
    Value ahead = e.minSI(wanted, lastK);
    if (m.quant) {
      Value tile = e.index(kQuantTileSize);
      Value kb = arith::DivUIOp::create(e.b, ahead, tile);
      Value kk = arith::RemUIOp::create(e.b, ahead, tile);
      Value rowBytes = e.index(getQuantRowBytes(*m.quant));
      Value rowOffset = e.mul(kk, rowBytes);
      Value byte = e.add(rowOffset, e.index(kQuantScaleBytes));
      // One line per panel the block reads (a row of quants is at most 32
      // bytes).
      for (int64_t v = 0; v < vectors; ++v) {
        if (v != 0 && columnInPanel[v] != 0)
          continue;
        memref::PrefetchOp::create(e.b, m.b,
                                   indices(m.bPrefix, {panels[v], kb, byte}),
                                   /*isWrite=*/false, /*localityHint=*/3,
                                   /*isDataCache=*/true);
      }
      return;
    }
    for (int64_t v = 0; v < vectors; ++v)
      if (columnInPanel[v] * bBytes % 64 == 0)
        memref::PrefetchOp::create(
            e.b, m.b, indices(m.bPrefix, {panels[v], ahead, offsets[v]}),
            /*isWrite=*/false, /*localityHint=*/3, /*isDataCache=*/true);
  }

  /// The f16 scales of vector `v`'s columns in tile (panel, kb), in f32.
  Value loadQuantScales(Value panel, Value kb, int64_t v) {
    auto bytesType = VectorType::get({2 * s.lanes}, e.b.getI8Type());
    auto halfType = VectorType::get({s.lanes}, e.b.getF16Type());
    Value byte = e.index(2 * columnInPanel[v]);
    Value bytes = vector::LoadOp::create(e.b, bytesType, m.b,
                                         indices(m.bPrefix, {panel, kb, byte}));
    Value halves = vector::BitCastOp::create(e.b, halfType, bytes);
    return arith::ExtFOp::create(e.b, vectorType, halves);
  }

  /// Vector `v`'s weights at depth 32 kb + kk of tile (panel, kb),
  /// dequantised: q * d (q8_0) or (u - 8) * d (q4_0), exact in f32.
  Value loadQuantVector(Value panel, Value kb, Value kk, int64_t v,
                        Value scale) {
    WeightQuant quant = *m.quant;
    int64_t column = columnInPanel[v];
    auto bytesType = VectorType::get({s.lanes}, e.b.getI8Type());
    Value rowBytes = e.index(getQuantRowBytes(quant));
    // q4_0: column j's nibble is in byte j mod 16 of the row, the low one
    // for j < 16 (a vector never straddles the two halves: lanes <= 16).
    int64_t byteInRow = quant == WeightQuant::q4_0
                            ? column % (kQuantTileSize / 2)
                            : column;
    Value rowOffset = e.mul(kk, rowBytes);
    Value byte = e.add(rowOffset, e.index(kQuantScaleBytes + byteInRow));
    Value q = vector::LoadOp::create(e.b, bytesType, m.b,
                                     indices(m.bPrefix, {panel, kb, byte}));
    if (quant == WeightQuant::q4_0) {
      auto splat = [&](int64_t value) {
        return arith::ConstantOp::create(
            e.b, bytesType,
            DenseElementsAttr::get(bytesType, e.b.getI8IntegerAttr(value)));
      };
      Value nibble;
      if (column < kQuantTileSize / 2)
        nibble = arith::AndIOp::create(e.b, q, splat(0x0F));
      else
        nibble = arith::ShRUIOp::create(e.b, q, splat(4));
      q = arith::SubIOp::create(e.b, nibble, splat(8));
    }
    Value values = arith::SIToFPOp::create(e.b, vectorType, q);
    return arith::MulFOp::create(e.b, values, scale);
  }

  /// `lanes` consecutive elements of the innermost dimension, in f32 (the lanes
  /// off `mask` are not read and are 0).
  Value loadVector(Value memref, ValueRange prefix, ValueRange rest,
                   Value mask) {
    Type element = llvm::cast<MemRefType>(memref.getType()).getElementType();
    auto type = VectorType::get({s.lanes}, element);
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
          e.b, VectorType::get({s.lanes}, element), value);
    if (mask)
      vector::MaskedStoreOp::create(e.b, m.c, ValueRange{row, col}, mask,
                                    value);
    else
      vector::StoreOp::create(e.b, value, m.c, ValueRange{row, col});
  }

  LoopEmitter &e;
  const RowMatmul &m;
  const MatmulSchedule &s;
  int64_t panelVectors, blockVectors;
  /// The static column within its panel of each vector of the block being
  /// emitted.
  SmallVector<int64_t> columnInPanel;
  VectorType vectorType;
  /// The depth block being emitted: [kBegin, kEnd); isFirst / isLast are
  /// runtime conditions, or null when there is a single block.
  Value kBegin, kEnd, isFirst, isLast;
  /// Packed A of the current (chunk, depth block), or null; the chunk's
  /// first row.
  Value aPack, chunkBegin;
};
} // namespace

Value mlir::moe::detail::allocMatmulPack(LoopEmitter &e,
                                         const MatmulSchedule &schedule) {
  std::array<int64_t, 3> shape = schedule.packShape();
  return e.alloc(e.b.getF32Type(), shape);
}

int64_t mlir::moe::detail::getStaticSize(Value size) {
  if (std::optional<int64_t> value = getConstantIntValue(size))
    return *value;
  if (auto dim = size.getDefiningOp<memref::DimOp>())
    if (std::optional<int64_t> index = dim.getConstantIndex())
      return llvm::cast<MemRefType>(dim.getSource().getType())
          .getDimSize(*index);
  return ShapedType::kDynamic;
}

MatmulShape mlir::moe::detail::getMatmulShape(const RowMatmul &m) {
  auto element = [](Value memref) {
    return llvm::cast<MemRefType>(memref.getType()).getElementType();
  };
  MatmulShape shape;
  shape.a = element(m.a);
  shape.b = element(m.b);
  shape.c = element(m.c);
  shape.bPacked = m.bPacked;
  shape.quant = m.quant;
  shape.depth = getStaticSize(m.depth);
  shape.columns = getStaticSize(m.n);
  return shape;
}

void mlir::moe::detail::emitRowMatmul(LoopEmitter &e, const RowMatmul &m) {
  MatmulEmitter(e, m).emit();
}
