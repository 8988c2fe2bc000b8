//===- AuxLossLowering.cpp - moe.aux_loss to loops --------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// L = S * sum_i f_i * P_i with f_i = count_i / max(1, valid slots) and
// P_i = sum_t scores[t, i] / max(1, T); a slot counts when 0 <= id < S.
// Computed in f64 and rounded to f32 once.
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

FailureOr<SmallVector<Value>>
mlir::moe::detail::emitLoops(LoopEmitter &e, AuxLossOp op,
                             AuxLossOp::Adaptor adaptor,
                             const MoEToLoopsOptions &options) {
  Value scores = e.buffer(adaptor.getScores());
  Value ids = e.buffer(adaptor.getIds());
  Value numTokens = e.dim(scores, 0);
  Value width = e.dim(scores, 1);
  Value k = e.dim(ids, 1);
  Destination destination = emitDestination(
      e, adaptor.getInit(), /*readsInit=*/false, /*unitStride=*/false);
  SizeConstraints sizes;
  sizes.equal(e, ids, 0, scores, 0);
  emitGuardedInto(e, op, sizes, destination.buffer, [&] {
    Value zero = e.index(0);
    Value one = e.index(1);

    Value counts = e.alloc(e.b.getIndexType(), {ShapedType::kDynamic}, width);
    e.fill(counts, zero, zero, width);
    Value widthI32 = e.toI32(width);
    Value zeroI32 = e.i32(0);
    SmallVector<Value> valid =
        e.loop(zero, numTokens, zero, [&](Value t, ValueRange outer) {
          return e.loop(zero, k, outer, [&](Value j, ValueRange inner) {
            Value id = e.load(ids, {t, j});
            Value ok = e.inRange(id, zeroI32, widthI32);
            e.ifThen(ok, [&] {
              Value i = e.toIndex(id);
              e.store(e.add(e.load(counts, i), one), counts, i);
            });
            return SmallVector<Value>{e.add(inner[0], e.select(ok, one, zero))};
          });
        });

    Type f64 = e.b.getF64Type();
    auto toF64 = [&](Value index) {
      return arith::SIToFPOp::create(e.b, f64, e.toI64(index));
    };
    Value validF = toF64(e.maxSI(valid[0], one));
    Value tokensF = toF64(e.maxSI(numTokens, one));
    Value zeroF = e.f64(0.0);
    SmallVector<Value> total =
        e.loop(zero, width, zeroF, [&](Value i, ValueRange sum) {
          SmallVector<Value> column =
              e.loop(zero, numTokens, zeroF, [&](Value t, ValueRange acc) {
                Value s = e.castFloat(e.load(scores, {t, i}), f64);
                return SmallVector<Value>{e.add(acc[0], s)};
              });
          Value fraction = e.div(toF64(e.load(counts, i)), validF);
          Value mean = e.div(column[0], tokensF);
          return SmallVector<Value>{e.add(sum[0], e.mul(fraction, mean))};
        });
    Value loss = e.toF32(e.mul(toF64(width), total[0]));
    e.store(loss, destination.buffer, {});
  });
  return SmallVector<Value>{finishDestination(e, destination)};
}
