//===- MoEOps.cpp - MoE dialect operations ----------------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Verifiers implement the rules of section 3 of the semantics contract. Each
// message names the op, the operand or attribute, and the expected value.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "OperandChecker.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

#include <limits>

using namespace mlir;
using namespace mlir::moe;
using mlir::moe::detail::Dim;
using mlir::moe::detail::ElementKind;
using mlir::moe::detail::OperandChecker;

//===----------------------------------------------------------------------===//
// Custom directives
//===----------------------------------------------------------------------===//

static ParseResult parseStrategy(OpAsmParser &parser,
                                 RoutingStrategyAttrInterface &strategy) {
  return parseStrategyAttr(parser, strategy);
}

static void printStrategy(OpAsmPrinter &printer, Operation *,
                          RoutingStrategyAttrInterface strategy) {
  printStrategyAttr(printer, strategy);
}

#include "moe/Dialect/MoE/IR/MoEOpInterfaces.cpp.inc"

#define GET_OP_CLASSES
#include "moe/Dialect/MoE/IR/MoEOps.cpp.inc"

/// Speculatable when the verifier has checked every size: all operand and
/// result types static. Otherwise the lowering checks sizes at run time.
static Speculation::Speculatability staticallyChecked(Operation *op) {
  auto isStatic = [](Type type) {
    auto shaped = llvm::dyn_cast<ShapedType>(type);
    return !shaped || shaped.hasStaticShape();
  };
  if (llvm::all_of(op->getOperandTypes(), isStatic) &&
      llvm::all_of(op->getResultTypes(), isStatic))
    return Speculation::Speculatable;
  return Speculation::NotSpeculatable;
}

#define MOE_SPECULATABILITY(OpT)                                               \
  Speculation::Speculatability OpT::getSpeculatability() {                     \
    return staticallyChecked(*this);                                           \
  }
MOE_SPECULATABILITY(GateOp)
MOE_SPECULATABILITY(RouteOp)
MOE_SPECULATABILITY(RouteDispatchOp)
MOE_SPECULATABILITY(DispatchOp)
MOE_SPECULATABILITY(DispatchPaddedOp)
MOE_SPECULATABILITY(GroupedMatmulOp)
MOE_SPECULATABILITY(ExpertFFNOp)
MOE_SPECULATABILITY(CombineOp)
MOE_SPECULATABILITY(LayerOp)
MOE_SPECULATABILITY(AuxLossOp)
#undef MOE_SPECULATABILITY

//===----------------------------------------------------------------------===//
// Shared rules
//===----------------------------------------------------------------------===//

/// `w_gate` is present if and only if the FFN is gated; the biases only when
/// it is not.
static LogicalResult verifyGatedOperands(Operation *op, bool gated, Value wGate,
                                         Value bUp, Value bDown) {
  if (gated && !wGate)
    return op->emitOpError()
           << "operand 'w_gate' is required when 'gated' is set";
  if (!gated && wGate)
    return op->emitOpError() << "operand 'w_gate' is only accepted when "
                                "'gated' is set; expected no 'w_gate'";
  if (gated && (bUp || bDown))
    return op->emitOpError()
           << "operand '" << (bUp ? "b_up" : "b_down")
           << "' is only accepted when the FFN is not gated; expected no "
              "biases with 'gated'";
  return success();
}

/// The constant experts' operands are present if and only if the expert
/// space has constant experts.
static LogicalResult verifyConstantOperands(Operation *op,
                                            ExpertSpaceAttr experts,
                                            Value constProj,
                                            Value constValues) {
  int64_t numConst = experts.getNumConst();
  if (numConst > 0) {
    if (!constProj || !constValues)
      return op->emitOpError()
             << "operand '" << (constProj ? "const_values" : "const_proj")
             << "' is required: the expert space " << experts << " has "
             << numConst << " constant expert(s)";
    return success();
  }
  if (constProj || constValues)
    return op->emitOpError()
           << "operand '" << (constProj ? "const_proj" : "const_values")
           << "' is only accepted when the expert space has constant "
              "experts, got "
           << experts;
  return success();
}

template <typename OpT> static RoutingConfig buildRoutingConfig(OpT op) {
  RoutingConfig config;
  config.experts = op.getExperts();
  config.k = op.getKAttr().getInt();
  config.scoring = op.getScoring();
  config.strategy = op.getStrategy();
  config.normalize = op.getNormalize();
  config.scale = op.getScale().convertToFloat();
  config.capacity = op.getCapacityAttr();
  config.groups = op.getGroupsAttr();
  config.hasKPerToken = static_cast<bool>(op.getKPerToken());
  config.hasSelectionBias = static_cast<bool>(op.getSelectionBias());
  return config;
}

LogicalResult mlir::moe::detail::verifyRoutingOp(Operation *op) {
  RoutingConfig config = llvm::cast<RoutingOpInterface>(op).getRoutingConfig();
  int64_t numExperts = config.experts.getNumExperts();
  int64_t numCompute = config.experts.getCompute();
  if (config.k < 1 || config.k > numExperts)
    return op->emitOpError()
           << "attribute 'k' expects 1 <= k <= S = " << numExperts
           << " (all experts of " << config.experts
           << "), got k = " << config.k;

  auto emitError = [op]() { return op->emitOpError(); };
  if (failed(config.strategy.verifyRouting(emitError, config)))
    return failure();

  StringRef strategyName = config.strategy.getStrategyName();
  if (config.strategy.usesKPerToken() && !config.hasKPerToken)
    return op->emitOpError() << "operand 'k_per_token' is required by "
                                "strategy "
                             << strategyName;
  if (!config.strategy.usesKPerToken() && config.hasKPerToken)
    return op->emitOpError()
           << "operand 'k_per_token' is only accepted with strategy "
              "dynamic_k, got strategy "
           << strategyName;

  if (GroupsAttr groups = config.groups) {
    int64_t n = groups.getN();
    int64_t top = groups.getTop();
    if (!config.experts.isComputeOnly())
      return op->emitOpError()
             << "attribute 'groups' requires an expert space of compute "
                "experts only (S = E), got S = "
             << numExperts << ", E = " << numCompute;
    if (numCompute % n != 0) // n >= 1: the attribute's own rule
      return op->emitOpError()
             << "attribute 'groups' expects n dividing E = " << numCompute
             << ", got n = " << n;
    // top2_sum adds a group's two largest keys; max needs one.
    if (groups.getScore() == GroupScore::top2_sum && numCompute / n < 2)
      return op->emitOpError()
             << "attribute 'groups' expects at least 2 experts per group "
                "(E / n >= 2) with score = top2_sum, got E / n = "
             << numCompute / n;
    int64_t reachable = top * (numCompute / n);
    if (config.k > reachable)
      return op->emitOpError()
             << "attribute 'k' expects k <= top * E / n = " << reachable
             << " (the experts of the kept groups), got k = " << config.k;
  }
  return success();
}

//===----------------------------------------------------------------------===//
// GateOp
//===----------------------------------------------------------------------===//

LogicalResult GateOp::verify() {
  OperandChecker c(*this);
  return success(
      succeeded(c.operand("x", getX(), {"T", "H"}, ElementKind::Float)) &&
      succeeded(c.operand("w", getW(), {"H", "S"}, ElementKind::Float)) &&
      succeeded(c.operand("bias", getBias(), {"S"}, ElementKind::Float)) &&
      succeeded(c.operand("init", getInit(), {"T", "S"}, ElementKind::F32)));
}

//===----------------------------------------------------------------------===//
// RouteOp
//===----------------------------------------------------------------------===//

RoutingConfig RouteOp::getRoutingConfig() { return buildRoutingConfig(*this); }

LogicalResult RouteOp::verify() {
  // The routing rules were checked by RoutingOpInterface.
  OperandChecker c(*this);
  c.bind("S", getExperts().getNumExperts(), "attribute 'experts'");
  c.bind("K", getKAttr().getInt(), "attribute 'k'");
  return success(succeeded(c.operand("logits", getLogits(), {"T", "S"},
                                     ElementKind::F32)) &&
                 succeeded(c.operand("k_per_token", getKPerToken(), {"T"},
                                     ElementKind::I32)) &&
                 succeeded(c.operand("selection_bias", getSelectionBias(),
                                     {"S"}, ElementKind::F32)) &&
                 succeeded(c.operand("ids_init", getIdsInit(), {"T", "K"},
                                     ElementKind::I32)) &&
                 succeeded(c.operand("weights_init", getWeightsInit(),
                                     {"T", "K"}, ElementKind::F32)));
}

//===----------------------------------------------------------------------===//
// RouteDispatchOp
//===----------------------------------------------------------------------===//

RoutingConfig RouteDispatchOp::getRoutingConfig() {
  return buildRoutingConfig(*this);
}

LogicalResult RouteDispatchOp::verify() {
  // The routing rules were checked by RoutingOpInterface.
  RoutingStrategyAttrInterface strategy = getStrategy();
  if (strategy.dependsOnAllTokens())
    return emitOpError() << "strategy " << strategy.getStrategyName()
                         << " decides with every token and cannot be fused; "
                            "expected a strategy that decides token by token";
  if (getCapacityAttr())
    return emitOpError() << "attribute 'capacity' needs every token before "
                            "deciding and cannot be fused; expected no "
                            "capacity";
  int64_t tile = getTileAttr().getInt();
  if (tile < 1 || tile > kMaxRouteDispatchTile)
    return emitOpError() << "attribute 'tile' expects 1 <= tile <= "
                         << kMaxRouteDispatchTile << " tokens, got " << tile;
  ExpertSpaceAttr experts = getExperts();
  OperandChecker c(*this);
  c.bind("S", experts.getNumExperts(), "attribute 'experts'");
  c.bind("K", getKAttr().getInt(), "attribute 'k'");
  c.bind("E", experts.getCompute(), "attribute 'experts'");
  return success(
      succeeded(c.operand("x", getX(), {"T", "H"}, ElementKind::Float)) &&
      succeeded(c.operand("w_router", getWRouter(), {"H", "S"},
                          ElementKind::Float)) &&
      succeeded(
          c.operand("b_router", getBRouter(), {"S"}, ElementKind::Float)) &&
      succeeded(c.operand("k_per_token", getKPerToken(), {"T"},
                          ElementKind::I32)) &&
      succeeded(c.operand("selection_bias", getSelectionBias(), {"S"},
                          ElementKind::F32)) &&
      succeeded(c.result("ids", getIds(), {"T", "K"}, ElementKind::I32)) &&
      succeeded(
          c.result("weights", getWeights(), {"T", "K"}, ElementKind::F32)) &&
      succeeded(c.result("rows", getRows(), {"R", "H"}, ElementKind::Float)) &&
      succeeded(c.sameElementType("result", "rows", getRows(), "x", getX())) &&
      succeeded(c.result("offsets", getOffsets(), {Dim("E", 1)},
                         ElementKind::I32)) &&
      succeeded(c.result("slot_rows", getSlotRows(), {"T", "K"},
                         ElementKind::I32)));
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

/// Expert ids are i32: the number of experts must fit.
static constexpr int64_t kMaxExperts = std::numeric_limits<int32_t>::max();

/// The `num_experts` of the dispatch ops: at least one, and E + 1 offsets
/// must be i32-indexable.
static LogicalResult verifyNumExperts(Operation *op, int64_t numExperts) {
  if (numExperts < 1 || numExperts > kMaxExperts)
    return op->emitOpError() << "attribute 'num_experts' expects 1 <= "
                                "num_experts <= "
                             << kMaxExperts << ", got " << numExperts;
  return success();
}

LogicalResult DispatchOp::verify() {
  int64_t numExperts = getNumExpertsAttr().getInt();
  if (failed(verifyNumExperts(*this, numExperts)))
    return failure();
  OperandChecker c(*this);
  c.bind("E", numExperts, "attribute 'num_experts'");
  return success(
      succeeded(c.operand("x", getX(), {"T", "H"}, ElementKind::Float)) &&
      succeeded(c.operand("ids", getIds(), {"T", "K"}, ElementKind::I32)) &&
      succeeded(c.result("rows", getRows(), {"R", "H"}, ElementKind::Float)) &&
      succeeded(c.sameElementType("result", "rows", getRows(), "x", getX())) &&
      succeeded(
          c.result("offsets", getOffsets(), {Dim("E", 1)}, ElementKind::I32)) &&
      succeeded(
          c.result("slot_rows", getSlotRows(), {"T", "K"}, ElementKind::I32)));
}

//===----------------------------------------------------------------------===//
// DispatchPaddedOp
//===----------------------------------------------------------------------===//

LogicalResult DispatchPaddedOp::verify() {
  int64_t numExperts = getNumExpertsAttr().getInt();
  if (failed(verifyNumExperts(*this, numExperts)))
    return failure();
  OperandChecker c(*this);
  c.bind("E", numExperts, "attribute 'num_experts'");
  return success(
      succeeded(c.operand("x", getX(), {"T", "H"}, ElementKind::Float)) &&
      succeeded(c.operand("ids", getIds(), {"T", "K"}, ElementKind::I32)) &&
      succeeded(c.operand("rows_init", getRowsInit(), {"R_max", "H"},
                          ElementKind::Float)) &&
      succeeded(c.sameElementType("operand", "rows_init", getRowsInit(), "x",
                                  getX())) &&
      succeeded(c.operand("offsets_init", getOffsetsInit(), {Dim("E", 1)},
                          ElementKind::I32)) &&
      succeeded(c.operand("slot_rows_init", getSlotRowsInit(), {"T", "K"},
                          ElementKind::I32)));
}

//===----------------------------------------------------------------------===//
// GroupedMatmulOp
//===----------------------------------------------------------------------===//

LogicalResult GroupedMatmulOp::verify() {
  OperandChecker c(*this);
  return success(
      succeeded(
          c.operand("rhs", getRhs(), {"E", "Kd", "N"}, ElementKind::Float)) &&
      succeeded(c.operand("lhs", getLhs(), {"R", "Kd"}, ElementKind::Float)) &&
      succeeded(c.operand("offsets", getOffsets(), {Dim("E", 1)},
                          ElementKind::I32)) &&
      succeeded(c.operand("init", getInit(), {"R", "N"}, ElementKind::Float)) &&
      succeeded(
          c.sameElementType("operand", "init", getInit(), "lhs", getLhs())));
}

//===----------------------------------------------------------------------===//
// ExpertFFNOp
//===----------------------------------------------------------------------===//

/// Columns of one panel of packed expert weights.
static constexpr int64_t kPanelColumns = 32;

/// With `packed`, dimension 1 of `packed` holds ceil(n / 32) panels, where
/// n is dimension `nDim` of `source`; checked when both are static.
static LogicalResult verifyPanels(Operation *op, StringRef name, Value packed,
                                  StringRef sourceName, Value source,
                                  int64_t nDim, StringRef symbol) {
  if (!packed)
    return success();
  auto packedType = llvm::cast<RankedTensorType>(packed.getType());
  auto sourceType = llvm::cast<RankedTensorType>(source.getType());
  if (packedType.isDynamicDim(1) || sourceType.isDynamicDim(nDim))
    return success();
  int64_t n = sourceType.getDimSize(nDim);
  int64_t expected = llvm::divideCeil(n, kPanelColumns);
  if (packedType.getDimSize(1) == expected)
    return success();
  return op->emitOpError()
         << "operand '" << name << "' (packed) has "
         << packedType.getDimSize(1) << " panels in dimension 1, expected ceil("
         << symbol << " / 32) = " << expected << " with " << symbol << " = "
         << n << " from operand '" << sourceName << "'";
}

/// The expert weights of an FFN: `w_up`, `w_gate` `[E,H,F]`, `w_down`
/// `[E,F,H]`, `b_up` `[E,F]`, `b_down` `[E,H]`; packed: `w_up`, `w_gate`
/// `[E,ceil(F/32),H,32]`, `w_down` `[E,ceil(H/32),F,32]`.
template <typename OpT>
static LogicalResult verifyExpertWeights(OperandChecker &c, OpT op) {
  if (std::optional<WeightQuant> quant = op.getQuant()) {
    if (!op.getPacked())
      return op->emitOpError()
             << "'quant = " << stringifyWeightQuant(*quant)
             << "' needs 'packed': quantized weights are stored in tiles";
    Dim tile = Dim::literal(getQuantTileBytes(*quant));
    std::string why =
        (llvm::Twine("quant = ") + stringifyWeightQuant(*quant)).str();
    // H and F count the tiles' depths and columns in blocks of 32.
    return success(
        succeeded(c.blocks("H", "H/32", kQuantTileSize, why)) &&
        succeeded(c.blocks("F", "F/32", kQuantTileSize, why)) &&
        succeeded(c.operand("w_down", op.getWDown(),
                            {"E", "H/32", "F/32", tile}, ElementKind::I8)) &&
        succeeded(c.operand("w_up", op.getWUp(), {"E", "F/32", "H/32", tile},
                            ElementKind::I8)) &&
        succeeded(c.operand("w_gate", op.getWGate(),
                            {"E", "F/32", "H/32", tile}, ElementKind::I8)) &&
        succeeded(c.blocks("H", "H/32", kQuantTileSize, why)) &&
        succeeded(c.blocks("F", "F/32", kQuantTileSize, why)) &&
        succeeded(c.operand("b_up", op.getBUp(), {"E", "F"},
                            ElementKind::Float)) &&
        succeeded(c.operand("b_down", op.getBDown(), {"E", "H"},
                            ElementKind::Float)));
  }
  if (op.getPacked()) {
    Dim panel = Dim::literal(kPanelColumns);
    return success(
        succeeded(c.operand("w_down", op.getWDown(),
                            {"E", "H_panels", "F", panel}, ElementKind::Float)) &&
        succeeded(c.operand("w_up", op.getWUp(), {"E", "F_panels", "H", panel},
                            ElementKind::Float)) &&
        succeeded(c.operand("w_gate", op.getWGate(),
                            {"E", "F_panels", "H", panel},
                            ElementKind::Float)) &&
        succeeded(verifyPanels(op, "w_up", op.getWUp(), "w_down",
                               op.getWDown(), 2, "F")) &&
        succeeded(verifyPanels(op, "w_down", op.getWDown(), "w_up",
                               op.getWUp(), 2, "H")) &&
        succeeded(c.operand("b_up", op.getBUp(), {"E", "F"},
                            ElementKind::Float)) &&
        succeeded(c.operand("b_down", op.getBDown(), {"E", "H"},
                            ElementKind::Float)));
  }
  return success(succeeded(c.operand("w_up", op.getWUp(), {"E", "H", "F"},
                                     ElementKind::Float)) &&
                 succeeded(c.operand("w_gate", op.getWGate(), {"E", "H", "F"},
                                     ElementKind::Float)) &&
                 succeeded(c.operand("w_down", op.getWDown(), {"E", "F", "H"},
                                     ElementKind::Float)) &&
                 succeeded(c.operand("b_up", op.getBUp(), {"E", "F"},
                                     ElementKind::Float)) &&
                 succeeded(c.operand("b_down", op.getBDown(), {"E", "H"},
                                     ElementKind::Float)));
}

LogicalResult ExpertFFNOp::verify() {
  if (failed(verifyGatedOperands(*this, getGated(), getWGate(), getBUp(),
                                 getBDown())))
    return failure();
  OperandChecker c(*this);
  return success(
      succeeded(c.operand("rows", getRows(), {"R", "H"}, ElementKind::Float)) &&
      succeeded(verifyExpertWeights(c, *this)) &&
      succeeded(c.operand("offsets", getOffsets(), {Dim("E", 1)},
                          ElementKind::I32)) &&
      succeeded(c.operand("init", getInit(), {"R", "H"}, ElementKind::Float)) &&
      succeeded(
          c.sameElementType("operand", "init", getInit(), "rows", getRows())));
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

/// The constant experts' `Wc[N_const,H,2]` and `v[N_const,H]`.
template <typename OpT>
static LogicalResult verifyConstantShapes(OperandChecker &c, OpT op) {
  return success(succeeded(c.operand("const_proj", op.getConstProj(),
                                     {"N_const", "H", Dim::literal(2)},
                                     ElementKind::Float)) &&
                 succeeded(c.operand("const_values", op.getConstValues(),
                                     {"N_const", "H"}, ElementKind::Float)));
}

LogicalResult CombineOp::verify() {
  ExpertSpaceAttr experts = getExperts();
  if (failed(verifyConstantOperands(*this, experts, getConstProj(),
                                    getConstValues())))
    return failure();
  OperandChecker c(*this);
  c.bind("N_const", experts.getNumConst(), "attribute 'experts'");
  return success(
      succeeded(c.operand("y", getY(), {"R", "H"}, ElementKind::Float)) &&
      succeeded(c.operand("slot_rows", getSlotRows(), {"T", "K"},
                          ElementKind::I32)) &&
      succeeded(c.operand("ids", getIds(), {"T", "K"}, ElementKind::I32)) &&
      succeeded(
          c.operand("weights", getWeights(), {"T", "K"}, ElementKind::F32)) &&
      succeeded(c.operand("x", getX(), {"T", "H"}, ElementKind::Float)) &&
      succeeded(verifyConstantShapes(c, *this)) &&
      succeeded(c.operand("init", getInit(), {"T", "H"}, ElementKind::Float)) &&
      succeeded(c.sameElementType("operand", "init", getInit(), "x", getX())));
}

//===----------------------------------------------------------------------===//
// LayerOp
//===----------------------------------------------------------------------===//

RoutingConfig LayerOp::getRoutingConfig() { return buildRoutingConfig(*this); }

LogicalResult LayerOp::verify() {
  // The routing rules were checked by RoutingOpInterface.
  ExpertSpaceAttr experts = getExperts();
  if (failed(verifyGatedOperands(*this, getGated(), getWGate(), getBUp(),
                                 getBDown())) ||
      failed(verifyConstantOperands(*this, experts, getConstProj(),
                                    getConstValues())))
    return failure();
  OperandChecker c(*this);
  c.bind("S", experts.getNumExperts(), "attribute 'experts'");
  c.bind("E", experts.getCompute(), "attribute 'experts'");
  c.bind("N_const", experts.getNumConst(), "attribute 'experts'");
  return success(
      succeeded(c.operand("x", getX(), {"T", "H"}, ElementKind::Float)) &&
      succeeded(c.operand("w_router", getWRouter(), {"H", "S"},
                          ElementKind::Float)) &&
      succeeded(
          c.operand("b_router", getBRouter(), {"S"}, ElementKind::Float)) &&
      succeeded(
          c.operand("k_per_token", getKPerToken(), {"T"}, ElementKind::I32)) &&
      succeeded(c.operand("selection_bias", getSelectionBias(), {"S"},
                          ElementKind::F32)) &&
      succeeded(verifyExpertWeights(c, *this)) &&
      succeeded(verifyConstantShapes(c, *this)) &&
      succeeded(c.result("y", getY(), {"T", "H"}, ElementKind::Float)) &&
      succeeded(c.sameElementType("result", "y", getY(), "x", getX())));
}

//===----------------------------------------------------------------------===//
// AuxLossOp
//===----------------------------------------------------------------------===//

LogicalResult AuxLossOp::verify() {
  OperandChecker c(*this);
  return success(
      succeeded(
          c.operand("scores", getScores(), {"T", "S"}, ElementKind::F32)) &&
      succeeded(c.operand("ids", getIds(), {"T", "K"}, ElementKind::I32)) &&
      succeeded(c.operand("init", getInit(), {}, ElementKind::F32)));
}

//===----------------------------------------------------------------------===//
// EPDispatchOp
//===----------------------------------------------------------------------===//

LogicalResult EPDispatchOp::verify() {
  int64_t numExperts = getNumExpertsAttr().getInt();
  if (failed(verifyNumExperts(*this, numExperts)))
    return failure();
  EPPlacementAttr placement = getPlacement();
  if (!placement.isBalanced() && placement.getBlocks().back() != numExperts)
    return emitOpError() << "placement's last bound ("
                         << placement.getBlocks().back()
                         << ") must equal 'num_experts' (" << numExperts
                         << "): every compute expert needs a rank";
  OperandChecker c(*this);
  if (failed(c.operand("x", getX(), {"T", "H"}, ElementKind::Float)) ||
      failed(c.operand("ids", getIds(), {"T", "K"}, ElementKind::I32)) ||
      failed(c.result("rows", getRows(), {"R_local", "H"},
                      ElementKind::Float)) ||
      failed(c.sameElementType("result", "rows", getRows(), "x", getX())) ||
      failed(c.result("offsets", getOffsets(), {Dim("E_local", 1)},
                      ElementKind::I32)) ||
      failed(c.result("slot_rows", getSlotRows(), {"T", "K"},
                      ElementKind::I32)))
    return failure();
  // What each rank receives, and how many experts it holds, are known only
  // at run time.
  if (!getRows().getType().isDynamicDim(0))
    return emitOpError() << "result 'rows' must have a dynamic first "
                            "dimension (R_local is data-dependent), got "
                         << getRows().getType();
  if (!getOffsets().getType().isDynamicDim(0))
    return emitOpError() << "result 'offsets' must be dynamic (E_local + 1 "
                            "depends on the rank), got "
                         << getOffsets().getType();
  // The plan is consumed by exactly one moe.ep_combine after this op in the
  // same block: every rank must return the rows it received, or the others
  // would wait for them.
  Value plan = getPlan();
  if (!plan.hasOneUse())
    return emitOpError() << "result 'plan' must have exactly one use (a "
                            "moe.ep_combine), got "
                         << std::distance(plan.use_begin(), plan.use_end());
  Operation *user = *plan.user_begin();
  if (!isa<EPCombineOp>(user) || user->getBlock() != (*this)->getBlock())
    return emitOpError() << "result 'plan' must be used by a moe.ep_combine "
                            "in the same block, got '"
                         << user->getName() << "'";
  return success();
}

//===----------------------------------------------------------------------===//
// EPCombineOp
//===----------------------------------------------------------------------===//

LogicalResult EPCombineOp::verify() {
  auto dispatch = getPlan().getDefiningOp<EPDispatchOp>();
  if (!dispatch)
    return emitOpError() << "operand 'plan' must be the result of a "
                            "moe.ep_dispatch";
  if (dispatch->getBlock() != (*this)->getBlock() ||
      !dispatch->isBeforeInBlock(*this))
    return emitOpError() << "operand 'plan' must come from a moe.ep_dispatch "
                            "earlier in the same block";
  OperandChecker c(*this);
  int64_t hidden = dispatch.getX().getType().getDimSize(1);
  if (!ShapedType::isDynamic(hidden))
    c.bind("H", hidden, "the hidden size of the dispatch's 'x'");
  if (failed(c.operand("y_local", getYLocal(), {"R_local", "H"},
                       ElementKind::Float)) ||
      failed(c.result("y", getY(), {"R", "H"}, ElementKind::Float)) ||
      failed(c.sameElementType("result", "y", getY(), "y_local",
                               getYLocal())))
    return failure();
  RankedTensorType rows = dispatch.getRows().getType();
  if (getYLocal().getType().getElementType() != rows.getElementType())
    return emitOpError() << "operand 'y_local' must have the element type "
                            "of the dispatch's rows ("
                         << rows.getElementType() << "), got "
                         << getYLocal().getType().getElementType();
  if (!getY().getType().isDynamicDim(0))
    return emitOpError() << "result 'y' must have a dynamic first dimension "
                            "(the rank's compute slots), got "
                         << getY().getType();
  return success();
}
