//===- DecomposeLayer.cpp - Expand moe.layer into its parts -----*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Dialect/MoE/Transforms/Transforms.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#define DEBUG_TYPE "moe-decompose-layer"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEDECOMPOSELAYERPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

/// A new destination of type `type`: a tensor.empty whose dynamic sizes are
/// those of dimension `dims[d].second` of `dims[d].first`.
Value emptyTensor(OpBuilder &b, Location loc, RankedTensorType type,
                  ArrayRef<std::pair<Value, int64_t>> dims) {
  SmallVector<Value> sizes;
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (type.isDynamicDim(d))
      sizes.push_back(
          tensor::DimOp::create(b, loc, dims[d].first, dims[d].second));
  return tensor::EmptyOp::create(b, loc, type, sizes);
}

/// layer -> gate, route, dispatch, expert_ffn, combine.
struct DecomposeLayer : OpRewritePattern<LayerOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LayerOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto xType = llvm::cast<RankedTensorType>(op.getX().getType());
    int64_t numTokens = xType.getDimSize(0);
    int64_t hidden = xType.getDimSize(1);
    Type rowType = xType.getElementType();
    ExpertSpaceAttr experts = op.getExperts();
    int64_t numCompute = experts.getCompute();
    int64_t k = op.getKAttr().getInt();
    Type f32 = rewriter.getF32Type();
    Type i32 = rewriter.getI32Type();

    auto logitsType =
        RankedTensorType::get({numTokens, experts.getNumExperts()}, f32);
    Value logitsInit = emptyTensor(rewriter, loc, logitsType,
                                   {{op.getX(), 0}, {op.getWRouter(), 1}});
    Value logits = GateOp::create(rewriter, loc, logitsType, op.getX(),
                                  op.getWRouter(), op.getBRouter(), logitsInit);

    auto slotType = [&](Type element) {
      return RankedTensorType::get({numTokens, k}, element);
    };
    Value idsInit =
        emptyTensor(rewriter, loc, slotType(i32), {{op.getX(), 0}, {}});
    Value weightsInit =
        emptyTensor(rewriter, loc, slotType(f32), {{op.getX(), 0}, {}});
    auto route = RouteOp::create(
        rewriter, loc, slotType(i32), slotType(f32), logits, op.getKPerToken(),
        op.getSelectionBias(), idsInit, weightsInit, op.getExpertsAttr(),
        op.getKAttr(), op.getScoringAttr(), op.getStrategy(),
        op.getNormalizeAttr(), op.getScaleAttr(), op.getCapacityAttr(),
        op.getGroupsAttr());

    auto rowsType =
        RankedTensorType::get({ShapedType::kDynamic, hidden}, rowType);
    auto dispatch = DispatchOp::create(
        rewriter, loc, rowsType, RankedTensorType::get({numCompute + 1}, i32),
        slotType(i32), op.getX(), route.getIds(),
        rewriter.getI64IntegerAttr(numCompute));

    Value rows = dispatch.getRows();
    Value yInit = emptyTensor(rewriter, loc, rowsType, {{rows, 0}, {rows, 1}});
    Value y = ExpertFFNOp::create(
        rewriter, loc, rowsType, rows, dispatch.getOffsets(), op.getWUp(),
        op.getWGate(), op.getWDown(), op.getBUp(), op.getBDown(), yInit,
        op.getActivationAttr(), op.getGatedAttr(), op.getPackedAttr(),
        op.getQuantAttr());

    auto outType = llvm::cast<RankedTensorType>(op.getY().getType());
    Value out =
        emptyTensor(rewriter, loc, outType, {{op.getX(), 0}, {op.getX(), 1}});
    rewriter.replaceOpWithNewOp<CombineOp>(
        op, outType, y, dispatch.getSlotRows(), route.getIds(),
        route.getWeights(), op.getX(), op.getConstProj(), op.getConstValues(),
        out, op.getExpertsAttr());
    return success();
  }
};

struct MoEDecomposeLayerPass
    : moe::impl::MoEDecomposeLayerPassBase<MoEDecomposeLayerPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateDecomposeLayerPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace

void mlir::moe::populateDecomposeLayerPatterns(RewritePatternSet &patterns) {
  patterns.add<DecomposeLayer>(patterns.getContext());
}
