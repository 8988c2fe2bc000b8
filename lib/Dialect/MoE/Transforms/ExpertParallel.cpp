//===- ExpertParallel.cpp - Split experts over ranks ------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// moe-expert-parallel: moe.dispatch -> moe.expert_ffn -> moe.combine becomes
// moe.ep_dispatch -> moe.expert_ffn (local experts) -> moe.ep_combine ->
// moe.combine, and the expert weights become each rank's block (first
// dimension dynamic) up through the func.call chain that passes them.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Dialect/MoE/Transforms/Transforms.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "moe-expert-parallel"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEEXPERTPARALLELPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

/// The argument attribute on weights that hold one rank's experts.
static constexpr llvm::StringLiteral kEPExpertsAttr = "moe.ep_experts";
/// Which dimension holds the experts, when not the first (a stack of
/// layers' weights).
static constexpr llvm::StringLiteral kEPExpertDimAttr = "moe.ep_expert_dim";

namespace {
/// One chain to rewrite.
struct Chain {
  DispatchOp dispatch;
  ExpertFFNOp ffn;
  SmallVector<CombineOp> combines;
};

/// Finds the chain of `dispatch`, or reports why it has no supported form.
FailureOr<Chain> matchChain(DispatchOp dispatch) {
  Chain chain{dispatch, {}, {}};
  auto fail = [&](const Twine &why) {
    return dispatch.emitOpError()
           << "cannot be made expert-parallel: " << why;
  };
  if (!dispatch.getRows().getType().isDynamicDim(0))
    return fail("its rows have a static R (the padded form); the exchange "
                "needs the data-dependent form");
  for (Operation *user : dispatch.getRows().getUsers()) {
    if (isa<tensor::DimOp>(user))
      continue;
    auto ffn = dyn_cast<ExpertFFNOp>(user);
    if (!ffn || ffn.getRows() != dispatch.getRows() ||
        ffn.getOffsets() != dispatch.getOffsets() || (chain.ffn && ffn != chain.ffn))
      return fail(Twine("its rows must feed one moe.expert_ffn (with its "
                        "offsets), but feed '") +
                  user->getName().getStringRef() + "'");
    chain.ffn = ffn;
  }
  if (!chain.ffn)
    return fail("its rows feed no moe.expert_ffn");
  for (Operation *user : dispatch.getOffsets().getUsers())
    if (user != chain.ffn.getOperation())
      return fail(Twine("its offsets are also used by '") +
                  user->getName().getStringRef() +
                  "' (only the moe.expert_ffn may use them)");
  for (Operation *user : chain.ffn.getY().getUsers()) {
    auto combine = dyn_cast<CombineOp>(user);
    if (!combine || combine.getY() != chain.ffn.getY() ||
        combine.getSlotRows() != dispatch.getSlotRows())
      return fail(Twine("the output of its moe.expert_ffn must feed "
                        "moe.combine (with this dispatch's slot_rows), but "
                        "feeds '") +
                  user->getName().getStringRef() + "'");
    chain.combines.push_back(combine);
  }
  for (Operation *user : dispatch.getSlotRows().getUsers())
    if (!isa<CombineOp>(user))
      return fail(Twine("its slot_rows are also used by '") +
                  user->getName().getStringRef() + "'");
  return chain;
}

/// `type` with dimension `dim` (the experts) dynamic.
RankedTensorType withDynamicExperts(RankedTensorType type, int64_t dim = 0) {
  SmallVector<int64_t> shape(type.getShape());
  shape[dim] = ShapedType::kDynamic;
  return RankedTensorType::get(shape, type.getElementType(),
                               type.getEncoding());
}

/// Makes the weights in `worklist` (values of expert_ffn weight operands)
/// hold one rank's experts: function arguments get a dynamic first
/// dimension, and so do the arguments that callers pass for them.
struct Weight {
  Value value;
  int64_t experts;
  /// The dimension of `value` that indexes the experts: 0, or 1 for a
  /// stack of layers' weights `[L, E, ...]` that the layers slice.
  int64_t dim;
  /// Where an error about it is reported (its moe.expert_ffn or func.call).
  Operation *user;
};

LogicalResult generalizeWeights(ModuleOp module,
                                SmallVector<Weight> worklist) {
  SymbolTableCollection symbols;
  SymbolUserMap users(symbols, module);
  DenseSet<Value> done;
  while (!worklist.empty()) {
    auto [value, experts, dim, anchor] = worklist.pop_back_val();
    if (!done.insert(value).second)
      continue;
    // A layer's slice of a stack of weights `[L, E, ...]` (what exporters
    // emit for identical layers): the stack holds the rank's block.
    if (auto slice = value.getDefiningOp<tensor::ExtractSliceOp>()) {
      RankedTensorType source = slice.getSourceType();
      RankedTensorType result = slice.getResultType();
      bool stacked =
          dim == 0 && source.getRank() == result.getRank() + 1 &&
          llvm::all_of(slice.getStaticStrides(),
                       [](int64_t s) { return s == 1; }) &&
          llvm::all_of(slice.getStaticOffsets().drop_front(),
                       [](int64_t o) { return o == 0; }) &&
          slice.getStaticSizes()[0] == 1 &&
          llvm::equal(slice.getStaticSizes().drop_front(), result.getShape());
      if (stacked && source.getDimSize(1) == experts) {
        OpBuilder b(slice);
        SmallVector<OpFoldResult> offsets = slice.getMixedOffsets();
        SmallVector<OpFoldResult> sizes = slice.getMixedSizes();
        SmallVector<OpFoldResult> strides = slice.getMixedStrides();
        sizes[1] = tensor::DimOp::create(b, slice.getLoc(), slice.getSource(), 1)
                       .getResult();
        auto replacement = tensor::ExtractSliceOp::create(
            b, slice.getLoc(), withDynamicExperts(result), slice.getSource(),
            offsets, sizes, strides);
        slice.getResult().replaceAllUsesWith(replacement.getResult());
        slice.erase();
        worklist.push_back({replacement.getSource(), experts, 1, anchor});
        continue;
      }
    }
    auto argument = dyn_cast<BlockArgument>(value);
    auto function =
        argument ? dyn_cast<func::FuncOp>(argument.getOwner()->getParentOp())
                 : func::FuncOp();
    if (!function || argument.getOwner() != &function.getBody().front()) {
      InFlightDiagnostic diag =
          anchor->emitOpError()
          << "cannot be made expert-parallel: its expert weights must be "
             "function arguments (each rank passes its own experts)";
      if (Operation *def = value.getDefiningOp())
        diag << ", but one is defined by '" << def->getName() << "'";
      diag.attachNote(value.getLoc()) << "this weight";
      return failure();
    }
    unsigned index = argument.getArgNumber();
    for (OpOperand &use : argument.getUses()) {
      Operation *user = use.getOwner();
      if (isa<ExpertFFNOp, func::CallOp, tensor::ExtractSliceOp, tensor::DimOp>(user))
        continue;
      return user->emitOpError()
             << "uses expert weight argument #" << index << " of @"
             << function.getSymName()
             << ", which moe-expert-parallel turns into each rank's block of "
                "experts; only moe.expert_ffn, func.call and the layers' "
                "tensor.extract_slice may use it";
    }
    auto type = cast<RankedTensorType>(argument.getType());
    if (!type.isDynamicDim(dim)) {
      RankedTensorType local = withDynamicExperts(type, dim);
      argument.setType(local);
      SmallVector<Type> inputs(function.getArgumentTypes());
      inputs[index] = local;
      function.setType(FunctionType::get(module.getContext(), inputs,
                                         function.getResultTypes()));
    }
    auto i64 = IntegerType::get(module.getContext(), 64);
    function.setArgAttr(index, kEPExpertsAttr, IntegerAttr::get(i64, experts));
    if (dim != 0)
      function.setArgAttr(index, kEPExpertDimAttr, IntegerAttr::get(i64, dim));
    for (Operation *user : users.getUsers(function)) {
      auto call = dyn_cast<func::CallOp>(user);
      if (!call)
        return user->emitOpError()
               << "refers to @" << function.getSymName()
               << ", whose expert weights moe-expert-parallel makes each "
                  "rank's own; only direct func.call is supported";
      worklist.push_back({call.getOperand(index), experts, dim, call});
    }
  }
  return success();
}
} // namespace

LogicalResult mlir::moe::applyExpertParallel(ModuleOp module,
                                             EPPlacementAttr placement) {
  bool undecomposed = false;
  module.walk([&](Operation *op) {
    if (isa<LayerOp, RouteDispatchOp>(op)) {
      op->emitOpError() << "must be decomposed before moe-expert-parallel "
                           "(run moe-decompose-layer first; do not fuse "
                           "gating and dispatch)";
      undecomposed = true;
    }
  });
  if (undecomposed)
    return failure();

  SmallVector<Chain> chains;
  bool failedMatch = false;
  module.walk([&](DispatchOp dispatch) {
    FailureOr<Chain> chain = matchChain(dispatch);
    if (failed(chain))
      failedMatch = true;
    else
      chains.push_back(*chain);
  });
  if (failedMatch)
    return failure();

  SmallVector<Weight> weights;
  for (Chain &chain : chains) {
    DispatchOp dispatch = chain.dispatch;
    int64_t experts = dispatch.getNumExperts();
    if (!placement.isBalanced() && placement.getBlocks().back() != experts)
      return dispatch.emitOpError()
             << "cannot be made expert-parallel with placement "
             << placement << ": its last bound must be the layer's "
             << experts << " compute experts";
    OpBuilder b(dispatch);
    MLIRContext *context = module.getContext();
    auto offsetsType =
        RankedTensorType::get({ShapedType::kDynamic}, b.getI32Type());
    auto ep = EPDispatchOp::create(
        b, dispatch.getLoc(), dispatch.getRows().getType(), offsetsType,
        dispatch.getSlotRows().getType(), EPPlanType::get(context),
        dispatch.getX(), dispatch.getIds(), dispatch.getNumExpertsAttr(),
        placement);
    dispatch.getRows().replaceAllUsesWith(ep.getRows());
    dispatch.getOffsets().replaceAllUsesWith(ep.getOffsets());
    dispatch.getSlotRows().replaceAllUsesWith(ep.getSlotRows());
    ExpertFFNOp ffn = chain.ffn;
    b.setInsertionPointAfter(ffn);
    RankedTensorType yType = ffn.getY().getType();
    auto back = EPCombineOp::create(
        b, ffn.getLoc(), withDynamicExperts(yType), ffn.getY(), ep.getPlan());
    for (CombineOp combine : chain.combines)
      combine.getYMutable().assign(back.getY());
    dispatch.erase();
    for (Value weight : {ffn.getWUp(), ffn.getWGate(), ffn.getWDown(),
                         ffn.getBUp(), ffn.getBDown()})
      if (weight)
        weights.push_back({weight, experts, 0, ffn});
    LLVM_DEBUG(llvm::dbgs() << DEBUG_TYPE << ": split " << ffn << "\n");
  }
  return generalizeWeights(module, weights);
}

namespace {
struct MoEExpertParallelPass
    : moe::impl::MoEExpertParallelPassBase<MoEExpertParallelPass> {
  using Base::Base;

  void runOnOperation() override {
    MLIRContext *context = &getContext();
    SmallVector<int64_t> blocks;
    StringRef text = StringRef(placement).trim();
    if (text != "balanced") {
      SmallVector<StringRef> parts;
      text.split(parts, ',');
      for (StringRef part : parts) {
        int64_t bound;
        if (part.trim().getAsInteger(10, bound)) {
          getOperation().emitError()
              << "moe-expert-parallel: 'placement' must be 'balanced' or "
                 "comma-separated block bounds such as '0,3,8', got '"
              << placement << "'";
          return signalPassFailure();
        }
        blocks.push_back(bound);
      }
    }
    auto diag = [&]() {
      return getOperation().emitError() << "moe-expert-parallel: ";
    };
    if (failed(EPPlacementAttr::verify(diag, blocks)))
      return signalPassFailure();
    auto attr = EPPlacementAttr::get(context, blocks);
    if (failed(applyExpertParallel(getOperation(), attr)))
      return signalPassFailure();
  }
};
} // namespace
