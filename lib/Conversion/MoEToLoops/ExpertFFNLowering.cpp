//===- ExpertFFNLowering.cpp - moe.expert_ffn to loops ----------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Each expert's FFN on its segment of rows, whose bounds come from the
// (sanitised) offsets: an expert without rows runs no iteration and reads
// none of its weights. Matmuls accumulate in f32; with f16/bf16 rows every
// intermediate is rounded to the rows' type, as the contract says.
//
// With instrumentation, counters[e][0] counts the rows expert e processes
// and counters[e][1] the multiply-adds its inner loops execute (their trip
// counts, added each time one runs).
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Transforms/DialectConversion.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

/// The activation in f32. NaN propagates through every one of them.
static Value emitActivation(LoopEmitter &e, Activation activation, Value x) {
  Value half = e.f32(0.5f);
  Value one = e.f32(1.0f);
  switch (activation) {
  case Activation::silu: {
    Value negExp = math::ExpOp::create(e.b, arith::NegFOp::create(e.b, x));
    return e.div(x, e.add(one, negExp));
  }
  case Activation::gelu: {
    Value scaled = e.mul(x, e.f32(static_cast<float>(M_SQRT1_2)));
    Value erf = math::ErfOp::create(e.b, scaled);
    return e.mul(e.mul(half, x), e.add(one, erf));
  }
  case Activation::gelu_tanh: {
    Value cube = e.mul(e.mul(x, x), x);
    Value inner = e.add(x, e.mul(e.f32(0.044715f), cube));
    Value scaled =
        e.mul(e.f32(static_cast<float>(std::sqrt(2.0 / M_PI))), inner);
    Value tanh = math::TanhOp::create(e.b, scaled);
    return e.mul(e.mul(half, x), e.add(one, tanh));
  }
  case Activation::relu: {
    Value positive = e.cmpf(arith::CmpFPredicate::OGT, x, e.f32(0.0f));
    return e.select(e.isNaN(x), x, e.select(positive, x, e.f32(0.0f)));
  }
  }
  llvm_unreachable("unknown activation");
}

/// A public global holding the counters of one instrumented FFN op.
static Value getCounters(LoopEmitter &e, Operation *op, int64_t numExperts) {
  auto module = op->getParentOfType<ModuleOp>();
  auto type = MemRefType::get({numExperts, 2}, e.b.getI64Type());
  std::string name;
  for (int i = 0;; ++i) {
    name = "moe_ffn_counters_" + std::to_string(i);
    if (!SymbolTable::lookupSymbolIn(module, name))
      break;
  }
  return getOrCreateZeroGlobal(e, op, name, type);
}

namespace {
struct ExpertFFNOpLowering : OpConversionPattern<ExpertFFNOp> {
  ExpertFFNOpLowering(MLIRContext *context, const MoEToLoopsOptions &options)
      : OpConversionPattern(context), options(options) {}

  LogicalResult
  matchAndRewrite(ExpertFFNOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LoopEmitter e(rewriter, op.getLoc());
    Value rows = e.buffer(adaptor.getRows());
    Value rawOffsets = e.buffer(adaptor.getOffsets());
    Value wUp = e.buffer(adaptor.getWUp());
    Value wDown = e.buffer(adaptor.getWDown());
    Value wGate = adaptor.getWGate() ? e.buffer(adaptor.getWGate()) : Value();
    Value bUp = adaptor.getBUp() ? e.buffer(adaptor.getBUp()) : Value();
    Value bDown = adaptor.getBDown() ? e.buffer(adaptor.getBDown()) : Value();
    bool gated = op.getGated();
    Activation activation = op.getActivation();

    Value numRows = e.dim(rows, 0);
    Value hidden = e.dim(rows, 1);
    Value numExperts = e.dim(wUp, 0);
    Value ffn = e.dim(wUp, 2);
    auto resultType = llvm::cast<RankedTensorType>(op.getY().getType());
    Type rowType = resultType.getElementType();

    Value counters;
    auto wUpType = llvm::cast<RankedTensorType>(op.getWUp().getType());
    if (options.instrumentFFN) {
      if (wUpType.isDynamicDim(0))
        return rewriter.notifyMatchFailure(
            op, "instrumentation needs a static number of experts");
      counters = getCounters(e, op, wUpType.getDimSize(0));
    }

    // w_up [E,H,F], w_gate [E,H,F], w_down [E,F,H], b_up [E,F], b_down [E,H].
    SizeConstraints sizes;
    sizes.equal(e, wUp, 1, rows, 1);
    sizes.equal(e, rawOffsets, 0, wUp, 0, 1);
    sizes.equal(e, wDown, 0, wUp, 0);
    sizes.equal(e, wDown, 1, wUp, 2);
    sizes.equal(e, wDown, 2, rows, 1);
    if (wGate)
      for (int64_t d = 0; d < 3; ++d)
        sizes.equal(e, wGate, d, wUp, d);
    if (bUp) {
      sizes.equal(e, bUp, 0, wUp, 0);
      sizes.equal(e, bUp, 1, wUp, 2);
    }
    if (bDown) {
      sizes.equal(e, bDown, 0, wUp, 0);
      sizes.equal(e, bDown, 1, rows, 1);
    }
    Value result = emitGuarded(e, op, sizes, getBufferType(resultType), [&] {
      Value out = e.allocShaped(resultType, {numRows, hidden});
      Value offsets = emitSanitizedOffsets(e, rawOffsets, numExperts, numRows);

      // Rounds an f32 value to the rows' type and back (identity for f32).
      auto round = [&](Value v) { return e.toF32(e.castFloat(v, rowType)); };
      Type f32 = e.b.getF32Type();
      Value up = e.alloc(f32, {ShapedType::kDynamic}, ffn);
      Value gate = gated ? e.alloc(f32, {ShapedType::kDynamic}, ffn) : Value();
      Value down = e.alloc(f32, {ShapedType::kDynamic}, hidden);
      Value zero = e.index(0);
      Value one = e.index(1);
      Value zeroF = e.f32(0.0f);

      e.loop(zero, numExperts, [&](Value expert) {
        Value begin = e.load(offsets, expert);
        Value end = e.load(offsets, e.add(expert, one));
        auto count = [&](int64_t which, Value amount) {
          Value idx = e.index(which);
          Value current = e.load(counters, {expert, idx});
          e.store(e.add(current, e.toI64(amount)), counters, {expert, idx});
        };
        auto countMacsFn = [&](Value tripCount) { count(1, tripCount); };
        function_ref<void(Value)> countMacs = nullptr;
        if (counters)
          countMacs = countMacsFn;

        e.loop(begin, end, [&](Value r) {
          if (counters)
            count(0, one);
          auto rowAt = [&](Value h) { return e.load(rows, {r, h}); };
          e.fill(up, zeroF, zero, ffn);
          emitAccumulateRowTimesMatrix(e, up, rowAt, wUp, {expert}, hidden, ffn,
                                       countMacs);
          if (gated) {
            e.fill(gate, zeroF, zero, ffn);
            emitAccumulateRowTimesMatrix(e, gate, rowAt, wGate, {expert},
                                         hidden, ffn, countMacs);
            e.loop(zero, ffn, [&](Value f) {
              Value g = round(e.load(gate, f));
              Value u = round(e.load(up, f));
              Value a = round(emitActivation(e, activation, g));
              e.store(round(e.mul(a, u)), up, f);
            });
          } else {
            e.loop(zero, ffn, [&](Value f) {
              Value a = e.load(up, f);
              if (bUp)
                a = e.add(a, e.toF32(e.load(bUp, {expert, f})));
              e.store(round(emitActivation(e, activation, round(a))), up, f);
            });
          }
          e.fill(down, zeroF, zero, hidden);
          emitAccumulateRowTimesMatrix(
              e, down, [&](Value f) { return e.load(up, f); }, wDown, {expert},
              ffn, hidden, countMacs);
          e.loop(zero, hidden, [&](Value h) {
            Value y = e.load(down, h);
            if (bDown)
              y = e.add(y, e.toF32(e.load(bDown, {expert, h})));
            e.store(e.castFloat(y, rowType), out, {r, h});
          });
        });
      });
      // Rows that belong to no expert are zero.
      emitZeroRows(e, out, e.load(offsets, numExperts), numRows);
      return SmallVector<Value>{out};
    })[0];
    rewriter.replaceOp(op, e.toTensor(result, resultType));
    return success();
  }

  MoEToLoopsOptions options;
};
} // namespace

void mlir::moe::detail::populateExpertFFNLowering(
    RewritePatternSet &patterns, const MoEToLoopsOptions &options) {
  patterns.add<ExpertFFNOpLowering>(patterns.getContext(), options);
}
