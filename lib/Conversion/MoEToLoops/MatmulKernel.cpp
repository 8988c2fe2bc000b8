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
//       for each block of 8 rows (then one of 4, then single rows):
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
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::moe::detail;

namespace {
/// f32 lanes of one vector.
constexpr int64_t kLanes = 16;
/// Vectors per row of a full panel (32 columns).
constexpr int64_t kPanelVectors = 2;
/// Rows of the largest register block, then of the next one.
constexpr int64_t kBigRows = 8;
constexpr int64_t kMidRows = 4;
/// Rows per L2 chunk.
constexpr int64_t kChunkRows = 256;

class MatmulEmitter {
public:
  MatmulEmitter(LoopEmitter &e, const RowMatmul &m)
      : e(e), m(m),
        vectorType(VectorType::get({kLanes}, e.b.getF32Type())) {}

  void emit() {
    Value chunk = e.index(kChunkRows);
    Value chunks = arith::CeilDivUIOp::create(
        e.b, e.sub(m.rowEnd, m.rowBegin), chunk);
    e.loop(e.index(0), chunks, [&](Value c) {
      Value begin = e.add(m.rowBegin, e.mul(c, chunk));
      Value end = e.minSI(e.add(begin, chunk), m.rowEnd);
      emitChunk(begin, end);
    });
  }

private:
  /// Rows [begin, end) over all columns, panel by panel.
  void emitChunk(Value begin, Value end) {
    Value wide = e.index(kLanes * kPanelVectors);
    Value narrow = e.index(kLanes);
    Value panels = arith::DivUIOp::create(e.b, m.n, wide);
    e.loop(e.index(0), panels, [&](Value p) {
      emitPanel(begin, end, e.mul(p, wide), kPanelVectors, Value());
    });
    Value done = e.mul(panels, wide);
    Value narrowEnd = e.mul(arith::DivUIOp::create(e.b, m.n, narrow), narrow);
    // At most one 16-wide panel is left, then fewer than 16 columns.
    e.ifThen(e.cmpi(arith::CmpIPredicate::ult, done, narrowEnd),
             [&] { emitPanel(begin, end, done, 1, Value()); });
    Value rest = e.sub(m.n, narrowEnd);
    e.ifThen(e.cmpi(arith::CmpIPredicate::ne, rest, e.index(0)), [&] {
      auto maskType = VectorType::get({kLanes}, e.b.getI1Type());
      Value mask = vector::CreateMaskOp::create(e.b, maskType, rest);
      emitPanel(begin, end, narrowEnd, 1, mask);
    });
  }

  /// One panel (`vectors` x 16 columns at `col`) for rows [begin, end):
  /// blocks of 8 rows, then at most one of 4, then single rows.
  void emitPanel(Value begin, Value end, Value col, int64_t vectors,
                 Value mask) {
    Value big = e.index(kBigRows);
    Value bigBlocks = arith::DivUIOp::create(e.b, e.sub(end, begin), big);
    e.loop(e.index(0), bigBlocks, [&](Value b) {
      emitBlock(e.add(begin, e.mul(b, big)), kBigRows, col, vectors, mask);
    });
    Value next = e.add(begin, e.mul(bigBlocks, big));
    Value mid = e.index(kMidRows);
    Value hasMid = e.cmpi(arith::CmpIPredicate::sge, e.sub(end, next), mid);
    e.ifThen(hasMid, [&] { emitBlock(next, kMidRows, col, vectors, mask); });
    Value singles = e.select(hasMid, e.add(next, mid), next);
    e.loop(singles, end,
           [&](Value row) { emitBlock(row, 1, col, vectors, mask); });
  }

  /// A register block: `rows` x `vectors` accumulators at column `col`;
  /// with `mask` (one vector), only its lanes are loaded and stored.
  void emitBlock(Value row, int64_t rows, Value col, int64_t vectors,
                 Value mask) {
    Value zero = arith::ConstantOp::create(
        e.b, vectorType, DenseElementsAttr::get(vectorType, 0.0f));
    SmallVector<Value> inits(rows * vectors, zero);
    SmallVector<Value> cols;
    for (int64_t v = 0; v < vectors; ++v)
      cols.push_back(e.add(col, e.index(v * kLanes)));
    SmallVector<Value> aRows;
    for (int64_t r = 0; r < rows; ++r) {
      Value rowR = e.add(row, e.index(r));
      aRows.push_back(m.rowOfA ? m.rowOfA(rowR) : rowR);
    }
    SmallVector<Value> sums = e.loop(
        e.index(0), m.depth, inits, [&](Value k, ValueRange acc) {
          SmallVector<Value> b;
          for (Value c : cols)
            b.push_back(loadVector(m.b, m.bPrefix, {k, c}, mask));
          SmallVector<Value> next;
          for (int64_t r = 0; r < rows; ++r) {
            Value a = vector::BroadcastOp::create(
                e.b, vectorType, e.toF32(e.load(m.a, {aRows[r], k})));
            for (int64_t v = 0; v < vectors; ++v)
              next.push_back(vector::FMAOp::create(e.b, a, b[v],
                                                   acc[r * vectors + v]));
          }
          return next;
        });
    SmallVector<Value> bias;
    if (m.bias)
      for (Value c : cols)
        bias.push_back(loadVector(m.bias, m.biasPrefix, {c}, mask));
    for (int64_t r = 0; r < rows; ++r) {
      Value rowR = e.add(row, e.index(r));
      Value outRow = m.rowOfC ? m.rowOfC(rowR) : rowR;
      for (int64_t v = 0; v < vectors; ++v) {
        Value sum = sums[r * vectors + v];
        if (m.bias)
          sum = e.add(sum, bias[v]);
        storeVector(sum, outRow, cols[v], mask);
      }
    }
    if (m.afterBlock) {
      Value width = e.index(vectors * kLanes);
      if (mask)
        width = e.minSI(width, e.sub(m.n, col));
      m.afterBlock(e.index(rows), width);
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
};
} // namespace

void mlir::moe::detail::emitRowMatmul(LoopEmitter &e, const RowMatmul &m) {
  MatmulEmitter(e, m).emit();
}
