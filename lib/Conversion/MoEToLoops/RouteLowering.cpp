//===- RouteLowering.cpp - moe.route to loops -------------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// moe.route: the routing kernel (RouteKernel.h) over the logits buffer.
//
//===----------------------------------------------------------------------===//

#include "RouteKernel.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;
FailureOr<SmallVector<Value>>
mlir::moe::detail::emitLoops(LoopEmitter &e, RouteOp op,
                             RouteOp::Adaptor adaptor,
                             const MoEToLoopsOptions &options) {
  RoutingConfig config = op.getRoutingConfig();
  if (failed(checkStrategyLowered(op, config.strategy, "moe-to-loops")))
    return failure();
  Value logits = e.buffer(adaptor.getLogits());
  Value kPerToken =
      adaptor.getKPerToken() ? e.buffer(adaptor.getKPerToken()) : Value();
  Value bias = adaptor.getSelectionBias() ? e.buffer(adaptor.getSelectionBias())
                                          : Value();
  RouteEmitter route(e, config, logits, kPerToken, bias);
  route.numTokens = e.dim(logits, 0);
  route.width = e.index(config.experts.getNumExperts());
  route.k = e.index(config.k);
  auto idsType = llvm::cast<RankedTensorType>(op.getIds().getType());
  auto weightsType = llvm::cast<RankedTensorType>(op.getWeights().getType());
  SizeConstraints sizes;
  sizes.equal(e, logits, 1, config.experts.getNumExperts());
  if (kPerToken)
    sizes.equal(e, kPerToken, 0, logits, 0);
  if (bias)
    sizes.equal(e, bias, 0, config.experts.getNumExperts());
  sizes.result(e, idsType, {route.numTokens, route.k});
  sizes.result(e, weightsType, {route.numTokens, route.k});
  SmallVector<Value> results = emitGuarded(
      e, op, sizes, {getBufferType(idsType), getBufferType(weightsType)},
      [&]() -> SmallVector<Value> {
        route.ids = e.allocShaped(idsType, {route.numTokens, route.k});
        route.weights = e.allocShaped(weightsType, {route.numTokens, route.k});
        if (auto expertChoice =
                llvm::dyn_cast<ExpertChoiceAttr>(config.strategy)) {
          route.emitExpertChoice(
              expertChoice.getCapacityFactor().convertToDouble());
        } else {
          route.emitPerTokenSelection();
          if (config.capacity)
            route.emitCapacity(config.capacity);
        }
        route.emitNormalize();
        return {route.ids, route.weights};
      });
  return results;
}
