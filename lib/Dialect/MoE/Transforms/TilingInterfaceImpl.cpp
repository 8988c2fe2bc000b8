//===- TilingInterfaceImpl.cpp - Tiling moe ops over tokens ---------------===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Transforms/TilingInterfaceImpl.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/TilingInterface.h"

#include <optional>
#include <string>

using namespace mlir;
using namespace mlir::moe;

namespace {

//===----------------------------------------------------------------------===//
// What each op computes per token
//===----------------------------------------------------------------------===//

/// The per-op facts the shared models need: the operand that gives `T`,
/// the operands indexed by token (dimension 0), the size of a result's
/// dimension other than the tokens, and why the op may not be tiled.
template <typename OpTy> struct TokenTraits;

template <> struct TokenTraits<GateOp> {
  static Value tokens(GateOp op) { return op.getX(); }
  static bool isPerToken(GateOp op, OpOperand &operand) {
    return &operand == &op.getXMutable();
  }
  /// logits [T, S]: S is the width of w.
  static OpFoldResult innerDim(OpBuilder &b, GateOp op, unsigned result,
                               int64_t dim) {
    return tensor::getMixedSize(b, op.getLoc(), op.getW(), 1);
  }
  static std::optional<std::string> whyNotTileable(GateOp) {
    return std::nullopt;
  }
};

template <> struct TokenTraits<RouteOp> {
  static Value tokens(RouteOp op) { return op.getLogits(); }
  static bool isPerToken(RouteOp op, OpOperand &operand) {
    if (&operand == &op.getLogitsMutable())
      return true;
    for (OpOperand &k : op.getKPerTokenMutable())
      if (&operand == &k)
        return true;
    return false;
  }
  /// ids, weights [T, K]: K is the attribute k.
  static OpFoldResult innerDim(OpBuilder &b, RouteOp op, unsigned result,
                               int64_t dim) {
    return b.getIndexAttr(op.getKAttr().getInt());
  }
  static std::optional<std::string> whyNotTileable(RouteOp op) {
    if (op.getStrategy().dependsOnAllTokens())
      return ("strategy " + op.getStrategy().getStrategyName() +
              " decides with every token")
          .str();
    if (op.getCapacityAttr())
      return std::string("attribute 'capacity' decides with every token");
    return std::nullopt;
  }
};

template <> struct TokenTraits<CombineOp> {
  static Value tokens(CombineOp op) { return op.getX(); }
  static bool isPerToken(CombineOp op, OpOperand &operand) {
    return &operand == &op.getSlotRowsMutable() ||
           &operand == &op.getIdsMutable() ||
           &operand == &op.getWeightsMutable() || &operand == &op.getXMutable();
  }
  /// out [T, H]: H is the width of x.
  static OpFoldResult innerDim(OpBuilder &b, CombineOp op, unsigned result,
                               int64_t dim) {
    return tensor::getMixedSize(b, op.getLoc(), op.getX(), 1);
  }
  static std::optional<std::string> whyNotTileable(CombineOp) {
    return std::nullopt;
  }
};

/// The sizes of result `result` of `op` with `tokens` rows.
template <typename OpTy>
SmallVector<OpFoldResult> resultSizes(OpBuilder &b, OpTy op, unsigned result,
                                      OpFoldResult tokens) {
  auto type = llvm::cast<RankedTensorType>(op->getResult(result).getType());
  SmallVector<OpFoldResult> sizes = {tokens};
  for (int64_t d = 1; d < type.getRank(); ++d)
    sizes.push_back(type.isDynamicDim(d)
                        ? TokenTraits<OpTy>::innerDim(b, op, result, d)
                        : OpFoldResult(b.getIndexAttr(type.getDimSize(d))));
  return sizes;
}

//===----------------------------------------------------------------------===//
// ReifyRankedShapedTypeOpInterface
//===----------------------------------------------------------------------===//

template <typename OpTy>
struct TokenReifyModel
    : ReifyRankedShapedTypeOpInterface::ExternalModel<TokenReifyModel<OpTy>,
                                                      OpTy> {
  LogicalResult reifyResultShapes(Operation *op, OpBuilder &b,
                                  ReifiedRankedShapedTypeDims &shapes) const {
    auto concreteOp = llvm::cast<OpTy>(op);
    OpFoldResult tokens = tensor::getMixedSize(
        b, op->getLoc(), TokenTraits<OpTy>::tokens(concreteOp), 0);
    for (unsigned r = 0; r < op->getNumResults(); ++r)
      shapes.push_back(resultSizes(b, concreteOp, r, tokens));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// TilingInterface
//===----------------------------------------------------------------------===//

template <typename OpTy>
struct TokenTilingModel
    : TilingInterface::ExternalModel<TokenTilingModel<OpTy>, OpTy> {
  SmallVector<utils::IteratorType> getLoopIteratorTypes(Operation *op) const {
    return {utils::IteratorType::parallel};
  }

  SmallVector<Range> getIterationDomain(Operation *op, OpBuilder &b) const {
    OpFoldResult tokens = tensor::getMixedSize(
        b, op->getLoc(), TokenTraits<OpTy>::tokens(llvm::cast<OpTy>(op)), 0);
    return {Range{b.getIndexAttr(0), tokens, b.getIndexAttr(1)}};
  }

  FailureOr<TilingResult>
  getTiledImplementation(Operation *op, OpBuilder &b,
                         ArrayRef<OpFoldResult> offsets,
                         ArrayRef<OpFoldResult> sizes) const {
    auto concreteOp = llvm::cast<OpTy>(op);
    if (std::optional<std::string> reason =
            TokenTraits<OpTy>::whyNotTileable(concreteOp))
      return op->emitOpError() << "cannot be tiled over tokens: " << *reason;
    Location loc = op->getLoc();
    TilingResult tiled;
    SmallVector<Value> operands;
    for (OpOperand &operand : op->getOpOperands()) {
      if (!TokenTraits<OpTy>::isPerToken(concreteOp, operand)) {
        operands.push_back(operand.get());
        continue;
      }
      // Rows [offset, offset + size) of a per-token operand, all of its
      // other dimensions.
      Value value = operand.get();
      auto type = llvm::cast<RankedTensorType>(value.getType());
      SmallVector<OpFoldResult> sliceOffsets(type.getRank(), b.getIndexAttr(0));
      SmallVector<OpFoldResult> sliceSizes =
          tensor::getMixedSizes(b, loc, value);
      SmallVector<OpFoldResult> strides(type.getRank(), b.getIndexAttr(1));
      sliceOffsets[0] = offsets[0];
      sliceSizes[0] = sizes[0];
      auto slice = tensor::ExtractSliceOp::create(b, loc, value, sliceOffsets,
                                                  sliceSizes, strides);
      tiled.generatedSlices.push_back(slice);
      operands.push_back(slice);
    }
    Operation *tiledOp = b.clone(*op);
    tiledOp->setOperands(operands);
    std::optional<int64_t> staticSize = getConstantIntValue(sizes[0]);
    for (OpResult result : tiledOp->getResults()) {
      auto type = llvm::cast<RankedTensorType>(result.getType());
      SmallVector<int64_t> shape(type.getShape());
      shape[0] = staticSize ? *staticSize : ShapedType::kDynamic;
      result.setType(type.clone(shape));
    }
    tiled.tiledOps.push_back(tiledOp);
    tiled.tiledValues.append(tiledOp->result_begin(), tiledOp->result_end());
    return tiled;
  }

  LogicalResult
  getResultTilePosition(Operation *op, OpBuilder &b, unsigned resultNumber,
                        ArrayRef<OpFoldResult> offsets,
                        ArrayRef<OpFoldResult> sizes,
                        SmallVector<OpFoldResult> &resultOffsets,
                        SmallVector<OpFoldResult> &resultSizes) const {
    auto type =
        llvm::cast<RankedTensorType>(op->getResult(resultNumber).getType());
    resultOffsets.assign(type.getRank(), b.getIndexAttr(0));
    resultOffsets[0] = offsets[0];
    resultSizes =
        ::resultSizes(b, llvm::cast<OpTy>(op), resultNumber, sizes[0]);
    return success();
  }

  LogicalResult getIterationDomainTileFromResultTile(
      Operation *op, OpBuilder &b, unsigned resultNumber,
      ArrayRef<OpFoldResult> offsets, ArrayRef<OpFoldResult> sizes,
      SmallVectorImpl<OpFoldResult> &iterDomainOffsets,
      SmallVectorImpl<OpFoldResult> &iterDomainSizes) const {
    // A token's slots, experts or features are computed together: only a
    // tile that spans every other dimension of the result is a tile of the
    // iteration domain. (No diagnostic: a fusion driver that asks for
    // another tile falls back to computing the whole op.)
    SmallVector<OpFoldResult> full =
        ::resultSizes(b, llvm::cast<OpTy>(op), resultNumber, sizes[0]);
    for (size_t d = 1; d < offsets.size(); ++d)
      if (!isZeroInteger(offsets[d]) ||
          !isEqualConstantIntOrValue(sizes[d], full[d]))
        return failure();
    iterDomainOffsets.assign({offsets[0]});
    iterDomainSizes.assign({sizes[0]});
    return success();
  }

  FailureOr<TilingResult>
  generateResultTileValue(Operation *op, OpBuilder &b, unsigned resultNumber,
                          ArrayRef<OpFoldResult> offsets,
                          ArrayRef<OpFoldResult> sizes) const {
    // A producer that cannot be tiled is left whole by fusion drivers,
    // silently: that is not an error of the input.
    if (TokenTraits<OpTy>::whyNotTileable(llvm::cast<OpTy>(op)))
      return failure();
    SmallVector<OpFoldResult> domainOffsets, domainSizes;
    if (failed(getIterationDomainTileFromResultTile(
            op, b, resultNumber, offsets, sizes, domainOffsets, domainSizes)))
      return failure();
    FailureOr<TilingResult> tiled =
        getTiledImplementation(op, b, domainOffsets, domainSizes);
    if (failed(tiled))
      return failure();
    // The value asked for is the one result.
    tiled->tiledValues = {tiled->tiledValues[resultNumber]};
    return tiled;
  }
};

//===----------------------------------------------------------------------===//
// Grouped ops: tiles of rows
//===----------------------------------------------------------------------===//

/// The grouped ops (rows sorted by expert, expert e owning rows
/// [offsets[e], offsets[e+1])): the rows operand, the offsets and the width
/// of the result.
template <typename OpTy> struct RowTraits;

template <> struct RowTraits<GroupedMatmulOp> {
  static OpOperand &rows(GroupedMatmulOp op) { return op.getLhsMutable(); }
  static OpOperand &offsets(GroupedMatmulOp op) {
    return op.getOffsetsMutable();
  }
  /// out [R, N]: N is the width of rhs.
  static OpFoldResult width(OpBuilder &b, GroupedMatmulOp op) {
    return tensor::getMixedSize(b, op.getLoc(), op.getRhs(), 2);
  }
};

template <> struct RowTraits<ExpertFFNOp> {
  static OpOperand &rows(ExpertFFNOp op) { return op.getRowsMutable(); }
  static OpOperand &offsets(ExpertFFNOp op) { return op.getOffsetsMutable(); }
  /// y [R, H]: H is the width of the rows.
  static OpFoldResult width(OpBuilder &b, ExpertFFNOp op) {
    return tensor::getMixedSize(b, op.getLoc(), op.getRows(), 1);
  }
};

/// The sizes of the result of `op` with `rows` rows.
template <typename OpTy>
SmallVector<OpFoldResult> rowResultSizes(OpBuilder &b, OpTy op,
                                         OpFoldResult rows) {
  auto type = llvm::cast<RankedTensorType>(op->getResult(0).getType());
  return {rows, type.isDynamicDim(1)
                    ? RowTraits<OpTy>::width(b, op)
                    : OpFoldResult(b.getIndexAttr(type.getDimSize(1)))};
}

/// The offsets of the rows [first, ...) of a grouped op, for the op on those
/// rows alone: `max(offsets, 0) - first`. The op's own sanitisation
/// (Semantics.md: o[0] = 0, o[e+1] = clamp(o[e+1], o[e], R)) applied to
/// these with the tile's R gives, for every expert, its rows clamped to
/// the tile, whatever the offsets hold (max(o, 0) changes no sanitised
/// offset, and keeps the subtraction from wrapping).
Value shiftOffsets(OpBuilder &b, Location loc, Value offsets,
                   OpFoldResult first) {
  auto type = llvm::cast<RankedTensorType>(offsets.getType());
  Value init = tensor::EmptyOp::create(
      b, loc, tensor::getMixedSizes(b, loc, offsets), type.getElementType());
  Value firstI32 = arith::IndexCastOp::create(
      b, loc, type.getElementType(),
      getValueOrCreateConstantIndexOp(b, loc, first));
  AffineMap identity = b.getMultiDimIdentityMap(1);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{type}, ValueRange{offsets}, ValueRange{init},
      ArrayRef<AffineMap>{identity, identity},
      ArrayRef<utils::IteratorType>{utils::IteratorType::parallel},
      [&](OpBuilder &nested, Location nestedLoc, ValueRange args) {
        Value zero = arith::ConstantOp::create(nested, nestedLoc,
                                               nested.getI32IntegerAttr(0));
        Value clamped =
            arith::MaxSIOp::create(nested, nestedLoc, args[0], zero);
        Value shifted =
            arith::SubIOp::create(nested, nestedLoc, clamped, firstI32);
        linalg::YieldOp::create(nested, nestedLoc, shifted);
      });
  return generic.getResult(0);
}

template <typename OpTy>
struct RowReifyModel
    : ReifyRankedShapedTypeOpInterface::ExternalModel<RowReifyModel<OpTy>,
                                                      OpTy> {
  LogicalResult reifyResultShapes(Operation *op, OpBuilder &b,
                                  ReifiedRankedShapedTypeDims &shapes) const {
    auto concreteOp = llvm::cast<OpTy>(op);
    OpFoldResult rows = tensor::getMixedSize(
        b, op->getLoc(), RowTraits<OpTy>::rows(concreteOp).get(), 0);
    shapes.push_back(rowResultSizes(b, concreteOp, rows));
    return success();
  }
};

/// One parallel loop over the rows `[0, R)`: a tile `[o, o + n)` reads rows
/// `[o, o + n)` and every expert's weights, with shifted offsets.
template <typename OpTy>
struct RowTilingModel
    : TilingInterface::ExternalModel<RowTilingModel<OpTy>, OpTy> {
  SmallVector<utils::IteratorType> getLoopIteratorTypes(Operation *op) const {
    return {utils::IteratorType::parallel};
  }

  SmallVector<Range> getIterationDomain(Operation *op, OpBuilder &b) const {
    OpFoldResult rows = tensor::getMixedSize(
        b, op->getLoc(), RowTraits<OpTy>::rows(llvm::cast<OpTy>(op)).get(), 0);
    return {Range{b.getIndexAttr(0), rows, b.getIndexAttr(1)}};
  }

  FailureOr<TilingResult>
  getTiledImplementation(Operation *op, OpBuilder &b,
                         ArrayRef<OpFoldResult> offsets,
                         ArrayRef<OpFoldResult> sizes) const {
    auto concreteOp = llvm::cast<OpTy>(op);
    Location loc = op->getLoc();
    OpOperand &rowsOperand = RowTraits<OpTy>::rows(concreteOp);
    OpOperand &offsetsOperand = RowTraits<OpTy>::offsets(concreteOp);
    Value rows = rowsOperand.get();
    SmallVector<OpFoldResult> sliceOffsets = {offsets[0], b.getIndexAttr(0)};
    SmallVector<OpFoldResult> sliceSizes = {
        sizes[0], tensor::getMixedSize(b, loc, rows, 1)};
    SmallVector<OpFoldResult> strides(2, b.getIndexAttr(1));
    auto slice = tensor::ExtractSliceOp::create(b, loc, rows, sliceOffsets,
                                                sliceSizes, strides);
    Value shifted = shiftOffsets(b, loc, offsetsOperand.get(), offsets[0]);

    Operation *tiledOp = b.clone(*op);
    tiledOp->setOperand(rowsOperand.getOperandNumber(), slice);
    tiledOp->setOperand(offsetsOperand.getOperandNumber(), shifted);
    std::optional<int64_t> staticSize = getConstantIntValue(sizes[0]);
    OpResult result = tiledOp->getResult(0);
    auto type = llvm::cast<RankedTensorType>(result.getType());
    SmallVector<int64_t> shape(type.getShape());
    shape[0] = staticSize ? *staticSize : ShapedType::kDynamic;
    result.setType(type.clone(shape));

    TilingResult tiled;
    tiled.tiledOps.push_back(tiledOp);
    tiled.tiledValues.push_back(result);
    tiled.generatedSlices.push_back(slice);
    return tiled;
  }

  LogicalResult
  getResultTilePosition(Operation *op, OpBuilder &b, unsigned resultNumber,
                        ArrayRef<OpFoldResult> offsets,
                        ArrayRef<OpFoldResult> sizes,
                        SmallVector<OpFoldResult> &resultOffsets,
                        SmallVector<OpFoldResult> &resultSizes) const {
    resultOffsets = {offsets[0], b.getIndexAttr(0)};
    resultSizes = rowResultSizes(b, llvm::cast<OpTy>(op), sizes[0]);
    return success();
  }

  LogicalResult getIterationDomainTileFromResultTile(
      Operation *op, OpBuilder &b, unsigned resultNumber,
      ArrayRef<OpFoldResult> offsets, ArrayRef<OpFoldResult> sizes,
      SmallVectorImpl<OpFoldResult> &iterDomainOffsets,
      SmallVectorImpl<OpFoldResult> &iterDomainSizes) const {
    // A row's features come from one product with the expert's weights:
    // only tiles that span the width are produced.
    SmallVector<OpFoldResult> full =
        rowResultSizes(b, llvm::cast<OpTy>(op), sizes[0]);
    if (!isZeroInteger(offsets[1]) ||
        !isEqualConstantIntOrValue(sizes[1], full[1]))
      return failure();
    iterDomainOffsets.assign({offsets[0]});
    iterDomainSizes.assign({sizes[0]});
    return success();
  }

  FailureOr<TilingResult>
  generateResultTileValue(Operation *op, OpBuilder &b, unsigned resultNumber,
                          ArrayRef<OpFoldResult> offsets,
                          ArrayRef<OpFoldResult> sizes) const {
    SmallVector<OpFoldResult> domainOffsets, domainSizes;
    if (failed(getIterationDomainTileFromResultTile(
            op, b, resultNumber, offsets, sizes, domainOffsets, domainSizes)))
      return failure();
    return getTiledImplementation(op, b, domainOffsets, domainSizes);
  }
};

template <typename... OpTys> void attachModels(MLIRContext *context) {
  (OpTys::template attachInterface<TokenTilingModel<OpTys>,
                                   TokenReifyModel<OpTys>>(*context),
   ...);
}
} // namespace

void mlir::moe::registerTilingInterfaceExternalModels(
    DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *context, MoEDialect *dialect) {
    context->loadDialect<arith::ArithDialect, linalg::LinalgDialect,
                         tensor::TensorDialect>();
    attachModels<GateOp, RouteOp, CombineOp>(context);
    GroupedMatmulOp::attachInterface<RowTilingModel<GroupedMatmulOp>,
                                     RowReifyModel<GroupedMatmulOp>>(*context);
    ExpertFFNOp::attachInterface<RowTilingModel<ExpertFFNOp>,
                                 RowReifyModel<ExpertFFNOp>>(*context);
  });
}
