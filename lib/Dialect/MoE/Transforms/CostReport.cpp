//===- CostReport.cpp - The routing cost of MoE layers ----------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#define DEBUG_TYPE "moe-cost-report"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOECOSTREPORTPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

struct LayerCost {
  int64_t hidden = 0, ffn = 0;
  bool gated = false;
  /// Bytes per weight, as numerator / denominator (quantized tiles: their
  /// bytes per 32 x 32 weights).
  int64_t weightBytes = 4, weightsPer = 1;
  RoutingConfig routing;

  int64_t slotFlops() const { return 2 * hidden * ffn * (gated ? 3 : 2); }
  int64_t expertWeightBytes() const {
    return hidden * ffn * (gated ? 3 : 2) * weightBytes / weightsPer;
  }
  /// Bounds on a token's compute slots under the routing.
  std::pair<int64_t, int64_t> slotBounds() const {
    int64_t k = routing.k;
    int64_t compute = routing.experts.getCompute();
    int64_t zeroCompute = routing.experts.getNumExperts() - compute;
    int64_t upper = std::min(k, compute);
    int64_t lower = 0;
    RoutingStrategyAttrInterface strategy = routing.strategy;
    if (llvm::isa<TopKAttr>(strategy))
      lower = std::max<int64_t>(0, k - zeroCompute);
    else if (auto threshold = llvm::dyn_cast<ThresholdAttr>(strategy))
      lower = std::max<int64_t>(0, threshold.getKMin() - zeroCompute);
    else if (llvm::isa<TopPAttr>(strategy))
      lower = std::max<int64_t>(0, 1 - zeroCompute); // n >= 1 (NaN: n = K)
    if (routing.capacity || llvm::isa<ExpertChoiceAttr>(strategy))
      lower = 0; // capacity and expert choice can drop any slot
    return {lower, upper};
  }
};

/// The FFN fed by a dispatch's rows, if any.
ExpertFFNOp ffnOf(Value rows) {
  for (Operation *user : rows.getUsers())
    if (auto ffn = llvm::dyn_cast<ExpertFFNOp>(user))
      if (ffn.getRows() == rows)
        return ffn;
  return nullptr;
}

/// H and F from the weight shapes (plain `w_up [E,H,F]`, or packed
/// `w_up [E,F/32,H,32]` and `w_down [E,H/32,F,32]`, or quantized tiles
/// `[E,F/32,H/32,B]` and `[E,H/32,F/32,B]`).
template <typename FFNLike>
std::optional<LayerCost> fromShapes(FFNLike ffnLike, RoutingConfig routing) {
  auto up = llvm::cast<RankedTensorType>(ffnLike.getWUp().getType());
  auto down = llvm::cast<RankedTensorType>(ffnLike.getWDown().getType());
  if (!up.hasStaticShape() || !down.hasStaticShape())
    return std::nullopt;
  LayerCost cost;
  bool packed = ffnLike.getPacked();
  cost.hidden = packed ? up.getDimSize(2) : up.getDimSize(1);
  cost.ffn = packed ? down.getDimSize(2) : up.getDimSize(2);
  cost.gated = ffnLike.getGated();
  cost.weightBytes =
      std::max<int64_t>(1, up.getElementType().getIntOrFloatBitWidth() / 8);
  if (std::optional<WeightQuant> quant = ffnLike.getQuant()) {
    cost.hidden *= kQuantTileSize;
    cost.ffn *= kQuantTileSize;
    cost.weightBytes = getQuantTileBytes(*quant);
    cost.weightsPer = kQuantTileSize * kQuantTileSize;
  }
  cost.routing = routing;
  return cost;
}

std::optional<LayerCost> costOf(Operation *op) {
  if (auto layer = llvm::dyn_cast<LayerOp>(op))
    return fromShapes(layer, layer.getRoutingConfig());
  if (auto route = llvm::dyn_cast<RouteOp>(op)) {
    for (Operation *user : route.getIds().getUsers())
      if (auto dispatch = llvm::dyn_cast<DispatchOp>(user))
        if (ExpertFFNOp ffn = ffnOf(dispatch.getRows()))
          return fromShapes(ffn, route.getRoutingConfig());
    return std::nullopt;
  }
  if (auto fused = llvm::dyn_cast<RouteDispatchOp>(op))
    if (ExpertFFNOp ffn = ffnOf(fused.getRows()))
      return fromShapes(ffn, fused.getRoutingConfig());
  return std::nullopt;
}

std::string locationText(Location loc) {
  std::string text;
  llvm::raw_string_ostream os(text);
  loc.print(os);
  return text;
}

struct MoECostReportPass : moe::impl::MoECostReportPassBase<MoECostReportPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<std::pair<Operation *, LayerCost>> layers;
    getOperation()->walk([&](Operation *op) {
      if (!llvm::isa<LayerOp, RouteOp, RouteDispatchOp>(op))
        return;
      if (std::optional<LayerCost> cost = costOf(op))
        layers.push_back({op, *cost});
    });
    Builder b(&getContext());
    for (auto &[op, cost] : layers) {
      auto [lower, upper] = cost.slotBounds();
      op->setAttr(
          "moe.cost",
          b.getDictionaryAttr({
              b.getNamedAttr("slot_flops",
                             b.getI64IntegerAttr(cost.slotFlops())),
              b.getNamedAttr("dense_slots",
                             b.getI64IntegerAttr(cost.routing.k)),
              b.getNamedAttr("min_slots", b.getI64IntegerAttr(lower)),
              b.getNamedAttr("max_slots", b.getI64IntegerAttr(upper)),
              b.getNamedAttr("expert_weight_bytes",
                             b.getI64IntegerAttr(cost.expertWeightBytes())),
          }));
    }
    if (!print)
      return;
    llvm::raw_ostream &os = llvm::outs();
    os << "moe cost report: " << layers.size() << " MoE layer(s)\n";
    for (auto &[op, cost] : layers) {
      auto [lower, upper] = cost.slotBounds();
      int64_t k = cost.routing.k;
      double denseFlops = static_cast<double>(k * cost.slotFlops());
      os << "  " << op->getName() << " at " << locationText(op->getLoc())
         << "\n"
         << "    experts " << cost.routing.experts << ", k = " << k
         << ", strategy " << cost.routing.strategy.getStrategyName()
         << ", H = " << cost.hidden << ", F = " << cost.ffn
         << (cost.gated ? ", gated" : "") << "\n"
         << "    compute slots per token: " << lower << " to " << upper
         << " (dense top-" << k << ": " << k << ")\n"
         << "    FLOPs per token: "
         << llvm::format("%.4g", static_cast<double>(lower) * cost.slotFlops())
         << " to "
         << llvm::format("%.4g", static_cast<double>(upper) * cost.slotFlops())
         << " (dense top-" << k << ": " << llvm::format("%.4g", denseFlops)
         << ", " << cost.slotFlops() << " per compute slot)\n"
         << "    expert weights: " << cost.expertWeightBytes()
         << " bytes per expert, "
         << cost.routing.experts.getCompute() * cost.expertWeightBytes()
         << " in all; an expert without rows reads none\n";
    }
  }
};

} // namespace
