//===- MoEToGPU.cpp - Lower moe ops to GPU kernels --------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToGPU/MoEToGPU.h"

#include "DeviceEmitter.h"

#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

#define DEBUG_TYPE "convert-moe-to-gpu"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_CONVERTMOETOGPUPASS
#include "moe/Conversion/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

void mlir::moe::populateMoEToGPUConversionPatterns(
    RewritePatternSet &patterns, const MoEToGPUOptions &options,
    MoEDeviceBuffers &buffers) {
  detail::populateRoutingToGPU(patterns, options, buffers);
  detail::populateExpertsToGPU(patterns, options, buffers);
}

void mlir::moe::configureMoEToGPUConversionTarget(ConversionTarget &target) {
  target.addLegalDialect<
      arith::ArithDialect, bufferization::BufferizationDialect, gpu::GPUDialect,
      math::MathDialect, memref::MemRefDialect, scf::SCFDialect>();
  target.addIllegalOp<GateOp, RouteOp, RouteDispatchOp, DispatchOp,
                      GroupedMatmulOp, ExpertFFNOp, CombineOp, AuxLossOp>();
}

LogicalResult
mlir::moe::finalizeMoEDeviceBuffers(Operation *root,
                                   const MoEDeviceBuffers &buffers,
                                   bool deviceResults) {
  // The kernels allocate their own device results: the destinations of
  // the destination-style moe ops (a tensor.empty sized with tensor.dim of
  // the rows) are dead now, and must not keep device rows alive on the host.
  SmallVector<Operation *> destinations;
  root->walk([&](Operation *op) {
    if (isa<tensor::EmptyOp, tensor::DimOp>(op))
      destinations.push_back(op);
  });
  for (Operation *op : llvm::reverse(destinations))
    if (isOpTriviallyDead(op))
      op->erase();

  // Device results that leave moe code go back to the host right after the
  // kernels that produced them.
  SmallVector<bufferization::ToTensorOp> results;
  root->walk([&](bufferization::ToTensorOp op) {
    if (buffers.contains(op.getBuffer()))
      results.push_back(op);
  });
  llvm::DenseSet<Value> returned;
  for (bufferization::ToTensorOp op : results) {
    if (op->use_empty()) {
      op->erase();
      continue;
    }
    Value device = op.getBuffer();
    if (buffers.hasRowsUpperBound(device))
      return op.emitError()
             << "the rows of a dynamic-R moe.dispatch (or expert results "
                "computed from them) are used outside moe ops; on the GPU "
                "their number is only known on the device: use the padded "
                "form of moe.dispatch (a static R_max) for rows that leave "
                "the layer";
    if (!isa<gpu::AllocOp>(device.getDefiningOp()))
      continue; // emulation: already host memory
    if (deviceResults &&
        llvm::all_of(op->getUsers(), llvm::IsaPred<func::ReturnOp>)) {
      // Returned on the device: the caller owns (and frees) the buffer.
      returned.insert(device);
      continue;
    }
    OpBuilder b(op->getContext());
    b.setInsertionPointAfter(op);
    auto type = cast<MemRefType>(device.getType());
    SmallVector<Value> dynamicSizes;
    for (int64_t d = 0; d < type.getRank(); ++d)
      if (type.isDynamicDim(d))
        dynamicSizes.push_back(
            memref::DimOp::create(b, op.getLoc(), device, d));
    Value host = memref::AllocOp::create(b, op.getLoc(), type, dynamicSizes);
    gpu::MemcpyOp::create(b, op.getLoc(), /*asyncToken=*/Type(), ValueRange{},
                          host, device);
    Value tensor = bufferization::ToTensorOp::create(
        b, op.getLoc(), op.getType(), host, /*restrict=*/true,
        /*writable=*/true);
    op.getResult().replaceAllUsesWith(tensor);
    op->erase();
  }
  // Every other device buffer is freed at the end of the block that
  // allocated it (launches and copies are synchronous).
  for (Value buffer : buffers.getBuffers()) {
    auto op = buffer.getDefiningOp<gpu::AllocOp>();
    if (!op || returned.contains(buffer))
      continue;
    OpBuilder b(op->getContext());
    b.setInsertionPoint(op->getBlock()->getTerminator());
    gpu::DeallocOp::create(b, op->getLoc(), /*asyncToken=*/Type(), ValueRange{},
                           op->getResult(0));
  }
  return success();
}

namespace {
struct ConvertMoEToGPUPass
    : moe::impl::ConvertMoEToGPUPassBase<ConvertMoEToGPUPass> {
  using Base::Base;

  void runOnOperation() override {
    MLIRContext *context = &getContext();
    if (blockSize <= 0 || blockSize > 1024) {
      getOperation()->emitError()
          << "convert-moe-to-gpu: block-size must be in [1, 1024], got "
          << static_cast<int64_t>(blockSize);
      return signalPassFailure();
    }
    // What the kernels do not cover yet, reported once per op (before the
    // conversion, which would add "failed to legalize" to each).
    bool unsupported = false;
    getOperation()->walk([&](Operation *op) {
      if (isa<EPDispatchOp, EPCombineOp>(op)) {
        op->emitOpError()
            << "is not lowered to the GPU yet: the expert-parallel exchange "
               "runs in the CPU pipeline (the runtime's NCCL backend moves "
               "host buffers; docs/Distributed.md)";
        unsupported = true;
      }
      if (isa<DispatchPaddedOp>(op)) {
        op->emitOpError() << "is not lowered to the GPU yet (use moe.dispatch "
                             "with a static R_max for the padded form)";
        unsupported = true;
      }
      if (auto ffn = dyn_cast<ExpertFFNOp>(op))
        if (std::optional<WeightQuant> quant = ffn.getQuant()) {
          op->emitOpError()
              << "with quantized weights (quant = "
              << stringifyWeightQuant(*quant)
              << ") is not lowered to the GPU yet (bind f32, f16 or bf16 "
                 "weights for the GPU pipeline)";
          unsupported = true;
        }
    });
    if (unsupported)
      return signalPassFailure();
    ConversionTarget target(*context);
    configureMoEToGPUConversionTarget(target);
    // Everything else, moe.layer included, is left as it is.
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    RewritePatternSet patterns(context);
    MoEDeviceBuffers buffers;
    MoEToGPUOptions options;
    options.emulate = emulate;
    options.blockSize = blockSize;
    options.deviceArguments = deviceArguments;
    options.tensorCores = tensorCores;
    options.bf16Rows = bf16Rows;
    options.wgmma = wgmma;
    populateMoEToGPUConversionPatterns(patterns, options, buffers);
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))) ||
        failed(finalizeMoEDeviceBuffers(getOperation(), buffers,
                                        deviceArguments)))
      signalPassFailure();
  }
};
} // namespace
