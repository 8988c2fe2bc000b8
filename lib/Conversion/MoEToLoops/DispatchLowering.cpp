//===- DispatchLowering.cpp - moe.dispatch to loops -------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// A stable counting sort of the compute slots: histogram over compute ids,
// exclusive scan into offsets, scatter of the tokens' rows. Only compute
// slots are materialised: R is the number of compute slots (dynamic form) or
// R_max (padded form, where slots whose row would not fit are dropped;
// moe.dispatch_padded writes it into given destinations).
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

//===----------------------------------------------------------------------===//
// DispatchKernel
//===----------------------------------------------------------------------===//

void DispatchKernel::forEachSlot(Value t,
                                 function_ref<void(Value, Value)> compute,
                                 function_ref<void(Value)> other) {
  Value zeroI32 = e.i32(0);
  Value numExpertsI32 = e.i32(numExperts);
  e.loop(e.index(0), k, [&](Value j) {
    Value id = e.load(ids, {t, j});
    Value isCompute = e.inRange(id, zeroI32, numExpertsI32);
    if (!other) {
      e.ifThen(isCompute, [&] { compute(j, e.toIndex(id)); });
      return;
    }
    e.ifThenElse(
        isCompute, [&] { compute(j, e.toIndex(id)); }, [&] { other(j); });
  });
}

void DispatchKernel::emitInit() {
  Value zero = e.index(0);
  cursor = e.alloc(e.b.getIndexType(), {numExperts});
  e.fill(cursor, zero, zero, e.index(numExperts));
}

void DispatchKernel::emitCountToken(Value t) {
  Value one = e.index(1);
  forEachSlot(
      t,
      [&](Value, Value expert) {
        e.store(e.add(e.load(cursor, expert), one), cursor, expert);
      },
      nullptr);
}

Value DispatchKernel::emitScan(Value offsets, Value rowLimit) {
  // Exclusive scan: offsets[e] = rows before expert e; cursor[e] becomes the
  // next free row of expert e. The padded form clamps to R_max.
  Value zero = e.index(0);
  Value numExpertsV = e.index(numExperts);
  SmallVector<Value> total =
      e.loop(zero, numExpertsV, zero, [&](Value expert, ValueRange args) {
        Value start = args[0];
        Value stored = rowLimit ? e.minSI(start, rowLimit) : start;
        e.store(e.toI32(stored), offsets, expert);
        Value count = e.load(cursor, expert);
        e.store(start, cursor, expert);
        return SmallVector<Value>{e.add(start, count)};
      });
  e.store(e.toI32(rowLimit ? e.minSI(total[0], rowLimit) : total[0]), offsets,
          numExpertsV);
  return total[0];
}

void DispatchKernel::emitScatter(Value x, Value rows, Value slotRows,
                                 Value rowLimit) {
  // In token then slot order: rows of one expert stay in (token, slot)
  // order.
  Value zero = e.index(0);
  Value one = e.index(1);
  Value hidden = e.dim(x, 1);
  Value minusOne = e.i32(-1);
  e.loop(zero, numTokens, [&](Value t) {
    forEachSlot(
        t,
        [&](Value j, Value expert) {
          Value row = e.load(cursor, expert);
          e.store(e.add(row, one), cursor, expert);
          Value fits = rowLimit
                           ? e.cmpi(arith::CmpIPredicate::slt, row, rowLimit)
                           : e.boolean(true);
          e.ifThenElse(
              fits,
              [&] {
                e.loop(zero, hidden, [&](Value h) {
                  e.store(e.load(x, {t, h}), rows, {row, h});
                });
                e.store(e.toI32(row), slotRows, {t, j});
              },
              [&] {
                e.store(minusOne, slotRows, {t, j});
              });
        },
        [&](Value j) {
          e.store(minusOne, slotRows, {t, j});
        });
  });
}

SmallVector<Value>
DispatchKernel::emitScanAndScatter(Value x, RankedTensorType rowsType,
                                   RankedTensorType offsetsType,
                                   RankedTensorType slotRowsType) {
  bool padded = !rowsType.isDynamicDim(0);
  Value rowLimit = padded ? e.index(rowsType.getDimSize(0)) : Value();
  Value offsets = e.allocShaped(offsetsType, {e.index(numExperts + 1)});
  Value total = emitScan(offsets, rowLimit);
  Value numRows = padded ? rowLimit : total;
  Value rows = e.allocShaped(rowsType, {numRows, e.dim(x, 1)});
  Value slotRows = e.allocShaped(slotRowsType, {numTokens, k});
  emitScatter(x, rows, slotRows, rowLimit);
  // Padding rows hold no data; zero them so that nothing uninitialised ever
  // leaves the op.
  if (padded)
    emitZeroRows(e, rows, e.minSI(total, rowLimit), rowLimit);
  return {rows, offsets, slotRows};
}

FailureOr<SmallVector<Value>>
mlir::moe::detail::emitLoops(LoopEmitter &e, DispatchOp op,
                             DispatchOp::Adaptor adaptor,
                             const MoEToLoopsOptions &options) {
  Value x = e.buffer(adaptor.getX());
  Value ids = e.buffer(adaptor.getIds());
  auto rowsType = llvm::cast<RankedTensorType>(op.getRows().getType());
  auto offsetsType = llvm::cast<RankedTensorType>(op.getOffsets().getType());
  auto slotRowsType = llvm::cast<RankedTensorType>(op.getSlotRows().getType());
  SizeConstraints sizes;
  sizes.equal(e, ids, 0, x, 0);
  // rows [R, H] (R is data-dependent, or the padded R_max), offsets
  // [E + 1] (static), slot_rows [T, K].
  sizes.result(e, rowsType, {Value(), e.dim(x, 1)});
  sizes.result(e, slotRowsType, {e.dim(x, 0), e.dim(ids, 1)});
  SmallVector<Value> results =
      emitGuarded(e, op, sizes,
                  {getBufferType(rowsType), getBufferType(offsetsType),
                   getBufferType(slotRowsType)},
                  [&]() -> SmallVector<Value> {
                    Value numTokens = e.dim(x, 0);
                    Value k = e.dim(ids, 1);
                    DispatchKernel kernel(e, ids, numTokens, k,
                                          op.getNumExpertsAttr().getInt());
                    kernel.emitInit();
                    e.loop(e.index(0), kernel.numTokens,
                           [&](Value t) { kernel.emitCountToken(t); });
                    return kernel.emitScanAndScatter(x, rowsType, offsetsType,
                                                     slotRowsType);
                  });
  return results;
}

FailureOr<SmallVector<Value>>
mlir::moe::detail::emitLoops(LoopEmitter &e, DispatchPaddedOp op,
                             DispatchPaddedOp::Adaptor adaptor,
                             const MoEToLoopsOptions &options) {
  Value x = e.buffer(adaptor.getX());
  Value ids = e.buffer(adaptor.getIds());
  Value numTokens = e.dim(x, 0);
  Value k = e.dim(ids, 1);
  int64_t numExperts = op.getNumExpertsAttr().getInt();
  // The destinations (emitDestination): rows_init is read (its rows past
  // offsets[E] are kept), offsets and slot_rows are overwritten whole.
  Destination rowsDest = emitDestination(e, adaptor.getRowsInit(),
                                         /*readsInit=*/true,
                                         /*unitStride=*/false);
  Destination offsetsDest =
      emitDestination(e, adaptor.getOffsetsInit(), /*readsInit=*/false,
                      /*unitStride=*/false);
  Destination slotRowsDest =
      emitDestination(e, adaptor.getSlotRowsInit(), /*readsInit=*/false,
                      /*unitStride=*/false);
  Value rows = rowsDest.buffer, offsets = offsetsDest.buffer,
        slotRows = slotRowsDest.buffer;
  SizeConstraints sizes;
  sizes.equal(e, ids, 0, x, 0);
  sizes.equal(e, rows, 1, x, 1);
  sizes.equal(e, offsets, 0, numExperts + 1);
  sizes.equal(e, slotRows, 0, x, 0);
  sizes.equal(e, slotRows, 1, ids, 1);
  emitGuardedInto(e, op, sizes, {rows, offsets, slotRows}, [&] {
    DispatchKernel dispatch(e, ids, numTokens, k, numExperts);
    dispatch.emitInit();
    e.loop(e.index(0), numTokens, [&](Value t) { dispatch.emitCountToken(t); });
    Value rowLimit = e.dim(rows, 0);
    dispatch.emitScan(offsets, rowLimit);
    dispatch.emitScatter(x, rows, slotRows, rowLimit);
  });
  return SmallVector<Value>{finishDestination(e, rowsDest),
                            finishDestination(e, offsetsDest),
                            finishDestination(e, slotRowsDest)};
}
