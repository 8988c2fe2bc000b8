//===- CombineLowering.cpp - moe.combine to loops ---------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// out[t] = sum over j in slot order of weights[t, j] * c(t, j), accumulated
// in f32 from +0.0. A compute slot gathers its row of y (when slot_rows is in
// [0, R)), a copy slot adds x[t], a constant slot a1 * x[t] + a2 * v[i];
// null, empty and invalid slots do nothing (their weights are not even
// read). Each token is written by exactly one iteration: no atomics.
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

FailureOr<SmallVector<Value>>
mlir::moe::detail::emitLoops(LoopEmitter &e, CombineOp op,
                             CombineOp::Adaptor adaptor,
                             const MoEToLoopsOptions &options) {
  CombineOperands c = fetchCombineOperands(
      e, op, adaptor, [&](Value operand) { return e.buffer(operand); });
  ExpertSpaceAttr experts = op.getExperts();
  Type outType =
      llvm::cast<RankedTensorType>(op.getOut().getType()).getElementType();
  Destination destination = emitDestination(
      e, adaptor.getInit(), /*readsInit=*/false, /*unitStride=*/false);
  Value out = destination.buffer;
  SizeConstraints sizes = combineSizes(e, c);
  sizes.equal(e, out, 0, c.x, 0);
  sizes.equal(e, out, 1, c.x, 1);
  emitGuardedInto(e, op, sizes, out, [&] {
    Value acc = e.alloc(e.b.getF32Type(), {ShapedType::kDynamic}, c.hidden);

    Value zero = e.index(0);
    Value zeroF = e.f32(0.0f);

    // acc[h] += w * value(h) for every h.
    auto accumulate = [&](Value w, function_ref<Value(Value)> value) {
      e.loop(zero, c.hidden, [&](Value h) {
        Value sum = e.load(acc, h);
        Value term = e.mul(w, value(h));
        e.store(e.add(sum, term), acc, h);
      });
    };

    e.loop(zero, c.numTokens, [&](Value t) {
      e.fill(acc, zeroF, zero, c.hidden);
      auto xAt = [&](Value h) { return e.toF32(e.load(c.x, {t, h})); };
      e.loop(zero, c.k, [&](Value j) {
        CombineSlot slot = emitCombineSlot(e, c, experts, t, j);
        e.ifThen(slot.isCompute, [&] {
          Value w = e.load(c.weights, {t, j});
          Value r = e.toIndex(slot.row);
          accumulate(w, [&](Value h) { return e.toF32(e.load(c.y, {r, h})); });
        });
        if (slot.isCopy)
          e.ifThen(slot.isCopy, [&] {
            accumulate(e.load(c.weights, {t, j}), xAt);
          });
        if (slot.isConst)
          e.ifThen(slot.isConst, [&] {
            Value i = slot.constIndex;
            std::pair<Value, Value> mix = emitConstMix(e, c, t, i);
            Value a1 = mix.first, a2 = mix.second;
            accumulate(e.load(c.weights, {t, j}), [&](Value h) {
              Value v = e.toF32(e.load(c.constValues, {i, h}));
              Value fromX = e.mul(a1, xAt(h));
              Value fromV = e.mul(a2, v);
              return e.add(fromX, fromV);
            });
          });
      });
      e.loop(zero, c.hidden, [&](Value h) {
        e.store(e.castFloat(e.load(acc, h), outType), out, {t, h});
      });
    });
  });
  return SmallVector<Value>{finishDestination(e, destination)};
}
