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
#include "mlir/Transforms/DialectConversion.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

namespace {
struct CombineOpLowering : OpConversionPattern<CombineOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(CombineOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LoopEmitter e(rewriter, op.getLoc());
    Value y = e.buffer(adaptor.getY());
    Value slotRows = e.buffer(adaptor.getSlotRows());
    Value ids = e.buffer(adaptor.getIds());
    Value weights = e.buffer(adaptor.getWeights());
    Value x = e.buffer(adaptor.getX());
    ExpertSpaceAttr experts = op.getExperts();
    int64_t numConst = experts.getNumConst();
    Value constProj = numConst > 0 ? e.buffer(adaptor.getConstProj()) : Value();
    Value constValues =
        numConst > 0 ? e.buffer(adaptor.getConstValues()) : Value();

    Value numTokens = e.dim(x, 0);
    Value hidden = e.dim(x, 1);
    Value k = e.dim(ids, 1);
    Value numRows = e.dim(y, 0);
    auto resultType = llvm::cast<RankedTensorType>(op.getOut().getType());
    Type outType = resultType.getElementType();
    // slot_rows, ids, weights [T,K]; y [R,H]; Wc [N_const,H,2]; v [N_const,H].
    SizeConstraints sizes = combineSizes(e, y, slotRows, ids, weights, x,
                                         constProj, constValues, numConst);
    Value result = emitGuarded(e, op, sizes, getBufferType(resultType), [&] {
      Value out = e.allocShaped(resultType, {numTokens, hidden});
      Value acc = e.alloc(e.b.getF32Type(), {ShapedType::kDynamic}, hidden);

      Value zero = e.index(0);
      Value zeroF = e.f32(0.0f);
      Value zeroI32 = e.i32(0);
      Value computeEnd = e.i32(experts.getCompute());
      Value copyBegin = e.i32(experts.getCopyBegin());
      Value constBegin = e.i32(experts.getConstBegin());
      Value constEnd = e.i32(experts.getNumExperts());
      Value numRowsI32 = e.toI32(numRows);

      // acc[h] += w * value(h) for every h.
      auto accumulate = [&](Value w, function_ref<Value(Value)> value) {
        e.loop(zero, hidden, [&](Value h) {
          e.store(e.add(e.load(acc, h), e.mul(w, value(h))), acc, h);
        });
      };

      e.loop(zero, numTokens, [&](Value t) {
        e.fill(acc, zeroF, zero, hidden);
        auto xAt = [&](Value h) { return e.toF32(e.load(x, {t, h})); };
        e.loop(zero, k, [&](Value j) {
          Value id = e.load(ids, {t, j});
          // Compute slot with a row in [0, R).
          Value row = e.load(slotRows, {t, j});
          Value idIsCompute = e.inRange(id, zeroI32, computeEnd);
          Value rowIsValid = e.inRange(row, zeroI32, numRowsI32);
          Value isCompute = e.andi(idIsCompute, rowIsValid);
          e.ifThen(isCompute, [&] {
            Value w = e.load(weights, {t, j});
            Value r = e.toIndex(row);
            accumulate(w, [&](Value h) { return e.toF32(e.load(y, {r, h})); });
          });
          if (experts.getNumCopy() > 0)
            e.ifThen(e.inRange(id, copyBegin, constBegin), [&] {
              accumulate(e.load(weights, {t, j}), xAt);
            });
          if (numConst > 0)
            e.ifThen(e.inRange(id, constBegin, constEnd), [&] {
              Value i = e.toIndex(e.sub(id, constBegin));
              // [a1, a2] = softmax(x[t] @ Wc[i]), in f32.
              SmallVector<Value> logits = e.loop(
                  zero, hidden, ValueRange{zeroF, zeroF},
                  [&](Value h, ValueRange sums) {
                    Value xv = xAt(h);
                    Value p0 = e.toF32(e.load(constProj, {i, h, e.index(0)}));
                    Value p1 = e.toF32(e.load(constProj, {i, h, e.index(1)}));
                    return SmallVector<Value>{e.add(sums[0], e.mul(xv, p0)),
                                              e.add(sums[1], e.mul(xv, p1))};
                  });
              Value m = arith::MaximumFOp::create(e.b, logits[0], logits[1]);
              Value ex0 = math::ExpOp::create(e.b, e.sub(logits[0], m));
              Value ex1 = math::ExpOp::create(e.b, e.sub(logits[1], m));
              Value den = e.add(ex0, ex1);
              Value a1 = e.div(ex0, den);
              Value a2 = e.div(ex1, den);
              accumulate(e.load(weights, {t, j}), [&](Value h) {
                Value v = e.toF32(e.load(constValues, {i, h}));
                return e.add(e.mul(a1, xAt(h)), e.mul(a2, v));
              });
            });
        });
        e.loop(zero, hidden, [&](Value h) {
          e.store(e.castFloat(e.load(acc, h), outType), out, {t, h});
        });
      });
      return SmallVector<Value>{out};
    })[0];
    rewriter.replaceOp(op, e.toTensor(result, resultType));
    return success();
  }
};
} // namespace

void mlir::moe::detail::populateCombineLowering(RewritePatternSet &patterns) {
  patterns.add<CombineOpLowering>(patterns.getContext());
}
