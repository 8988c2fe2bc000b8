//===- ExpertsToGPU.cpp - grouped_matmul, expert_ffn, combine ---*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The expert half of a layer on the device (SIMT, f32 accumulation):
//
//   the schedule    offsets are sanitised on the device, and every thread
//                   finds the expert of its row from them: nothing about
//                   routing goes back to the host, so a layer's launches
//                   do not wait on its routing results;
//   moe.expert_ffn  register tiles (GroupedTiles.cpp: 4 rows of one expert
//                   x 4 columns per thread, scheduled over (expert, row
//                   tile) on the device): gate and up projections together
//                   with the activation in the epilogue, into f32 scratch
//                   [R, F]; then the down projection. Rows past offsets[E]
//                   (the unused part of the T * K bound) are zeroed; an
//                   expert without rows has no tile and reads no weight;
//   moe.grouped_matmul  the same register tiles;
//   bf16 rows and weights  both on tensor cores instead (TensorCoreTiles.cpp:
//                   mma.sync m16n8k16, one warp per 16 x 32 tile);
//   moe.combine     one thread per (token, h), summing the token's slots in
//                   slot order (deterministic, no atomics); the const
//                   experts' two mixing weights are computed first, one
//                   thread per slot.
//
//===----------------------------------------------------------------------===//

#include "DeviceEmitter.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Transforms/DialectConversion.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

namespace {
/// `w[expert, k, n]` of a weight stored [E, K, N] or, packed, in panels
/// [E, ceil(N/32), K, 32].
static Value loadWeight(LoopEmitter &e, Value w, bool packed, Value expert,
                        Value k, Value n) {
  if (!packed)
    return e.toF32(e.load(w, {expert, k, n}));
  Value width = e.index(kPanelColumns);
  Value panel = arith::DivUIOp::create(e.b, n, width);
  Value column = arith::RemUIOp::create(e.b, n, width);
  return e.toF32(e.load(w, {expert, panel, k, column}));
}

/// Rows at or past offsets[numGroups] of `out` [numRows, n] are zero.
static void emitZeroUnusedRows(DeviceEmitter &d, Value out, Value offsets,
                               Value numGroups, Value numRows, Value n) {
  LoopEmitter &e = d.e;
  Type type = cast<MemRefType>(out.getType()).getElementType();
  d.forAll2D(numRows, n, [&](Value r, Value c) {
    e.ifThen(e.cmpi(arith::CmpIPredicate::sge, r, e.load(offsets, numGroups)),
             [&] {
               e.store(e.floatConst(type, 0.0), out, {r, c});
             });
  });
}

struct GroupedMatmulToGPU : GPUPattern<GroupedMatmulOp> {
  using GPUPattern::GPUPattern;

  LogicalResult
  matchAndRewrite(GroupedMatmulOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LoopEmitter e(rewriter, op.getLoc());
    DeviceEmitter d(e, options, buffers);
    Value lhs = d.input(adaptor.getLhs());
    Value rhs = d.input(adaptor.getRhs());
    Value rawOffsets = d.input(adaptor.getOffsets());
    Value numRows = e.dim(lhs, 0);
    Value depth = e.dim(lhs, 1);
    Value numGroups = e.dim(rhs, 0);
    Value n = e.dim(rhs, 2);
    auto resultType = llvm::cast<RankedTensorType>(op.getOut().getType());
    Type outType = resultType.getElementType();
    SizeConstraints sizes;
    sizes.equal(e, lhs, 1, rhs, 1);
    sizes.equal(e, rawOffsets, 0, rhs, 0, 1);
    sizes.result(e, resultType, {numRows, n});
    Value out = d.allocRowsOf(lhs, resultType, {numRows, n});
    d.guarded(op, sizes, [&] {
      Value offsets = d.sanitizedOffsets(rawOffsets, numGroups, numRows);
      GroupedProducts tiles(offsets, numGroups, numRows, n, depth);
      tiles.a = [&](Value r, Value k) { return e.toF32(e.load(lhs, {r, k})); };
      tiles.b.push_back([&](Value g, Value k, Value c) {
        return e.toF32(e.load(rhs, {g, k, c}));
      });
      tiles.epilogue = [&](Value, Value r, Value c, ValueRange sums) {
        e.store(e.castFloat(sums[0], outType), out, {r, c});
      };
      Type lhsType = cast<MemRefType>(lhs.getType()).getElementType();
      Type rhsType = cast<MemRefType>(rhs.getType()).getElementType();
      tiles.operand = tensorCoreOperand(options, lhsType, rhsType);
      if (tiles.operand)
        emitTensorCoreTiles(d, {&tiles});
      else
        emitGroupedTiles(d, tiles);
      emitZeroUnusedRows(d, out, offsets, numGroups, numRows, n);
    });
    rewriter.replaceOp(op, e.toTensor(out, resultType));
    return success();
  }
};

struct ExpertFFNToGPU : GPUPattern<ExpertFFNOp> {
  using GPUPattern::GPUPattern;

  LogicalResult
  matchAndRewrite(ExpertFFNOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LoopEmitter e(rewriter, op.getLoc());
    DeviceEmitter d(e, options, buffers);
    ExpertFFNOperands o = fetchExpertFFNOperands(
        e, op, adaptor, [&](Value operand) { return d.input(operand); },
        [&](Value operand) { return d.input(operand); });
    bool gated = op.getGated();
    Activation activation = op.getActivation();
    auto resultType = llvm::cast<RankedTensorType>(op.getY().getType());
    Type rowType = resultType.getElementType();
    SizeConstraints sizes = expertFFNSizes(e, o);
    sizes.result(e, resultType, {o.numRows, o.hidden});
    Value out = d.allocRowsOf(o.rows, resultType, {o.numRows, o.hidden});
    Value scratch =
        d.alloc(e.b.getF32Type(), {ShapedType::kDynamic, ShapedType::kDynamic},
                {o.numRows, o.ffn});
    d.guarded(op, sizes, [&] {
      Value offsets = d.sanitizedOffsets(o.offsets, o.numExperts, o.numRows);
      // Up (and gate) projections and the activation, into the scratch,
      // then the down projection: on tensor cores for bf16 weights and bf16
      // rows (or f32 rows rounded to bf16, with bf16-rows), else in SIMT
      // register tiles (same operands and epilogues).
      Type weightType = cast<MemRefType>(o.wUp.getType()).getElementType();
      Type operand =
          o.quant ? Type() : tensorCoreOperand(options, rowType, weightType);
      bool tensorCores = static_cast<bool>(operand);
      // The type the FFN's intermediates are rounded to: the rows' (the
      // op's semantics), or bf16 for f32 rows on tensor cores (bf16-rows:
      // the layer computed as with bf16 rows, its output kept in f32).
      Type intermediate = tensorCores ? operand : rowType;
      // Rounds an f32 value to that type and back (identity for f32).
      auto round = [&](Value v) {
        Value narrow = e.castFloat(v, intermediate);
        return e.toF32(narrow);
      };
      auto setUp = [&](GroupedProducts &up) {
        up.a = [&](Value r, Value h) { return round(e.load(o.rows, {r, h})); };
        if (gated)
          up.b.push_back([&](Value g, Value h, Value f) {
            return loadWeight(e, o.wGate, o.packed, g, h, f);
          });
        up.b.push_back([&](Value g, Value h, Value f) {
          return loadWeight(e, o.wUp, o.packed, g, h, f);
        });
        if (!gated && o.bUp)
          up.init.push_back([&](Value g, Value f) {
            return e.toF32(e.load(o.bUp, {g, f}));
          });
        up.epilogue = [&](Value, Value r, Value f, ValueRange sums) {
          Value value;
          if (gated) {
            Value a = round(emitActivation(e, activation, round(sums[0])));
            value = round(e.mul(a, round(sums[1])));
          } else {
            value = round(emitActivation(e, activation, round(sums[0])));
          }
          e.store(value, scratch, {r, f});
        };
      };
      auto setDown = [&](GroupedProducts &down) {
        down.a = [&](Value r, Value f) { return e.load(scratch, {r, f}); };
        down.b.push_back([&](Value g, Value f, Value h) {
          return loadWeight(e, o.wDown, o.packed, g, f, h);
        });
        if (o.bDown)
          down.init.push_back([&](Value g, Value h) {
            return e.toF32(e.load(o.bDown, {g, h}));
          });
        down.epilogue = [&](Value, Value r, Value h, ValueRange sums) {
          e.store(e.castFloat(sums[0], rowType), out, {r, h});
        };
      };
      GroupedProducts up(offsets, o.numExperts, o.numRows, o.ffn, o.hidden);
      up.operand = operand;
      setUp(up);
      GroupedProducts down(offsets, o.numExperts, o.numRows, o.hidden, o.ffn);
      down.operand = operand;
      setDown(down);
      // One tile schedule (and, on tensor cores, one choice of kernel)
      // serves both projections (same rows).
      if (tensorCores) {
        emitTensorCoreTiles(d, {&up, &down});
      } else {
        Value tileStart = emitTileSchedule(d, offsets, o.numExperts,
                                           GroupedTiles::kTileRows);
        up.tileStart = tileStart;
        down.tileStart = tileStart;
        emitGroupedTiles(d, up);
        emitGroupedTiles(d, down);
      }
      emitZeroUnusedRows(d, out, offsets, o.numExperts, o.numRows, o.hidden);
    });
    rewriter.replaceOp(op, e.toTensor(out, resultType));
    return success();
  }
};

struct CombineToGPU : GPUPattern<CombineOp> {
  using GPUPattern::GPUPattern;

  LogicalResult
  matchAndRewrite(CombineOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LoopEmitter e(rewriter, op.getLoc());
    DeviceEmitter d(e, options, buffers);
    CombineOperands ops = fetchCombineOperands(
        e, op, adaptor, [&](Value operand) { return d.input(operand); });
    ExpertSpaceAttr experts = op.getExperts();
    auto resultType = llvm::cast<RankedTensorType>(op.getOut().getType());
    Type outType = resultType.getElementType();
    SizeConstraints sizes = combineSizes(e, ops);
    sizes.result(e, resultType, {ops.numTokens, ops.hidden});
    Value out = d.alloc(resultType, {ops.numTokens, ops.hidden});
    // [a1, a2] of each const slot.
    Value mix = ops.numConst > 0
                    ? d.alloc(e.b.getF32Type(),
                              {ShapedType::kDynamic, ShapedType::kDynamic, 2},
                              {ops.numTokens, ops.k})
                    : Value();
    d.guarded(op, sizes, [&] {
      if (ops.numConst > 0)
        d.forAll2D(ops.numTokens, ops.k, [&](Value t, Value j) {
          CombineSlot slot = emitCombineSlot(e, ops, experts, t, j);
          e.ifThen(slot.isConst, [&] {
            std::pair<Value, Value> a =
                emitConstMix(e, ops, t, slot.constIndex);
            e.store(a.first, mix, {t, j, e.index(0)});
            e.store(a.second, mix, {t, j, e.index(1)});
          });
        });
      d.forAll2D(ops.numTokens, ops.hidden, [&](Value t, Value h) {
        Value xv = e.toF32(e.load(ops.x, {t, h}));
        Value zeroIndex = e.index(0);
        Value zeroF = e.f32(0.0f);
        Value sum = e.loop(
            zeroIndex, ops.k, ValueRange{zeroF}, [&](Value j, ValueRange acc) {
              CombineSlot slot = emitCombineSlot(e, ops, experts, t, j);
              // Only the slots that contribute read their weight (a NaN
              // weight of a skipped slot does not propagate).
              auto ifOp = scf::IfOp::create(e.b, TypeRange{e.b.getF32Type()},
                                            slot.isCompute, true);
              OpBuilder::InsertionGuard guard(e.b);
              e.b.setInsertionPointToStart(ifOp.thenBlock());
              Value w = e.load(ops.weights, {t, j});
              Value safeRow = e.toIndex(slot.row);
              scf::YieldOp::create(
                  e.b,
                  ValueRange{e.add(
                      acc[0], e.mul(w, e.toF32(e.load(ops.y, {safeRow, h}))))});
              e.b.setInsertionPointToStart(ifOp.elseBlock());
              Value next = acc[0];
              if (slot.isCopy || slot.isConst) {
                Value isOther = slot.isCopy && slot.isConst
                                    ? e.ori(slot.isCopy, slot.isConst)
                                    : (slot.isCopy ? slot.isCopy : slot.isConst);
                auto other = scf::IfOp::create(e.b, TypeRange{e.b.getF32Type()},
                                               isOther, true);
                e.b.setInsertionPointToStart(other.thenBlock());
                Value w = e.load(ops.weights, {t, j});
                Value value = xv;
                if (slot.isConst) {
                  Value c = slot.constIndex;
                  auto constIf = scf::IfOp::create(
                      e.b, TypeRange{e.b.getF32Type()}, slot.isConst, true);
                  e.b.setInsertionPointToStart(constIf.thenBlock());
                  Value a1 = e.load(mix, {t, j, e.index(0)});
                  Value a2 = e.load(mix, {t, j, e.index(1)});
                  Value v = e.toF32(e.load(ops.constValues, {c, h}));
                  Value fromX = e.mul(a1, xv);
                  Value fromV = e.mul(a2, v);
                  scf::YieldOp::create(e.b, ValueRange{e.add(fromX, fromV)});
                  e.b.setInsertionPointToStart(constIf.elseBlock());
                  scf::YieldOp::create(e.b, ValueRange{xv});
                  e.b.setInsertionPointAfter(constIf);
                  value = constIf.getResult(0);
                }
                scf::YieldOp::create(
                    e.b, ValueRange{e.add(acc[0], e.mul(w, value))});
                e.b.setInsertionPointToStart(other.elseBlock());
                scf::YieldOp::create(e.b, ValueRange{acc[0]});
                e.b.setInsertionPointAfter(other);
                next = other.getResult(0);
              }
              scf::YieldOp::create(e.b, ValueRange{next});
              return SmallVector<Value>(ifOp.getResults());
            })[0];
        e.store(e.castFloat(sum, outType), out, {t, h});
      });
    });
    rewriter.replaceOp(op, e.toTensor(out, resultType));
    return success();
  }
};
} // namespace

void mlir::moe::detail::populateExpertsToGPU(RewritePatternSet &patterns,
                                             const MoEToGPUOptions &options,
                                             MoEDeviceBuffers &buffers) {
  patterns.add<GroupedMatmulToGPU, ExpertFFNToGPU, CombineToGPU>(
      patterns.getContext(), options, buffers);
}
