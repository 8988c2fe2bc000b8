//===- RouteLowering.cpp - moe.route to loops -------------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// moe.route: the routing kernel (moe/Dialect/MoE/Utils/RoutingKernels.h) over
// the logits buffer.
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

#include "moe/Dialect/MoE/Utils/RoutingKernels.h"

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
  Destination ids = emitDestination(e, adaptor.getIdsInit(),
                                    /*readsInit=*/false, /*unitStride=*/false);
  Destination weights =
      emitDestination(e, adaptor.getWeightsInit(), /*readsInit=*/false,
                      /*unitStride=*/false);
  route.ids = ids.buffer;
  route.weights = weights.buffer;
  SizeConstraints sizes;
  sizes.equal(e, logits, 1, config.experts.getNumExperts());
  if (kPerToken)
    sizes.equal(e, kPerToken, 0, logits, 0);
  if (bias)
    sizes.equal(e, bias, 0, config.experts.getNumExperts());
  for (Value destination : {route.ids, route.weights}) {
    sizes.equal(e, destination, 0, logits, 0);
    sizes.equal(e, destination, 1, config.k);
  }
  emitGuardedInto(e, op, sizes, {route.ids, route.weights}, [&] {
    if (auto expertChoice = llvm::dyn_cast<ExpertChoiceAttr>(config.strategy)) {
      route.emitExpertChoice(
          expertChoice.getCapacityFactor().convertToDouble());
    } else {
      route.emitPerTokenSelection();
      if (config.capacity)
        route.emitCapacity(config.capacity);
    }
    route.emitNormalize();
  });
  return SmallVector<Value>{finishDestination(e, ids),
                            finishDestination(e, weights)};
}
