//===- DeviceBufferDeallocation.cpp - gpu.alloc in buffer deallocation ----===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The GPU pipeline runs the upstream ownership-based buffer deallocation so
// that the host temporaries of the tensor ops around the moe kernels are
// freed. That pass knows nothing of device memory: it would free a
// `gpu.alloc` with `memref.dealloc` (the host allocator) and it rejects
// `gpu.dealloc` (a free it cannot interpret). convert-moe-to-gpu already
// frees every device buffer it allocates, so these models take both ops out
// of the analysis: a `gpu.alloc` is not owned by its block (nothing to free,
// nothing to clone) unless it carries `moe.caller_owned` (a device result
// returned with device-arguments: the caller frees it, so the function
// returns it as owned, without a copy), and `gpu.dealloc` is left as is.
// The tensor-core kernels' `nvvm.mma.sync` (registers only) is declared
// free of memory effects, which the analysis needs inside a `gpu.launch`.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToGPU/MoEToGPU.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/BufferDeallocationOpInterface.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

using namespace mlir;

namespace {
struct DeviceAllocModel
    : bufferization::BufferDeallocationOpInterface::ExternalModel<
          DeviceAllocModel, gpu::AllocOp> {
  FailureOr<Operation *>
  process(Operation *op, bufferization::DeallocationState &state,
          const bufferization::DeallocationOptions &options) const {
    auto alloc = cast<gpu::AllocOp>(op);
    OpBuilder b(op->getContext());
    b.setInsertionPointAfter(op);
    Value owned = arith::ConstantOp::create(
        b, op->getLoc(),
        b.getBoolAttr(op->hasAttr(moe::kCallerOwnedDeviceBufferAttr)));
    state.updateOwnership(alloc.getMemref(), owned);
    return op;
  }
};

struct DeviceDeallocModel
    : bufferization::BufferDeallocationOpInterface::ExternalModel<
          DeviceDeallocModel, gpu::DeallocOp> {
  FailureOr<Operation *>
  process(Operation *op, bufferization::DeallocationState &state,
          const bufferization::DeallocationOptions &options) const {
    return op;
  }
};
/// `nvvm.mma.sync` reads and writes registers only. Tensor-core kernels are
/// still inside their `gpu.launch` when the deallocation runs, and it
/// refuses ops whose memory effects it cannot see.
struct MmaEffectsModel
    : MemoryEffectOpInterface::ExternalModel<MmaEffectsModel, NVVM::MmaOp> {
  void getEffects(
      Operation *,
      SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
          &) const {}
};
} // namespace

void mlir::moe::registerDeviceBufferDeallocationModels(
    DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *context, gpu::GPUDialect *) {
    gpu::AllocOp::attachInterface<DeviceAllocModel>(*context);
    gpu::DeallocOp::attachInterface<DeviceDeallocModel>(*context);
  });
  registry.addExtension(+[](MLIRContext *context, NVVM::NVVMDialect *) {
    NVVM::MmaOp::attachInterface<MmaEffectsModel>(*context);
  });
}
