//===- RoutingToGPU.cpp - gate, route, dispatch, aux_loss kernels -*- C++
//-*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The routing half of a layer on the device, correctness first:
//
//   moe.gate      one thread per logit (t, s): a dot product over H in f32;
//   moe.route     one thread per token running the shared routing
//                 kernel (RoutingKernels.h: scores, selection, count, empty
//                 slots, normalisation) with per-thread scratch; the
//                 cross-token steps (capacity limits, expert choice) run
//                 the same kernel's sequential code on one device thread
//                 (correct, slow), their buffers allocated on the host;
//   moe.dispatch  a deterministic counting sort over chunks of 256 slots,
//                 each slot read once per pass: one thread per chunk
//                 counts its slots per expert, one thread per expert scans
//                 its chunks, one thread scans the E totals, one thread
//                 per chunk gives its slots consecutive rows in (token,
//                 slot) order, one thread per element copies the rows. The
//                 row
//                 count stays on the device: the rows of a dynamic-R
//                 dispatch are allocated for T * K rows;
//   moe.aux_loss  one thread per expert, then one thread for the sum.
//
//===----------------------------------------------------------------------===//

#include "DeviceEmitter.h"

#include "moe/Dialect/MoE/Utils/RoutingKernels.h"

#include "mlir/Transforms/DialectConversion.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

/// Slots per chunk of the dispatch's counting sort.
static constexpr int64_t kChunkSlots = 256;

/// Logit (t, s) of moe.gate: bias[s] + sum over h in order of x[t, h] *
/// w[h, s], in f32. The gate kernel and the fused gating of
/// moe.route_dispatch both use it, so their logits are the same bits.
static Value emitLogit(LoopEmitter &e, Value x, Value w, Value bias,
                       Value hidden, Value t, Value s) {
  Value init = bias ? e.toF32(e.load(bias, s)) : e.f32(0.0f);
  Value zero = e.index(0);
  return e.loop(zero, hidden, init, [&](Value h, ValueRange acc) {
    Value xv = e.toF32(e.load(x, {t, h}));
    Value wv = e.toF32(e.load(w, {h, s}));
    Value product = e.mul(xv, wv);
    return SmallVector<Value>{e.add(acc[0], product)};
  })[0];
}

namespace {
struct GateToGPU : GPUPattern<GateOp> {
  using GPUPattern::GPUPattern;

  LogicalResult
  matchAndRewrite(GateOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LoopEmitter e(rewriter, op.getLoc());
    DeviceEmitter d(e, options, buffers);
    Value x = d.input(adaptor.getX());
    Value w = d.input(adaptor.getW());
    Value bias = adaptor.getBias() ? d.input(adaptor.getBias()) : Value();
    Value numTokens = e.dim(x, 0);
    Value hidden = e.dim(x, 1);
    Value width = e.dim(w, 1);
    auto resultType = llvm::cast<RankedTensorType>(op.getLogits().getType());
    SizeConstraints sizes;
    sizes.equal(e, x, 1, w, 0);
    if (bias)
      sizes.equal(e, bias, 0, w, 1);
    sizes.result(e, resultType, {numTokens, width});
    Value logits = d.alloc(resultType, {numTokens, width});
    d.guarded(op, sizes, [&] {
      d.forAll2D(numTokens, width, [&](Value t, Value s) {
        e.store(emitLogit(e, x, w, bias, hidden, t, s), logits, {t, s});
      });
    });
    rewriter.replaceOp(op, e.toTensor(logits, resultType));
    return success();
  }
};

/// Step 7 in parallel phases (RouteEmitter::emitChunkCount and what
/// follows), a kernel each: over (chunk, compute expert), compute experts,
/// tokens, (chunk, compute expert) and tokens; score priority adds one
/// thread for the list starts and a kernel over (chunk, expert).
static void emitParallelCapacity(DeviceEmitter &d, RouteEmitter &route,
                                 function_ref<void()> constants) {
  LoopEmitter &e = d.e;
  const RoutingConfig &config = route.getConfig();
  bool position = config.capacity.getPriority() == CapacityPriority::position;
  int64_t numCompute = config.experts.getCompute();
  Type indexType = e.b.getIndexType();
  Value computeExperts = e.index(numCompute);
  Value slots = e.mul(route.numTokens, e.index(config.k));
  Value chunkSize = e.index(RouteEmitter::kCapacityChunk);
  Value numChunks = arith::CeilDivUIOp::create(e.b, slots, chunkSize);
  Value countRows = e.add(numChunks, e.index(1));
  Value counts =
      d.alloc(indexType, {ShapedType::kDynamic, numCompute}, countRows);
  Value dropped = d.alloc(e.b.getI1Type(), {ShapedType::kDynamic, config.k},
                          route.numTokens);
  d.forAll2D(numChunks, computeExperts, [&](Value chunk, Value expert) {
    constants();
    route.emitChunkCount(chunk, expert, counts, /*slotMajor=*/position);
  });
  d.forAll(computeExperts, [&](Value expert) {
    constants();
    route.emitChunkScan(expert, counts, numChunks);
  });
  d.forAll(route.numTokens, [&](Value t) {
    constants();
    route.emitClearDropped(t, dropped);
  });
  if (position) {
    d.forAll2D(numChunks, computeExperts, [&](Value chunk, Value expert) {
      constants();
      Value capacity = route.emitCapacityLimit(config.capacity);
      route.emitPositionDrop(chunk, expert, counts, capacity, dropped);
    });
  } else {
    Value starts = d.alloc(indexType, {numCompute});
    Value list = d.alloc(indexType, {ShapedType::kDynamic}, slots);
    d.single([&] {
      constants();
      route.emitListStarts(counts, numChunks, starts);
    });
    d.forAll2D(numChunks, computeExperts, [&](Value chunk, Value expert) {
      constants();
      route.emitScatterSlots(chunk, expert, counts, starts, list);
    });
    d.forAll(computeExperts, [&](Value expert) {
      constants();
      Value capacity = route.emitCapacityLimit(config.capacity);
      Value histogram = e.alloc(indexType, {256});
      route.emitScoreDrop(expert, counts, numChunks, starts, list, capacity,
                          dropped, histogram);
    });
  }
  d.forAll(route.numTokens, [&](Value t) {
    constants();
    route.emitCompactToken(t, dropped);
  });
}

/// The routing kernels of `route` (ids and raw, then normalised weights).
/// `tokenLogits(t)`, when given, runs first in every per-token kernel that
/// reads logits and points `route.logitAt` at token t's logits (the fused
/// gating of moe.route_dispatch).
static void emitRouteKernels(DeviceEmitter &d, RouteEmitter &route,
                             function_ref<void(Value)> tokenLogits) {
  LoopEmitter &e = d.e;
  const RoutingConfig &config = route.getConfig();
  auto constants = [&] {
    // Constants of a kernel are created inside it.
    route.width = e.index(config.experts.getNumExperts());
    route.k = e.index(config.k);
  };
  auto expertChoice = llvm::dyn_cast<ExpertChoiceAttr>(config.strategy);
  bool crossToken = expertChoice || config.capacity;
  if (expertChoice) {
    // Three kernels: every token's scores, one thread per expert
    // picking its tokens (a radix select over its column), one thread
    // per token gathering the experts that picked it.
    int64_t s = config.experts.getNumExperts();
    Value scores = d.alloc(e.b.getF32Type(),
                           {ShapedType::kDynamic, s}, route.numTokens);
    Value picked = d.alloc(e.b.getI1Type(),
                           {ShapedType::kDynamic, s}, route.numTokens);
    d.forAll(route.numTokens, [&](Value t) {
      constants();
      if (tokenLogits)
        tokenLogits(t);
      route.emitExpertChoiceScores(t, scores,
                                   route.allocExpertChoiceScratch());
    });
    double factor = expertChoice.getCapacityFactor().convertToDouble();
    d.forAll(e.index(s), [&](Value expert) {
      constants();
      Value capacity = route.emitExpertChoiceCapacity(factor);
      auto scratch = route.allocExpertChoiceScratch();
      route.emitExpertChoicePick(expert, scores, picked, capacity,
                                 scratch);
    });
    d.forAll(route.numTokens, [&](Value t) {
      constants();
      route.emitExpertChoiceToken(t, scores, picked,
                                  route.allocExpertChoiceScratch());
    });
  } else {
    d.forAll(route.numTokens, [&](Value t) {
      constants();
      if (tokenLogits)
        tokenLogits(t);
      route.emitPrepare();
      route.emitToken(t);
      if (!crossToken)
        route.emitNormalizeToken(t);
    });
    if (config.capacity)
      emitParallelCapacity(d, route, constants);
  }
  if (crossToken)
    d.forAll(route.numTokens, [&](Value t) {
      constants();
      route.emitNormalizeToken(t);
    });
}

struct RouteToGPU : GPUPattern<RouteOp> {
  using GPUPattern::GPUPattern;

  LogicalResult
  matchAndRewrite(RouteOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    RoutingConfig config = op.getRoutingConfig();
    if (failed(checkStrategyLowered(op, config.strategy, "moe-to-gpu")))
      return failure();
    LoopEmitter e(rewriter, op.getLoc());
    DeviceEmitter d(e, options, buffers);
    Value logits = d.input(adaptor.getLogits());
    Value kPerToken =
        adaptor.getKPerToken() ? d.input(adaptor.getKPerToken()) : Value();
    Value bias = adaptor.getSelectionBias()
                     ? d.input(adaptor.getSelectionBias())
                     : Value();
    RouteEmitter route(e, config, logits, kPerToken, bias);
    route.numTokens = e.dim(logits, 0);
    auto idsType = llvm::cast<RankedTensorType>(op.getIds().getType());
    auto weightsType = llvm::cast<RankedTensorType>(op.getWeights().getType());
    SizeConstraints sizes;
    sizes.equal(e, logits, 1, config.experts.getNumExperts());
    if (kPerToken)
      sizes.equal(e, kPerToken, 0, logits, 0);
    if (bias)
      sizes.equal(e, bias, 0, config.experts.getNumExperts());
    Value k = e.index(config.k);
    sizes.result(e, idsType, {route.numTokens, k});
    sizes.result(e, weightsType, {route.numTokens, k});
    route.ids = d.alloc(idsType, {route.numTokens, k});
    route.weights = d.alloc(weightsType, {route.numTokens, k});
    d.guarded(op, sizes, [&] { emitRouteKernels(d, route, nullptr); });
    rewriter.replaceOp(op, {e.toTensor(route.ids, idsType),
                            e.toTensor(route.weights, weightsType)});
    return success();
  }
};

/// The dispatch kernels of moe.dispatch: `rows` (`rowCapacity` of them:
/// T * K, or the padded form's R_max), `offsets` and `slotRows` from `x`
/// and `ids` ([T, K]; `numExperts` compute experts).
static void emitDispatchKernels(DeviceEmitter &d, Value x, Value ids,
                                int64_t numExperts, RankedTensorType rowsType,
                                Value rowCapacity, Value rows, Value offsets,
                                Value slotRows) {
  LoopEmitter &e = d.e;
  Value numTokens = e.dim(x, 0);
  Value hidden = e.dim(x, 1);
  Value k = e.dim(ids, 1);
  bool padded = !rowsType.isDynamicDim(0);
  Type indexType = e.b.getIndexType();
  Value numSlots = e.mul(numTokens, k);
  // The slots in (token, slot) order are cut into chunks of kChunkSlots;
  // counts[c][e] are expert e's compute slots in chunk c, then their first
  // row counted from the expert's first row, then (while assigning) the
  // next such row. Every step is parallel and reads each slot once: a
  // thread per chunk counts its slots, a thread per expert scans its
  // chunks, one thread scans the E expert totals, a thread per chunk gives
  // its slots their rows.
  Value chunk = e.index(kChunkSlots);
  Value numChunks = arith::CeilDivUIOp::create(e.b, numSlots, chunk);
  Value counts =
      d.alloc(indexType, {ShapedType::kDynamic, numExperts}, {numChunks});
  // An expert's total, then its first row.
  Value starts = d.alloc(indexType, {numExperts});
  Value rowToken = d.alloc(indexType, {ShapedType::kDynamic}, rowCapacity);
  Value numExpertsV = e.index(numExperts);
  Value computeEnd = e.i32(numExperts);
  // `body(t, j, id, isCompute)` for the slots of chunk c in order.
  auto forChunkSlots = [&](Value c,
                           function_ref<void(Value, Value, Value, Value)>
                               body) {
    Value begin = e.mul(c, chunk);
    Value next = e.add(begin, chunk);
    Value end = e.minSI(next, numSlots);
    e.loop(begin, end, [&](Value s) {
      Value t = arith::DivUIOp::create(e.b, s, k);
      Value j = arith::RemUIOp::create(e.b, s, k);
      Value id = e.load(ids, {t, j});
      Value zero = e.i32(0);
      Value compute = e.inRange(id, zero, computeEnd);
      body(t, j, id, compute);
    });
  };

  // Each chunk: its compute slots per expert, in one pass.
  d.forAll(numChunks, [&](Value c) {
    Value zero = e.index(0);
    e.loop(zero, numExpertsV, [&](Value expert) {
      Value none = e.index(0);
      e.store(none, counts, {c, expert});
    });
    forChunkSlots(c, [&](Value, Value, Value id, Value compute) {
      e.ifThen(compute, [&] {
        Value expert = e.toIndex(id);
        Value count = e.load(counts, {c, expert});
        Value one = e.index(1);
        Value more = e.add(count, one);
        e.store(more, counts, {c, expert});
      });
    });
  });
  // Each expert: the exclusive prefix of its counts over the chunks, and
  // its total.
  d.forAll(numExpertsV, [&](Value expert) {
    Value zero = e.index(0);
    Value total = e.loop(zero, numChunks, ValueRange{zero},
                         [&](Value c, ValueRange row) {
                           Value count = e.load(counts, {c, expert});
                           e.store(row[0], counts, {c, expert});
                           return SmallVector<Value>{e.add(row[0], count)};
                         })[0];
    e.store(total, starts, expert);
  });
  // The experts' first rows (expert-major) and the offsets. The padded
  // form clamps to R_max.
  d.single([&] {
    Value limit = padded ? e.index(rowsType.getDimSize(0)) : Value();
    Value zero = e.index(0);
    Value total = e.loop(zero, numExpertsV, ValueRange{zero},
                         [&](Value expert, ValueRange start) {
                           Value stored =
                               padded ? e.minSI(start[0], limit) : start[0];
                           e.store(e.toI32(stored), offsets, expert);
                           Value count = e.load(starts, expert);
                           e.store(start[0], starts, expert);
                           return SmallVector<Value>{e.add(start[0], count)};
                         })[0];
    Value end = padded ? e.minSI(total, limit) : total;
    e.store(e.toI32(end), offsets, numExpertsV);
  });
  // Each chunk gives its slots consecutive rows of their experts in
  // (token, slot) order; slots of null, empty or out-of-range ids (and,
  // padded, those past R_max) have no row.
  d.forAll(numChunks, [&](Value c) {
    Value limit = padded ? e.index(rowsType.getDimSize(0)) : Value();
    forChunkSlots(c, [&](Value t, Value j, Value id, Value compute) {
      e.ifThenElse(
          compute,
          [&] {
            Value expert = e.toIndex(id);
            Value local = e.load(counts, {c, expert});
            Value one = e.index(1);
            Value following = e.add(local, one);
            e.store(following, counts, {c, expert});
            Value first = e.load(starts, expert);
            Value row = e.add(first, local);
            Value fits = padded
                             ? e.cmpi(arith::CmpIPredicate::slt, row, limit)
                             : e.boolean(true);
            e.ifThenElse(
                fits,
                [&] {
                  e.store(e.toI32(row), slotRows, {t, j});
                  e.store(t, rowToken, row);
                },
                [&] { e.store(e.i32(-1), slotRows, {t, j}); });
          },
          [&] { e.store(e.i32(-1), slotRows, {t, j}); });
    });
  });
  // The rows; rows past the last one (padding, or the unused part of
  // the T * K bound) are zero.
  d.forAll2D(rowCapacity, hidden, [&](Value r, Value h) {
    Value used = e.toIndex(e.load(offsets, e.index(numExperts)));
    Type elementType = rowsType.getElementType();
    e.ifThenElse(
        e.cmpi(arith::CmpIPredicate::slt, r, used),
        [&] {
          Value t = e.load(rowToken, r);
          e.store(e.load(x, {t, h}), rows, {r, h});
        },
        [&] {
          e.store(e.floatConst(elementType, 0.0), rows, {r, h});
        });
  });
}

struct DispatchToGPU : GPUPattern<DispatchOp> {
  using GPUPattern::GPUPattern;

  LogicalResult
  matchAndRewrite(DispatchOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LoopEmitter e(rewriter, op.getLoc());
    DeviceEmitter d(e, options, buffers);
    Value x = d.input(adaptor.getX());
    Value ids = d.input(adaptor.getIds());
    auto rowsType = llvm::cast<RankedTensorType>(op.getRows().getType());
    auto offsetsType = llvm::cast<RankedTensorType>(op.getOffsets().getType());
    auto slotRowsType =
        llvm::cast<RankedTensorType>(op.getSlotRows().getType());
    int64_t numExperts = op.getNumExpertsAttr().getInt();
    Value numTokens = e.dim(x, 0);
    Value hidden = e.dim(x, 1);
    Value k = e.dim(ids, 1);
    SizeConstraints sizes;
    sizes.equal(e, ids, 0, x, 0);
    sizes.result(e, rowsType, {Value(), hidden});
    sizes.result(e, slotRowsType, {numTokens, k});

    bool padded = !rowsType.isDynamicDim(0);
    Value rowCapacity =
        padded ? e.index(rowsType.getDimSize(0)) : e.mul(numTokens, k);
    Value rows = d.alloc(rowsType, {rowCapacity, hidden});
    if (!padded)
      d.markRowsUpperBound(rows);
    Value offsets = d.alloc(offsetsType, {e.index(numExperts + 1)});
    Value slotRows = d.alloc(slotRowsType, {numTokens, k});
    d.guarded(op, sizes, [&] {
      emitDispatchKernels(d, x, ids, numExperts, rowsType, rowCapacity, rows,
                          offsets, slotRows);
    });
    rewriter.replaceOp(op, {e.toTensor(rows, rowsType),
                            e.toTensor(offsets, offsetsType),
                            e.toTensor(slotRows, slotRowsType)});
    return success();
  }
};

struct AuxLossToGPU : GPUPattern<AuxLossOp> {
  using GPUPattern::GPUPattern;

  LogicalResult
  matchAndRewrite(AuxLossOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LoopEmitter e(rewriter, op.getLoc());
    DeviceEmitter d(e, options, buffers);
    Value scores = d.input(adaptor.getScores());
    Value ids = d.input(adaptor.getIds());
    Value numTokens = e.dim(scores, 0);
    Value width = e.dim(scores, 1);
    Value k = e.dim(ids, 1);
    auto resultType = llvm::cast<RankedTensorType>(op.getLoss().getType());
    SizeConstraints sizes;
    sizes.equal(e, ids, 0, scores, 0);
    Type f64 = e.b.getF64Type();
    Value counts = d.alloc(e.b.getIndexType(), {ShapedType::kDynamic}, width);
    Value columns = d.alloc(f64, {ShapedType::kDynamic}, width);
    Value loss = d.alloc(resultType, {});
    auto toF64 = [&](Value index) {
      return arith::SIToFPOp::create(e.b, f64, e.toI64(index));
    };
    d.guarded(op, sizes, [&] {
      d.forAll(width, [&](Value i) {
        Value id = e.toI32(i);
        Value zero = e.index(0);
        Value count = e.loop(
            zero, numTokens, ValueRange{zero}, [&](Value t, ValueRange outer) {
              return e.loop(zero, k, outer, [&](Value j, ValueRange inner) {
                Value mine =
                    e.cmpi(arith::CmpIPredicate::eq, e.load(ids, {t, j}), id);
                return SmallVector<Value>{
                    e.add(inner[0], e.select(mine, e.index(1), zero))};
              });
            })[0];
        Value column =
            e.loop(zero, numTokens, ValueRange{e.f64(0.0)},
                   [&](Value t, ValueRange acc) {
                     Value s = e.castFloat(e.load(scores, {t, i}), f64);
                     return SmallVector<Value>{e.add(acc[0], s)};
                   })[0];
        e.store(count, counts, i);
        e.store(column, columns, i);
      });
      d.single([&] {
        Value zero = e.index(0);
        Value one = e.index(1);
        Value valid =
            e.loop(zero, width, ValueRange{zero}, [&](Value i, ValueRange acc) {
              return SmallVector<Value>{e.add(acc[0], e.load(counts, i))};
            })[0];
        Value validF = toF64(e.maxSI(valid, one));
        Value tokensF = toF64(e.maxSI(numTokens, one));
        Value total = e.loop(
            zero, width, ValueRange{e.f64(0.0)}, [&](Value i, ValueRange sum) {
              Value fraction = e.div(toF64(e.load(counts, i)), validF);
              Value mean = e.div(e.load(columns, i), tokensF);
              return SmallVector<Value>{e.add(sum[0], e.mul(fraction, mean))};
            })[0];
        e.store(e.toF32(e.mul(toF64(width), total)), loss, {});
      });
    });
    rewriter.replaceOp(op, e.toTensor(loss, resultType));
    return success();
  }
};

/// moe.route_dispatch: the router matmul fused into the routing kernels
/// (each token's thread computes its row of logits into per-thread scratch
/// and routes from it; no [T, S] logits buffer), then the dispatch kernels
/// on the ids. The logits are moe.gate's kernel's (same dot product in the
/// same order), so the result is the unfused GPU path's, bit for bit.
struct RouteDispatchToGPU : GPUPattern<RouteDispatchOp> {
  using GPUPattern::GPUPattern;

  LogicalResult
  matchAndRewrite(RouteDispatchOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    RoutingConfig config = op.getRoutingConfig();
    if (failed(checkStrategyLowered(op, config.strategy, "moe-to-gpu")))
      return failure();
    LoopEmitter e(rewriter, op.getLoc());
    DeviceEmitter d(e, options, buffers);
    auto fetch = [&](Value v) { return d.input(v); };
    RouteDispatchOperands operands =
        fetchRouteDispatchOperands(adaptor, fetch, fetch);
    Value x = operands.x;
    Value w = operands.wRouter;
    Value bias = operands.bRouter;
    int64_t width = config.experts.getNumExperts();
    auto types = llvm::map_to_vector(op->getResultTypes(), [](Type type) {
      return llvm::cast<RankedTensorType>(type);
    });
    SizeConstraints sizes = routeDispatchSizes(e, op, operands);
    Value numTokens = e.dim(x, 0);
    Value hidden = e.dim(x, 1);
    Value k = e.index(config.k);

    RouteEmitter route(e, config, /*logits=*/Value(), operands.kPerToken,
                       operands.selectionBias);
    route.numTokens = numTokens;
    route.ids = d.alloc(types[0], {numTokens, k});
    route.weights = d.alloc(types[1], {numTokens, k});
    RankedTensorType rowsType = types[2];
    bool padded = !rowsType.isDynamicDim(0);
    Value rowCapacity =
        padded ? e.index(rowsType.getDimSize(0)) : e.mul(numTokens, k);
    Value rows = d.alloc(rowsType, {rowCapacity, hidden});
    if (!padded)
      d.markRowsUpperBound(rows);
    int64_t numCompute = config.experts.getCompute();
    Value offsets = d.alloc(types[3], {e.index(numCompute + 1)});
    Value slotRows = d.alloc(types[4], {numTokens, k});
    // Token t's logits, as moe.gate's kernel computes them.
    auto tokenLogits = [&](Value t) {
      Value row = e.alloc(e.b.getF32Type(), {width});
      Value zero = e.index(0);
      Value widthV = e.index(width);
      e.loop(zero, widthV, [&](Value i) {
        e.store(emitLogit(e, x, w, bias, hidden, t, i), row, i);
      });
      route.logitAt = [&e, row](Value, Value i) { return e.load(row, i); };
    };
    d.guarded(op, sizes, [&] {
      emitRouteKernels(d, route, tokenLogits);
      emitDispatchKernels(d, x, route.ids, numCompute, rowsType, rowCapacity,
                          rows, offsets, slotRows);
    });
    rewriter.replaceOp(op, {e.toTensor(route.ids, types[0]),
                            e.toTensor(route.weights, types[1]),
                            e.toTensor(rows, types[2]),
                            e.toTensor(offsets, types[3]),
                            e.toTensor(slotRows, types[4])});
    return success();
  }
};
} // namespace

void mlir::moe::detail::populateRoutingToGPU(RewritePatternSet &patterns,
                                             const MoEToGPUOptions &options,
                                             MoEDeviceBuffers &buffers) {
  MLIRContext *context = patterns.getContext();
  patterns.add<GateToGPU, RouteToGPU, DispatchToGPU, RouteDispatchToGPU,
               AuxLossToGPU>(context, options, buffers);
}
