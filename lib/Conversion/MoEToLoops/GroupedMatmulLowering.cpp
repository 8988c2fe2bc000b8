//===- GroupedMatmulLowering.cpp - moe.grouped_matmul to loops --*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// out[r] = lhs[r] @ rhs[e(r)] for the rows of each group, with sanitised
// offsets; an empty group runs no loop iteration and reads none of its
// matrix. Rows at or past offsets[E] are zero.
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

FailureOr<SmallVector<Value>>
mlir::moe::detail::emitLoops(LoopEmitter &e, GroupedMatmulOp op,
                             GroupedMatmulOp::Adaptor adaptor,
                             const MoEToLoopsOptions &options) {
  Value lhs = e.buffer(adaptor.getLhs());
  Value rhs = e.unitStrideBuffer(adaptor.getRhs());
  Value rawOffsets = e.buffer(adaptor.getOffsets());
  Value numRows = e.dim(lhs, 0);
  Value depth = e.dim(lhs, 1);
  Value numGroups = e.dim(rhs, 0);
  Value n = e.dim(rhs, 2);
  Destination destination =
      emitDestination(e, adaptor.getInit(), /*readsInit=*/false,
                      /*unitStride=*/true);
  Value out = destination.buffer;
  SizeConstraints sizes;
  sizes.equal(e, lhs, 1, rhs, 1);
  sizes.equal(e, rawOffsets, 0, rhs, 0, 1);
  sizes.equal(e, out, 0, lhs, 0);
  sizes.equal(e, out, 1, rhs, 2);
  emitGuardedInto(e, op, sizes, out, [&] {
    Value offsets = emitSanitizedOffsets(e, rawOffsets, numGroups, numRows);

    // Each group's rows times its matrix, with the shared register-blocked
    // kernel; a group without rows runs no block and reads no weight.
    e.loop(e.index(0), numGroups, [&](Value group) {
      RowMatmul matmul;
      matmul.a = lhs;
      matmul.b = rhs;
      matmul.bPrefix = {group};
      matmul.c = out;
      matmul.rowBegin = e.load(offsets, group);
      matmul.rowEnd = e.load(offsets, e.add(group, e.index(1)));
      matmul.depth = depth;
      matmul.n = n;
      matmul.schedule = getMatmulSchedule(op, getMatmulShape(matmul));
      emitRowMatmul(e, matmul);
    });
    // Rows that belong to no group are zero.
    emitZeroRows(e, out, e.load(offsets, numGroups), numRows);
  });
  return SmallVector<Value>{finishDestination(e, destination)};
}
