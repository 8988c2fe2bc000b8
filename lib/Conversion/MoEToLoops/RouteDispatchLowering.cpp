//===- RouteDispatchLowering.cpp - moe.route_dispatch to loops --*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Fused gating, routing and dispatch. The tokens are walked in tiles:
//
//   for each tile of `tile` tokens:
//     logits[tile, S] = x[tile] @ w (+ b)          (a tile-sized buffer)
//     for each token of the tile: route it (RoutingKernels.h, the same kernel
//       as moe.route), normalise its weights, count its compute slots
//   exclusive scan of the counts, scatter of the rows (DispatchKernel)
//
// The [T, S] logits of the unfused path are never materialised. The router
// matmul is moe.gate's kernel (MatmulKernel.cpp), whose values do not depend
// on the blocking, so fused and unfused code compute identical results.
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

#include "moe/Dialect/MoE/Utils/RoutingKernels.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

FailureOr<SmallVector<Value>>
mlir::moe::detail::emitLoops(LoopEmitter &e, RouteDispatchOp op,
                             RouteDispatchOp::Adaptor adaptor,
                             const MoEToLoopsOptions &options) {
  RoutingConfig config = op.getRoutingConfig();
  if (failed(checkStrategyLowered(op, config.strategy, "moe-to-loops")))
    return failure();
  RouteDispatchOperands operands = fetchRouteDispatchOperands(
      adaptor, [&](Value v) { return e.buffer(v); },
      [&](Value v) { return e.unitStrideBuffer(v); });
  Value x = operands.x;
  Value w = operands.wRouter;
  Value bias = operands.bRouter;
  int64_t width = config.experts.getNumExperts();
  int64_t tile = op.getTileAttr().getInt();
  auto types = llvm::map_to_vector(op->getResultTypes(), [](Type type) {
    return llvm::cast<RankedTensorType>(type);
  });
  SizeConstraints sizes = routeDispatchSizes(e, op, operands);
  SmallVector<Type> bufferTypes = llvm::map_to_vector(
      types, [](RankedTensorType t) -> Type { return getBufferType(t); });
  SmallVector<Value> results =
      emitGuarded(e, op, sizes, bufferTypes, [&]() -> SmallVector<Value> {
        Value zero = e.index(0);
        Value numTokens = e.dim(x, 0);
        Value hidden = e.dim(x, 1);
        Value widthV = e.index(width);
        Value tileV = e.index(tile);

        RouteEmitter route(e, config, /*logits=*/Value(), operands.kPerToken,
                           operands.selectionBias);
        route.numTokens = numTokens;
        route.width = widthV;
        route.k = e.index(config.k);
        route.ids = e.allocShaped(types[0], {numTokens, route.k});
        route.weights = e.allocShaped(types[1], {numTokens, route.k});
        route.emitPrepare();
        DispatchKernel dispatch(e, route.ids, numTokens, route.k,
                                config.experts.getCompute());
        dispatch.emitInit();

        // At most T rows: a tile larger than the batch allocates no more
        // than the unfused logits would.
        Value logits = e.alloc(e.b.getF32Type(), {ShapedType::kDynamic, width},
                               e.minSI(tileV, numTokens));
        Value tiles = arith::CeilDivUIOp::create(e.b, numTokens, tileV);
        e.loop(zero, tiles, [&](Value tileIndex) {
          Value begin = e.mul(tileIndex, tileV);
          Value end = e.minSI(e.add(begin, tileV), numTokens);
          // The router matmul of the tile: moe.gate's kernel, so the
          // values are the same bit for bit.
          RowMatmul matmul;
          matmul.a = x;
          matmul.b = w;
          matmul.c = logits;
          matmul.bias = bias;
          matmul.rowBegin = begin;
          matmul.rowEnd = end;
          matmul.depth = hidden;
          matmul.n = widthV;
          matmul.rowOfC = [&](Value t) { return e.sub(t, begin); };
          matmul.schedule = getMatmulSchedule(op, getMatmulShape(matmul));
          emitRowMatmul(e, matmul);
          // Route, normalise and count each token of the tile.
          route.logitAt = [&](Value t, Value i) {
            return e.load(logits, {e.sub(t, begin), i});
          };
          e.loop(begin, end, [&](Value t) {
            route.emitToken(t);
            route.emitNormalizeToken(t);
            dispatch.emitCountToken(t);
          });
        });
        SmallVector<Value> dispatched =
            dispatch.emitScanAndScatter(x, types[2], types[3], types[4]);
        return {route.ids, route.weights, dispatched[0], dispatched[1],
                dispatched[2]};
      });
  return results;
}
