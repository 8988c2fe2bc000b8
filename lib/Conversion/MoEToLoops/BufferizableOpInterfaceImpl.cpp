//===- BufferizableOpInterfaceImpl.cpp - moe ops in one-shot-bufferize ----===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToLoops/BufferizableOpInterfaceImpl.h"

#include "Lowerings.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Bufferization/IR/BufferizableOpInterface.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Bufferization/IR/DstBufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/DialectRegistry.h"

using namespace mlir;
using namespace mlir::bufferization;

namespace {
/// Replaces `op` by its loop nest (detail::emitLoops) on the buffers of its
/// tensor operands.
template <typename OpTy>
LogicalResult bufferizeToLoops(OpTy op, RewriterBase &rewriter,
                               const BufferizationOptions &options,
                               BufferizationState &state) {
  SmallVector<Value> operands;
  for (Value operand : op->getOperands()) {
    if (!llvm::isa<TensorType>(operand.getType())) {
      operands.push_back(operand);
      continue;
    }
    FailureOr<Value> buffer = getBuffer(rewriter, operand, options, state);
    if (failed(buffer))
      return failure();
    operands.push_back(*buffer);
  }
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(op);
  moe::LoopEmitter e(rewriter, op->getLoc());
  FailureOr<SmallVector<Value>> results = moe::detail::emitLoops(
      e, op, typename OpTy::Adaptor(operands, op), moe::MoEToLoopsOptions{});
  if (failed(results))
    return failure();
  replaceOpWithBufferizedValues(rewriter, op, *results);
  return success();
}

/// The model of the ops that allocate their results (moe.dispatch, whose R
/// is data-dependent, and moe.route_dispatch): read every tensor operand,
/// write none, allocate every result.
template <typename OpTy>
struct MoEOpBufferizationModel
    : BufferizableOpInterface::ExternalModel<MoEOpBufferizationModel<OpTy>,
                                             OpTy> {
  bool bufferizesToAllocation(Operation *op, Value value) const { return true; }

  bool bufferizesToMemoryRead(Operation *op, OpOperand &operand,
                              const AnalysisState &state) const {
    return true;
  }

  bool bufferizesToMemoryWrite(Operation *op, OpOperand &operand,
                               const AnalysisState &state) const {
    return false;
  }

  AliasingValueList getAliasingValues(Operation *op, OpOperand &operand,
                                      const AnalysisState &state) const {
    return {};
  }

  FailureOr<BufferLikeType>
  getBufferType(Operation *op, Value value, const BufferizationOptions &options,
                const BufferizationState &state,
                SmallVector<Value> &invocationStack) const {
    // The lowering allocates its results with the identity layout in the
    // default memory space.
    return llvm::cast<BufferLikeType>(
        moe::detail::getBufferType(value.getType()));
  }

  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const BufferizationOptions &options,
                          BufferizationState &state) const {
    return bufferizeToLoops(llvm::cast<OpTy>(op), rewriter, options, state);
  }
};

/// Whether a destination-style op reads destination `init`: only
/// moe.dispatch_padded's rows_init (its rows past offsets[E] are kept); the
/// other destinations are overwritten whole, so one-shot may hand the ops
/// uninitialised buffers.
bool readsDestination(Operation *op, OpOperand &init) {
  auto dispatch = llvm::dyn_cast<moe::DispatchPaddedOp>(op);
  return dispatch && &init == &dispatch.getRowsInitMutable();
}

/// The model of the destination-style moe ops: each result is written into
/// (and aliases) its destination.
template <typename OpTy>
struct MoEDpsBufferizationModel
    : DstBufferizableOpInterfaceExternalModel<MoEDpsBufferizationModel<OpTy>,
                                              OpTy> {
  bool bufferizesToMemoryRead(Operation *op, OpOperand &operand,
                              const AnalysisState &state) const {
    auto dps = llvm::cast<DestinationStyleOpInterface>(op);
    return !dps.isDpsInit(&operand) || readsDestination(op, operand);
  }

  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const BufferizationOptions &options,
                          BufferizationState &state) const {
    return bufferizeToLoops(llvm::cast<OpTy>(op), rewriter, options, state);
  }
};

template <template <typename> class Model, typename... OpTys>
void attachModels(MLIRContext *context) {
  (OpTys::template attachInterface<Model<OpTys>>(*context), ...);
}
} // namespace

void mlir::moe::registerBufferizableOpInterfaceExternalModels(
    DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *context, MoEDialect *dialect) {
    // The dialects of the loop nests that bufferizing an op creates.
    context->loadDialect<arith::ArithDialect, func::FuncDialect,
                         math::MathDialect,
                         memref::MemRefDialect, scf::SCFDialect,
                         vector::VectorDialect>();
    attachModels<MoEOpBufferizationModel, DispatchOp, RouteDispatchOp,
                 EPDispatchOp, EPCombineOp>(context);
    attachModels<MoEDpsBufferizationModel, GateOp, RouteOp, DispatchPaddedOp,
                 GroupedMatmulOp, ExpertFFNOp, CombineOp, AuxLossOp>(context);
  });
}
