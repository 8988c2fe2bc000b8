//===- GateLowering.cpp - moe.gate to loops ---------------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// logits[t, :] = x[t, :] @ w (+ b), accumulated in f32.
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Transforms/DialectConversion.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

namespace {
struct GateOpLowering : OpConversionPattern<GateOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(GateOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LoopEmitter e(rewriter, op.getLoc());
    Value x = e.buffer(adaptor.getX());
    Value w = e.buffer(adaptor.getW());
    Value bias = adaptor.getBias() ? e.buffer(adaptor.getBias()) : Value();
    Value numTokens = e.dim(x, 0);
    Value hidden = e.dim(x, 1);
    Value width = e.dim(w, 1);
    auto resultType = llvm::cast<RankedTensorType>(op.getLogits().getType());
    SizeConstraints sizes;
    sizes.equal(e, x, 1, w, 0);
    if (bias)
      sizes.equal(e, bias, 0, w, 1);
    Value result = emitGuarded(e, op, sizes, getBufferType(resultType), [&] {
      Value logits = e.allocShaped(resultType, {numTokens, width});

      Value zero = e.index(0);
      Value zeroF = e.f32(0.0f);
      e.loop(zero, numTokens, [&](Value t) {
        // A row view of the output, as the accumulator of the row product.
        e.loop(zero, width, [&](Value s) { e.store(zeroF, logits, {t, s}); });
        e.loop(zero, hidden, [&](Value h) {
          Value a = e.toF32(e.load(x, {t, h}));
          e.loop(zero, width, [&](Value s) {
            Value m = e.toF32(e.load(w, {h, s}));
            Value acc = e.load(logits, {t, s});
            e.store(e.add(acc, e.mul(a, m)), logits, {t, s});
          });
        });
        if (bias)
          e.loop(zero, width, [&](Value s) {
            Value acc = e.load(logits, {t, s});
            e.store(e.add(acc, e.toF32(e.load(bias, s))), logits, {t, s});
          });
      });
      return SmallVector<Value>{logits};
    })[0];
    rewriter.replaceOp(op, e.toTensor(result, resultType));
    return success();
  }
};
} // namespace

void mlir::moe::detail::populateGateLowering(RewritePatternSet &patterns) {
  patterns.add<GateOpLowering>(patterns.getContext());
}
