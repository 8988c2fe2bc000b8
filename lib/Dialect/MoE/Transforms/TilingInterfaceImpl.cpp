//===- TilingInterfaceImpl.cpp - Tiling moe ops over tokens or rows -------===//
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
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "mlir/Interfaces/TilingInterface.h"

#include <optional>
#include <string>

using namespace mlir;
using namespace mlir::moe;

namespace {

//===----------------------------------------------------------------------===//
// Shifted offsets of a tile of rows
//===----------------------------------------------------------------------===//

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

//===----------------------------------------------------------------------===//
// What each op computes per element of its dimension 0
//===----------------------------------------------------------------------===//

/// The defaults of TileTraits: every tile is legal and no operand but the
/// sliced ones changes.
struct DefaultTileTraits {
  /// Whether the op is a grouped op (rows x experts) rather than a token op.
  static constexpr bool kGrouped = false;
  static std::optional<std::string> whyNotTileable(Operation *) {
    return std::nullopt;
  }
  /// The offsets operand of a grouped op, shifted by each tile of rows.
  static OpOperand *rowOffsets(Operation *) { return nullptr; }
};

/// The per-op facts of the shared model: the operand whose dimension 0 is
/// the iteration domain (tokens or rows), the operands sliced with it
/// (destinations are always sliced), and why the op may not be tiled.
template <typename OpTy> struct TileTraits;

template <> struct TileTraits<GateOp> : DefaultTileTraits {
  static Value driver(GateOp op) { return op.getX(); }
  static bool isSliced(GateOp op, OpOperand &operand) {
    return &operand == &op.getXMutable();
  }
};

template <> struct TileTraits<RouteOp> : DefaultTileTraits {
  static Value driver(RouteOp op) { return op.getLogits(); }
  static bool isSliced(RouteOp op, OpOperand &operand) {
    if (&operand == &op.getLogitsMutable())
      return true;
    for (OpOperand &k : op.getKPerTokenMutable())
      if (&operand == &k)
        return true;
    return false;
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

template <> struct TileTraits<CombineOp> : DefaultTileTraits {
  static Value driver(CombineOp op) { return op.getX(); }
  static bool isSliced(CombineOp op, OpOperand &operand) {
    return &operand == &op.getSlotRowsMutable() ||
           &operand == &op.getIdsMutable() ||
           &operand == &op.getWeightsMutable() || &operand == &op.getXMutable();
  }
};

/// The grouped ops add a second dimension, the experts: `experts` gives E
/// (its dimension 0), `isPerExpert` the operands indexed by expert.
template <> struct TileTraits<GroupedMatmulOp> : DefaultTileTraits {
  static constexpr bool kGrouped = true;
  static Value driver(GroupedMatmulOp op) { return op.getLhs(); }
  static bool isSliced(GroupedMatmulOp op, OpOperand &operand) {
    return &operand == &op.getLhsMutable();
  }
  static OpOperand *rowOffsets(GroupedMatmulOp op) {
    return &op.getOffsetsMutable();
  }
  static Value experts(GroupedMatmulOp op) { return op.getRhs(); }
  static bool isPerExpert(GroupedMatmulOp op, OpOperand &operand) {
    return &operand == &op.getRhsMutable();
  }
};

template <> struct TileTraits<ExpertFFNOp> : DefaultTileTraits {
  static constexpr bool kGrouped = true;
  static Value driver(ExpertFFNOp op) { return op.getRows(); }
  static bool isSliced(ExpertFFNOp op, OpOperand &operand) {
    return &operand == &op.getRowsMutable();
  }
  static OpOperand *rowOffsets(ExpertFFNOp op) {
    return &op.getOffsetsMutable();
  }
  static Value experts(ExpertFFNOp op) { return op.getWUp(); }
  static bool isPerExpert(ExpertFFNOp op, OpOperand &operand) {
    // The weights and biases (packed weights are indexed by expert in
    // dimension 0 too).
    auto in = [&](MutableOperandRange range) {
      return llvm::any_of(range, [&](OpOperand &o) { return &o == &operand; });
    };
    return &operand == &op.getWUpMutable() ||
           &operand == &op.getWDownMutable() || in(op.getWGateMutable()) ||
           in(op.getBUpMutable()) || in(op.getBDownMutable());
  }
};

/// The sizes of result `result` of `op` for `count` elements of the
/// iteration domain: those of its destination, with `count` in dimension 0.
template <typename OpTy>
SmallVector<OpFoldResult> resultSizes(OpBuilder &b, OpTy op, unsigned result,
                                      OpFoldResult count) {
  Value init = llvm::cast<DestinationStyleOpInterface>(*op)
                   .getDpsInitOperand(result)
                   ->get();
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, op.getLoc(), init);
  sizes[0] = count;
  return sizes;
}

/// Elements [offset, offset + size) of dimension 0 of `value`, all of its
/// other dimensions.
tensor::ExtractSliceOp sliceDim0(OpBuilder &b, Location loc, Value value,
                                 OpFoldResult offset, OpFoldResult size) {
  auto type = llvm::cast<RankedTensorType>(value.getType());
  SmallVector<OpFoldResult> offsets(type.getRank(), b.getIndexAttr(0));
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, value);
  SmallVector<OpFoldResult> strides(type.getRank(), b.getIndexAttr(1));
  offsets[0] = offset;
  sizes[0] = size;
  return tensor::ExtractSliceOp::create(b, loc, value, offsets, sizes, strides);
}

//===----------------------------------------------------------------------===//
// The rows of a tile of a grouped op
//===----------------------------------------------------------------------===//

/// The sanitised offset `s[e]` of raw offsets `o` (Semantics.md: s[0] = 0,
/// s[e+1] = clamp(o[e+1], s[e], R)), which is min(R, max(0, o[1], ...,
/// o[e])): a loop over the first `e` entries, as an index.
Value sanitizedOffset(OpBuilder &b, Location loc, Value offsets, Value e,
                      Value numRows) {
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  Value zero = arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(0));
  auto loop = scf::ForOp::create(
      b, loc, one, arith::AddIOp::create(b, loc, e, one), one, ValueRange{zero},
      [&](OpBuilder &nested, Location nestedLoc, Value j, ValueRange acc) {
        Value o = tensor::ExtractOp::create(nested, nestedLoc, offsets, j);
        scf::YieldOp::create(
            nested, nestedLoc,
            ValueRange{arith::MaxSIOp::create(nested, nestedLoc, acc[0], o)});
      });
  Value prefixMax =
      arith::IndexCastOp::create(b, loc, b.getIndexType(), loop.getResult(0));
  return arith::MinSIOp::create(b, loc, prefixMax, numRows);
}

/// The rows `[first, first + count)` that the tile (rows [r0, r0 + m),
/// experts [e0, e0 + n)) of a grouped op computes: the tile's rows that
/// belong to its experts, and, when the tile holds the last expert, the
/// rows past s[E] (which are zero). A tile of rows of every expert computes
/// its rows, with no loop over the offsets.
template <typename OpTy>
std::pair<OpFoldResult, OpFoldResult>
groupedTileRows(OpBuilder &b, OpTy op, ArrayRef<OpFoldResult> offsets,
                ArrayRef<OpFoldResult> sizes) {
  Location loc = op.getLoc();
  OpFoldResult numExperts =
      tensor::getMixedSize(b, loc, TileTraits<OpTy>::experts(op), 0);
  if (isZeroInteger(offsets[1]) &&
      isEqualConstantIntOrValue(sizes[1], numExperts))
    return {offsets[0], sizes[0]};
  auto value = [&](OpFoldResult v) {
    return getValueOrCreateConstantIndexOp(b, loc, v);
  };
  Value numRows =
      value(tensor::getMixedSize(b, loc, TileTraits<OpTy>::driver(op), 0));
  Value rawOffsets = TileTraits<OpTy>::rowOffsets(op)->get();
  Value e0 = value(offsets[1]);
  Value e1 = arith::AddIOp::create(b, loc, e0, value(sizes[1]));
  Value begin = sanitizedOffset(b, loc, rawOffsets, e0, numRows);
  Value isLast = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, e1,
                                       value(numExperts));
  Value end =
      arith::SelectOp::create(b, loc, isLast, numRows,
                              sanitizedOffset(b, loc, rawOffsets, e1, numRows));
  Value r0 = value(offsets[0]);
  Value first = arith::MaxSIOp::create(b, loc, r0, begin);
  Value last = arith::MinSIOp::create(
      b, loc, arith::AddIOp::create(b, loc, r0, value(sizes[0])), end);
  Value difference = arith::SubIOp::create(b, loc, last, first);
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value count = arith::MaxSIOp::create(b, loc, difference, zero);
  return {first, count};
}

//===----------------------------------------------------------------------===//
// TilingInterface
//===----------------------------------------------------------------------===//

/// A token op: one parallel loop over dimension 0 of the driver operand;
/// a tile [o, o + n) reads elements [o, o + n) of the sliced operands and
/// destinations, all of the other operands, and computes elements
/// [o, o + n) of every result. A grouped op: two parallel loops, rows and
/// experts; a tile computes the rows `groupedTileRows` gives (for a tile of
/// rows alone: its rows), reading those rows, the offsets of its experts
/// shifted by the first row, and its experts' weights.
template <typename OpTy>
struct TilingModel : TilingInterface::ExternalModel<TilingModel<OpTy>, OpTy> {
  static constexpr bool kGrouped = TileTraits<OpTy>::kGrouped;

  SmallVector<utils::IteratorType> getLoopIteratorTypes(Operation *op) const {
    if (kGrouped)
      return {utils::IteratorType::parallel, utils::IteratorType::parallel};
    return {utils::IteratorType::parallel};
  }

  SmallVector<Range> getIterationDomain(Operation *op, OpBuilder &b) const {
    auto concreteOp = llvm::cast<OpTy>(op);
    OpFoldResult count = tensor::getMixedSize(
        b, op->getLoc(), TileTraits<OpTy>::driver(concreteOp), 0);
    SmallVector<Range> domain = {
        Range{b.getIndexAttr(0), count, b.getIndexAttr(1)}};
    if constexpr (kGrouped)
      domain.push_back(
          Range{b.getIndexAttr(0),
                tensor::getMixedSize(b, op->getLoc(),
                                     TileTraits<OpTy>::experts(concreteOp), 0),
                b.getIndexAttr(1)});
    return domain;
  }

  /// The elements of dimension 0 of the results that a tile computes.
  std::pair<OpFoldResult, OpFoldResult>
  tileRows(OpBuilder &b, OpTy op, ArrayRef<OpFoldResult> offsets,
           ArrayRef<OpFoldResult> sizes) const {
    if constexpr (kGrouped)
      return groupedTileRows(b, op, offsets, sizes);
    return {offsets[0], sizes[0]};
  }

  FailureOr<TilingResult>
  getTiledImplementation(Operation *op, OpBuilder &b,
                         ArrayRef<OpFoldResult> offsets,
                         ArrayRef<OpFoldResult> sizes) const {
    auto concreteOp = llvm::cast<OpTy>(op);
    if (std::optional<std::string> reason =
            TileTraits<OpTy>::whyNotTileable(concreteOp))
      return op->emitOpError() << "cannot be tiled over tokens: " << *reason;
    Location loc = op->getLoc();
    auto dps = llvm::cast<DestinationStyleOpInterface>(op);
    OpOperand *rowOffsets = TileTraits<OpTy>::rowOffsets(concreteOp);
    auto [first, count] = tileRows(b, concreteOp, offsets, sizes);
    // A tile of experts (not all of them) reads their offsets and weights.
    bool expertTile = false;
    if constexpr (kGrouped)
      expertTile =
          !isZeroInteger(offsets[1]) ||
          !isEqualConstantIntOrValue(
              sizes[1], tensor::getMixedSize(
                            b, loc, TileTraits<OpTy>::experts(concreteOp), 0));
    TilingResult tiled;
    SmallVector<Value> operands;
    for (OpOperand &operand : op->getOpOperands()) {
      if (&operand == rowOffsets) {
        Value groupOffsets = operand.get();
        if (expertTile) {
          // Offsets e0 .. e0 + n of the tile's n experts.
          OpFoldResult entries = getAsOpFoldResult(arith::AddIOp::create(
              b, loc, getValueOrCreateConstantIndexOp(b, loc, sizes[1]),
              arith::ConstantIndexOp::create(b, loc, 1)));
          auto slice = sliceDim0(b, loc, groupOffsets, offsets[1], entries);
          tiled.generatedSlices.push_back(slice);
          groupOffsets = slice;
        }
        operands.push_back(shiftOffsets(b, loc, groupOffsets, first));
        continue;
      }
      if constexpr (kGrouped) {
        if (expertTile && TileTraits<OpTy>::isPerExpert(concreteOp, operand)) {
          auto slice = sliceDim0(b, loc, operand.get(), offsets[1], sizes[1]);
          tiled.generatedSlices.push_back(slice);
          operands.push_back(slice);
          continue;
        }
      }
      if (!TileTraits<OpTy>::isSliced(concreteOp, operand) &&
          !dps.isDpsInit(&operand)) {
        operands.push_back(operand.get());
        continue;
      }
      auto slice = sliceDim0(b, loc, operand.get(), first, count);
      tiled.generatedSlices.push_back(slice);
      operands.push_back(slice);
    }
    Operation *tiledOp = b.clone(*op);
    tiledOp->setOperands(operands);
    std::optional<int64_t> staticSize = getConstantIntValue(count);
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
    auto [first, count] = tileRows(b, llvm::cast<OpTy>(op), offsets, sizes);
    resultOffsets.assign(type.getRank(), b.getIndexAttr(0));
    resultOffsets[0] = first;
    resultSizes = ::resultSizes(b, llvm::cast<OpTy>(op), resultNumber, count);
    return success();
  }

  LogicalResult getIterationDomainTileFromResultTile(
      Operation *op, OpBuilder &b, unsigned resultNumber,
      ArrayRef<OpFoldResult> offsets, ArrayRef<OpFoldResult> sizes,
      SmallVectorImpl<OpFoldResult> &iterDomainOffsets,
      SmallVectorImpl<OpFoldResult> &iterDomainSizes) const {
    // A token's slots, experts or features, a row's features, are computed
    // together: only a tile that spans every other dimension of the result
    // is a tile of the iteration domain. (No diagnostic: a fusion driver
    // that asks for another tile falls back to computing the whole op.)
    SmallVector<OpFoldResult> full =
        ::resultSizes(b, llvm::cast<OpTy>(op), resultNumber, sizes[0]);
    for (size_t d = 1; d < offsets.size(); ++d)
      if (!isZeroInteger(offsets[d]) ||
          !isEqualConstantIntOrValue(sizes[d], full[d]))
        return failure();
    iterDomainOffsets.assign({offsets[0]});
    iterDomainSizes.assign({sizes[0]});
    if constexpr (kGrouped) {
      // Those rows of every expert.
      iterDomainOffsets.push_back(b.getIndexAttr(0));
      iterDomainSizes.push_back(tensor::getMixedSize(
          b, op->getLoc(), TileTraits<OpTy>::experts(llvm::cast<OpTy>(op)), 0));
    }
    return success();
  }

  FailureOr<TilingResult>
  generateResultTileValue(Operation *op, OpBuilder &b, unsigned resultNumber,
                          ArrayRef<OpFoldResult> offsets,
                          ArrayRef<OpFoldResult> sizes) const {
    // A producer that cannot be tiled is left whole by fusion drivers,
    // silently: that is not an error of the input.
    if (TileTraits<OpTy>::whyNotTileable(llvm::cast<OpTy>(op)))
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

/// moe.dispatch_padded, its own case: a stable counting sort, in which the
/// row of a slot counts the slots of its expert in every token before it,
/// so no tile of tokens computes its part of the results alone. The op
/// takes the interface to say so: tiling it fails with that reason on the
/// op, and fusing it as a producer fails silently (the drivers keep it
/// whole, which is what a tiled consumer of the rows needs). The domain is
/// the tokens, sequential (a scan). (moe.dispatch has no model: its
/// data-dependent R gives the drivers no destination to tile into.)
template <typename OpTy>
struct DispatchTilingModel
    : TilingInterface::ExternalModel<DispatchTilingModel<OpTy>, OpTy> {
  SmallVector<utils::IteratorType> getLoopIteratorTypes(Operation *op) const {
    return {utils::IteratorType::reduction};
  }

  SmallVector<Range> getIterationDomain(Operation *op, OpBuilder &b) const {
    OpFoldResult tokens =
        tensor::getMixedSize(b, op->getLoc(), llvm::cast<OpTy>(op).getX(), 0);
    return {Range{b.getIndexAttr(0), tokens, b.getIndexAttr(1)}};
  }

  FailureOr<TilingResult>
  getTiledImplementation(Operation *op, OpBuilder &b,
                         ArrayRef<OpFoldResult> offsets,
                         ArrayRef<OpFoldResult> sizes) const {
    return op->emitOpError()
           << "cannot be tiled over tokens: the row of a slot counts the "
              "slots of its expert in every token before it (a stable "
              "counting sort); tile its consumers and keep it whole";
  }

  LogicalResult
  getResultTilePosition(Operation *op, OpBuilder &b, unsigned resultNumber,
                        ArrayRef<OpFoldResult> offsets,
                        ArrayRef<OpFoldResult> sizes,
                        SmallVector<OpFoldResult> &resultOffsets,
                        SmallVector<OpFoldResult> &resultSizes) const {
    return failure();
  }

  FailureOr<TilingResult>
  generateResultTileValue(Operation *op, OpBuilder &b, unsigned resultNumber,
                          ArrayRef<OpFoldResult> offsets,
                          ArrayRef<OpFoldResult> sizes) const {
    return failure();
  }
};

template <typename... OpTys> void attachModels(MLIRContext *context) {
  (OpTys::template attachInterface<TilingModel<OpTys>>(*context), ...);
}
} // namespace

void mlir::moe::registerTilingInterfaceExternalModels(
    DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *context, MoEDialect *dialect) {
    context->loadDialect<arith::ArithDialect, linalg::LinalgDialect,
                         scf::SCFDialect, tensor::TensorDialect>();
    attachModels<GateOp, RouteOp, CombineOp, GroupedMatmulOp, ExpertFFNOp>(
        context);
    DispatchPaddedOp::attachInterface<DispatchTilingModel<DispatchPaddedOp>>(
        *context);
  });
}
