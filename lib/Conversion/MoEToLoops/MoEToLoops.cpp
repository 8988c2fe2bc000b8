//===- MoEToLoops.cpp - Lower moe ops to loops over buffers -----*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToLoops/MoEToLoops.h"

#include "Lowerings.h"

#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Transforms/DialectConversion.h"

#define DEBUG_TYPE "convert-moe-to-loops"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_CONVERTMOETOLOOPSPASS
#include "moe/Conversion/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {
/// Lowers an op with its emitLoops overload, bridging its tensors to
/// buffers and back (the one-shot-bufferize models in
/// BufferizableOpInterfaceImpl.cpp call the same overloads on buffers).
template <typename OpTy> struct ToLoopsPattern : OpConversionPattern<OpTy> {
  ToLoopsPattern(MLIRContext *context, const MoEToLoopsOptions &options)
      : OpConversionPattern<OpTy>(context), options(options) {}

  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    moe::LoopEmitter e(rewriter, op.getLoc());
    FailureOr<SmallVector<Value>> buffers =
        moe::detail::emitLoops(e, op, adaptor, options);
    if (failed(buffers))
      return failure();
    SmallVector<Value> tensors;
    for (auto [buffer, type] : llvm::zip_equal(*buffers, op->getResultTypes()))
      tensors.push_back(llvm::isa<TensorType>(type) ? e.toTensor(buffer, type)
                                                    : buffer);
    rewriter.replaceOp(op, tensors);
    return success();
  }

  MoEToLoopsOptions options;
};
} // namespace

void mlir::moe::populateMoEToLoopsConversionPatterns(
    RewritePatternSet &patterns, const MoEToLoopsOptions &options) {
  patterns.add<ToLoopsPattern<GateOp>, ToLoopsPattern<RouteOp>,
               ToLoopsPattern<DispatchOp>, ToLoopsPattern<DispatchPaddedOp>,
               ToLoopsPattern<RouteDispatchOp>, ToLoopsPattern<GroupedMatmulOp>,
               ToLoopsPattern<ExpertFFNOp>, ToLoopsPattern<CombineOp>,
               ToLoopsPattern<AuxLossOp>, ToLoopsPattern<EPDispatchOp>,
               ToLoopsPattern<EPCombineOp>>(patterns.getContext(), options);
}

void mlir::moe::configureMoEToLoopsConversionTarget(ConversionTarget &target) {
  target.addLegalDialect<arith::ArithDialect,
                         bufferization::BufferizationDialect, math::MathDialect,
                         memref::MemRefDialect, scf::SCFDialect,
                         vector::VectorDialect>();
  target.addIllegalOp<GateOp, RouteOp, RouteDispatchOp, DispatchOp,
                      DispatchPaddedOp, GroupedMatmulOp, ExpertFFNOp, CombineOp,
                      AuxLossOp, EPDispatchOp, EPCombineOp>();
  // The exchange ops call the expert-parallel runtime.
  target.addLegalOp<func::CallOp, func::FuncOp, UnrealizedConversionCastOp>();
}

namespace {
struct ConvertMoEToLoopsPass
    : moe::impl::ConvertMoEToLoopsPassBase<ConvertMoEToLoopsPass> {
  using Base::Base;

  void runOnOperation() override {
    MLIRContext *context = &getContext();
    // What the lowering cannot do, reported once per op (before the
    // conversion, which would only say "failed to legalize").
    if (instrumentFFN) {
      bool unsupported = false;
      getOperation()->walk([&](ExpertFFNOp op) {
        auto wUp = llvm::cast<RankedTensorType>(op.getWUp().getType());
        if (!wUp.isDynamicDim(0))
          return;
        op.emitOpError()
            << "cannot be instrumented (instrument-ffn): the counters need a "
               "static number of experts, but dimension 0 of operand 'w_up' "
               "is dynamic ("
            << wUp << ")";
        unsupported = true;
      });
      if (unsupported)
        return signalPassFailure();
    }
    ConversionTarget target(*context);
    configureMoEToLoopsConversionTarget(target);
    // Everything else, moe.layer included, is left as it is.
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    RewritePatternSet patterns(context);
    MoEToLoopsOptions options;
    options.instrumentFFN = instrumentFFN;
    options.parallel = parallel;
    populateMoEToLoopsConversionPatterns(patterns, options);
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
