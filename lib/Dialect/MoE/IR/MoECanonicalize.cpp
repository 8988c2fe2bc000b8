//===- MoECanonicalize.cpp - Canonicalization of routing ops ----*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Rewrites of moe.route and moe.layer to simpler routing configurations that
// are exact under the semantics contract for every input (NaN rows, empty
// slots and scale included). The conditions are documented in the ops'
// descriptions; test/Dialect/MoE/canonicalize.mlir checks each rewrite and
// each near miss, and the Python tests execute the rewritten configurations
// on NaN inputs against the reference of the original one.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

/// top_p<p = 1>, top_p with K = 1, and threshold<k_min = K> route every
/// token to exactly K slots: they are top_k.
template <typename OpT> struct StrategyToTopK : OpRewritePattern<OpT> {
  using OpRewritePattern<OpT>::OpRewritePattern;

  LogicalResult matchAndRewrite(OpT op,
                                PatternRewriter &rewriter) const override {
    RoutingStrategyAttrInterface strategy = op.getStrategy();
    int64_t k = op.getKAttr().getInt();
    bool alwaysK = false;
    if (auto topP = llvm::dyn_cast<TopPAttr>(strategy))
      alwaysK = topP.getP().convertToFloat() == 1.0f || k == 1;
    else if (auto threshold = llvm::dyn_cast<ThresholdAttr>(strategy))
      alwaysK = threshold.getKMin() == k;
    if (!alwaysK)
      return rewriter.notifyMatchFailure(op,
                                         "the strategy can give fewer than K");
    rewriter.modifyOpInPlace(
        op, [&] { op.setStrategyAttr(TopKAttr::get(op.getContext())); });
    return success();
  }
};

/// dynamic_k with a constant k_per_token whose values are all >= K is top_k
/// (clamp(k, 0, K) = K); the operand goes away.
template <typename OpT> struct ConstantDynamicKToTopK : OpRewritePattern<OpT> {
  using OpRewritePattern<OpT>::OpRewritePattern;

  LogicalResult matchAndRewrite(OpT op,
                                PatternRewriter &rewriter) const override {
    if (!llvm::isa<DynamicKAttr>(op.getStrategy()))
      return failure();
    DenseIntElementsAttr counts;
    if (!op.getKPerToken() ||
        !matchPattern(op.getKPerToken(), m_Constant(&counts)))
      return rewriter.notifyMatchFailure(op, "k_per_token is not a constant");
    int64_t k = op.getKAttr().getInt();
    if (llvm::any_of(counts.getValues<APInt>(),
                     [&](const APInt &v) { return v.getSExtValue() < k; }))
      return rewriter.notifyMatchFailure(op,
                                         "some token asks for fewer than K");
    rewriter.modifyOpInPlace(op, [&] {
      op.setStrategyAttr(TopKAttr::get(op.getContext()));
      op.getKPerTokenMutable().clear();
    });
    return success();
  }
};

/// The number of tokens when it is static.
static std::optional<int64_t> staticTokens(Value tokens) {
  auto type = llvm::cast<RankedTensorType>(tokens.getType());
  if (type.isDynamicDim(0))
    return std::nullopt;
  return type.getDimSize(0);
}

/// A capacity C = ceil(cf * T * K / E) >= T never drops a slot: a compute
/// expert receives at most one slot per token.
template <typename OpT> struct DropNonBindingCapacity : OpRewritePattern<OpT> {
  DropNonBindingCapacity(MLIRContext *context, Value (*tokensOf)(OpT))
      : OpRewritePattern<OpT>(context), tokensOf(tokensOf) {}

  LogicalResult matchAndRewrite(OpT op,
                                PatternRewriter &rewriter) const override {
    CapacityAttr capacity = op.getCapacityAttr();
    if (!capacity)
      return failure();
    std::optional<int64_t> tokens = staticTokens(tokensOf(op));
    if (!tokens)
      return rewriter.notifyMatchFailure(op, "the number of tokens is dynamic");
    int64_t k = op.getKAttr().getInt();
    int64_t limit =
        ceilOfScaledRatio(capacity.getFactor().convertToDouble(), *tokens * k,
                          op.getExperts().getCompute());
    if (limit < *tokens)
      return rewriter.notifyMatchFailure(op, "the capacity can bind");
    rewriter.modifyOpInPlace(op, [&] { op.removeCapacityAttr(); });
    return success();
  }

  Value (*tokensOf)(OpT);
};

/// groups<n, top = n> keep every group: no expert is excluded.
template <typename OpT> struct DropTrivialGroups : OpRewritePattern<OpT> {
  using OpRewritePattern<OpT>::OpRewritePattern;

  LogicalResult matchAndRewrite(OpT op,
                                PatternRewriter &rewriter) const override {
    GroupsAttr groups = op.getGroupsAttr();
    if (!groups || groups.getTop() != groups.getN())
      return failure();
    rewriter.modifyOpInPlace(op, [&] { op.removeGroupsAttr(); });
    return success();
  }
};

/// Without null experts, normalising over the non-null slots is normalising
/// over the selected slots.
template <typename OpT>
struct NonNullWithoutNullExperts : OpRewritePattern<OpT> {
  using OpRewritePattern<OpT>::OpRewritePattern;

  LogicalResult matchAndRewrite(OpT op,
                                PatternRewriter &rewriter) const override {
    if (op.getNormalize() != Normalize::non_null ||
        op.getExperts().getNumNull() != 0)
      return failure();
    rewriter.modifyOpInPlace(op, [&] {
      op.setNormalizeAttr(
          NormalizeAttr::get(op.getContext(), Normalize::selected));
    });
    return success();
  }
};

template <typename OpT>
void addRoutingPatterns(RewritePatternSet &results, Value (*tokensOf)(OpT)) {
  MLIRContext *context = results.getContext();
  results.add<StrategyToTopK<OpT>, ConstantDynamicKToTopK<OpT>,
              DropTrivialGroups<OpT>, NonNullWithoutNullExperts<OpT>>(context);
  results.add<DropNonBindingCapacity<OpT>>(context, tokensOf);
}

} // namespace

void RouteOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                          MLIRContext *context) {
  addRoutingPatterns<RouteOp>(
      results, [](RouteOp op) -> Value { return op.getLogits(); });
}

void LayerOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                          MLIRContext *context) {
  addRoutingPatterns<LayerOp>(results,
                              [](LayerOp op) -> Value { return op.getX(); });
}
