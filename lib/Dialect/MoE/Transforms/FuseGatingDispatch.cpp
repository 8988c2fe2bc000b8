//===- FuseGatingDispatch.cpp - gate + route + dispatch fusion --*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Dialect/MoE/Transforms/Transforms.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#define DEBUG_TYPE "moe-fuse-gating-dispatch"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEFUSEGATINGDISPATCHPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

/// gate -> route -> dispatch on the same tokens => route_dispatch.
struct FuseGatingDispatch : OpRewritePattern<DispatchOp> {
  FuseGatingDispatch(MLIRContext *context, int64_t tile)
      : OpRewritePattern(context), tile(tile) {}

  LogicalResult matchAndRewrite(DispatchOp dispatch,
                                PatternRewriter &rewriter) const override {
    auto route = dispatch.getIds().getDefiningOp<RouteOp>();
    if (!route || dispatch.getIds() != route.getIds())
      return rewriter.notifyMatchFailure(dispatch,
                                         "ids do not come from a route");
    // The logits may also be used for their shape (tensor.dim, e.g. to
    // size the route's destinations): those uses read the gate's
    // destination instead, which has the same type.
    auto gate = route.getLogits().getDefiningOp<GateOp>();
    auto isRouteOrShape = [&](OpOperand &use) {
      return use.getOwner() == route.getOperation() ||
             isa<tensor::DimOp>(use.getOwner());
    };
    if (!gate ||
        !llvm::hasSingleElement(llvm::make_filter_range(
            gate.getLogits().getUses(),
            [&](OpOperand &use) {
              return use.getOwner() == route.getOperation();
            })) ||
        !llvm::all_of(gate.getLogits().getUses(), isRouteOrShape))
      return rewriter.notifyMatchFailure(
          dispatch,
          "the logits do not come from a gate used only by the route");
    if (gate.getX() != dispatch.getX())
      return rewriter.notifyMatchFailure(
          dispatch, "the dispatch does not dispatch the gate's input");
    if (dispatch.getNumExpertsAttr().getInt() !=
        route.getExperts().getCompute())
      return rewriter.notifyMatchFailure(
          dispatch, "the dispatch is not over the route's compute experts");
    if (route.getStrategy().dependsOnAllTokens() || route.getCapacityAttr())
      return rewriter.notifyMatchFailure(
          dispatch, "the routing needs every token before deciding");

    rewriter.setInsertionPoint(route);
    auto fused = RouteDispatchOp::create(
        rewriter,
        rewriter.getFusedLoc(
            {gate.getLoc(), route.getLoc(), dispatch.getLoc()}),
        route.getIds().getType(), route.getWeights().getType(),
        dispatch.getRows().getType(), dispatch.getOffsets().getType(),
        dispatch.getSlotRows().getType(), gate.getX(), gate.getW(),
        gate.getBias(), route.getKPerToken(), route.getSelectionBias(),
        route.getExpertsAttr(), route.getKAttr(), route.getScoringAttr(),
        route.getStrategy(), route.getNormalizeAttr(), route.getScaleAttr(),
        route.getCapacityAttr(), route.getGroupsAttr(),
        rewriter.getI64IntegerAttr(tile));
    rewriter.replaceOp(
        dispatch, {fused.getRows(), fused.getOffsets(), fused.getSlotRows()});
    rewriter.replaceOp(route, {fused.getIds(), fused.getWeights()});
    for (OpOperand &use :
         llvm::make_early_inc_range(gate.getLogits().getUses()))
      rewriter.modifyOpInPlace(use.getOwner(),
                               [&] { use.assign(gate.getInit()); });
    rewriter.eraseOp(gate);
    return success();
  }

  int64_t tile;
};

struct MoEFuseGatingDispatchPass
    : moe::impl::MoEFuseGatingDispatchPassBase<MoEFuseGatingDispatchPass> {
  using Base::Base;

  void runOnOperation() override {
    if (tile < 1 || tile > kMaxRouteDispatchTile) {
      getOperation()->emitError()
          << "moe-fuse-gating-dispatch: option 'tile' expects 1 <= tile <= "
          << kMaxRouteDispatchTile << " tokens, got "
          << static_cast<int64_t>(tile);
      return signalPassFailure();
    }
    RewritePatternSet patterns(&getContext());
    populateFuseGatingDispatchPatterns(patterns, tile);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace

void mlir::moe::populateFuseGatingDispatchPatterns(RewritePatternSet &patterns,
                                                   int64_t tile) {
  patterns.add<FuseGatingDispatch>(patterns.getContext(), tile);
}
