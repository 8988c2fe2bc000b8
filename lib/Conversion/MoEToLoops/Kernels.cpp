//===- Kernels.cpp - Kernels shared by the moe lowerings --------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

using namespace mlir;
using namespace mlir::moe::detail;

void mlir::moe::detail::emitAccumulateRowTimesMatrix(
    LoopEmitter &e, Value acc, function_ref<Value(Value)> lhsAt, Value matrix,
    ValueRange prefix, Value depth, Value n,
    function_ref<void(Value)> afterRow) {
  Value zero = e.index(0);
  // The inner loop runs over contiguous matrix columns so that it vectorises.
  e.loop(zero, depth, [&](Value k) {
    Value a = e.toF32(lhsAt(k));
    SmallVector<Value> base(prefix.begin(), prefix.end());
    base.push_back(k);
    e.loop(zero, n, [&](Value j) {
      SmallVector<Value> indices = base;
      indices.push_back(j);
      Value m = e.toF32(e.load(matrix, indices));
      e.store(e.add(e.load(acc, j), e.mul(a, m)), acc, j);
    });
    if (afterRow)
      afterRow(n);
  });
}

Value mlir::moe::detail::emitSanitizedOffsets(LoopEmitter &e, Value offsets,
                                              Value numGroups, Value numRows) {
  Value zero = e.index(0);
  Value one = e.index(1);
  Value count = e.add(numGroups, one);
  Value result = e.alloc(e.b.getIndexType(), {ShapedType::kDynamic}, count);
  e.store(zero, result, zero);
  e.loop(zero, numGroups, [&](Value g) {
    Value previous = e.load(result, g);
    Value next = e.add(g, one);
    Value raw = e.toIndex(e.load(offsets, next));
    Value clamped = e.minSI(e.maxSI(raw, previous), numRows);
    e.store(clamped, result, next);
  });
  return result;
}
