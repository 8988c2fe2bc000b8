//===- MatmulKernel.cpp - Register-blocked row-block matmul -----*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The matmul that the router (moe.gate, the fused moe.route_dispatch) uses:
//
//   for each block of 4 rows, for each block of 32 (or 16) columns:
//     8 (or 4) vector<16xf32> accumulators live in registers across the
//     whole depth loop: per k, one or two vector loads of the matrix row, one
//     broadcast per row, one vector.fma per accumulator
//   the columns past the last 16-wide block form one masked block (masked
//   loads and stores: nothing outside the matrix is touched); rows past the
//   last 4-row block use blocks of one row.
//
// Every output element is `fma(a[k], b[k], ...)` over k = 0, 1, ... from
// 0.0, then `+ bias`: the blocking never changes the value, so two
// lowerings that share this kernel (moe.gate and moe.route_dispatch) give
// bit-identical results whatever their tiles.
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
/// Rows of one register block.
constexpr int64_t kRowBlock = 4;
/// Vectors per row of a full register block (its columns: 32).
constexpr int64_t kVectors = 2;

class MatmulEmitter {
public:
  MatmulEmitter(LoopEmitter &e, const RowMatmul &m)
      : e(e), m(m),
        vectorType(VectorType::get({kLanes}, e.b.getF32Type())) {}

  void emit() {
    Value four = e.index(kRowBlock);
    Value count = e.sub(m.rowEnd, m.rowBegin);
    Value blocks = arith::DivUIOp::create(e.b, count, four);
    e.loop(e.index(0), blocks, [&](Value block) {
      emitRows(e.add(m.rowBegin, e.mul(block, four)), kRowBlock);
    });
    e.loop(e.add(m.rowBegin, e.mul(blocks, four)), m.rowEnd,
           [&](Value row) { emitRows(row, 1); });
  }

private:
  /// Rows [row, row + rows) over all columns.
  void emitRows(Value row, int64_t rows) {
    Value wide = e.index(kLanes * kVectors);
    Value narrow = e.index(kLanes);
    Value wideBlocks = arith::DivUIOp::create(e.b, m.n, wide);
    e.loop(e.index(0), wideBlocks, [&](Value block) {
      emitBlock(row, rows, e.mul(block, wide), kVectors, Value());
    });
    Value done = e.mul(wideBlocks, wide);
    Value narrowEnd = e.mul(arith::DivUIOp::create(e.b, m.n, narrow), narrow);
    // At most one 16-wide block is left.
    e.ifThen(e.cmpi(arith::CmpIPredicate::ult, done, narrowEnd),
             [&] { emitBlock(row, rows, done, 1, Value()); });
    Value rest = e.sub(m.n, narrowEnd);
    e.ifThen(e.cmpi(arith::CmpIPredicate::ne, rest, e.index(0)), [&] {
      auto maskType = VectorType::get({kLanes}, e.b.getI1Type());
      Value mask = vector::CreateMaskOp::create(e.b, maskType, rest);
      emitBlock(row, rows, narrowEnd, 1, mask);
    });
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
    SmallVector<Value> sums = e.loop(
        e.index(0), m.depth, inits, [&](Value k, ValueRange acc) {
          SmallVector<Value> b;
          for (Value c : cols)
            b.push_back(loadVector(m.b, m.bPrefix, {k, c}, mask));
          SmallVector<Value> next;
          for (int64_t r = 0; r < rows; ++r) {
            Value a = vector::BroadcastOp::create(
                e.b, vectorType, loadA(e.add(row, e.index(r)), k));
            for (int64_t v = 0; v < vectors; ++v)
              next.push_back(vector::FMAOp::create(e.b, a, b[v],
                                                   acc[r * vectors + v]));
          }
          return next;
        });
    for (int64_t r = 0; r < rows; ++r) {
      Value outRow = rowOfC(e.add(row, e.index(r)));
      for (int64_t v = 0; v < vectors; ++v) {
        Value sum = sums[r * vectors + v];
        if (m.bias)
          sum = e.add(sum, loadVector(m.bias, m.biasPrefix, {cols[v]}, mask));
        storeVector(sum, outRow, cols[v], mask);
      }
    }
  }

  static SmallVector<Value> indices(ValueRange prefix, ValueRange rest) {
    SmallVector<Value> all(prefix.begin(), prefix.end());
    all.append(rest.begin(), rest.end());
    return all;
  }

  Value loadA(Value row, Value k) {
    Value aRow = m.rowOfA ? m.rowOfA(row) : row;
    return e.toF32(e.load(m.a, {aRow, k}));
  }

  Value rowOfC(Value row) { return m.rowOfC ? m.rowOfC(row) : row; }

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
