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
// `gpu.dealloc` (a free it cannot interpret). These models take both ops
// out of the analysis, by what the IR shows of each device buffer:
//  * a `gpu.alloc` freed by a `gpu.dealloc` (convert-moe-to-gpu frees every
//    buffer it allocates at the end of its block) is not owned by its block:
//    nothing to free, nothing to clone;
//  * a `gpu.alloc` that the function returns without freeing it (a device
//    result with device-arguments) is owned and handed to the caller, who
//    frees it: returned without a copy;
//  * any other `gpu.alloc` is an error: freeing it with the host allocator
//    would be wrong and leaking it silently no better.
// `gpu.dealloc` is left as is.
// The tensor-core kernels' `nvvm.mma.sync` (registers only) is declared
// free of memory effects, which the analysis needs inside a `gpu.launch`.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToGPU/MoEToGPU.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/BufferDeallocationOpInterface.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

using namespace mlir;

/// Whether `buffer`, or a cast of it, is returned by its function.
static bool isReturned(Value buffer) {
  return llvm::any_of(buffer.getUsers(), [](Operation *user) {
    if (isa<func::ReturnOp>(user))
      return true;
    auto cast = dyn_cast<memref::CastOp>(user);
    return cast && isReturned(cast.getResult());
  });
}

namespace {
struct DeviceAllocModel
    : bufferization::BufferDeallocationOpInterface::ExternalModel<
          DeviceAllocModel, gpu::AllocOp> {
  FailureOr<Operation *>
  process(Operation *op, bufferization::DeallocationState &state,
          const bufferization::DeallocationOptions &options) const {
    auto alloc = cast<gpu::AllocOp>(op);
    bool freed = llvm::any_of(alloc.getMemref().getUsers(),
                              llvm::IsaPred<gpu::DeallocOp>);
    bool returned = !freed && isReturned(alloc.getMemref());
    if (!freed && !returned)
      return op->emitOpError()
             << "is neither freed by a gpu.dealloc nor returned by its "
                "function: the buffer deallocation cannot free device memory "
                "(free it with gpu.dealloc)";
    OpBuilder b(op->getContext());
    b.setInsertionPointAfter(op);
    Value owned =
        arith::ConstantOp::create(b, op->getLoc(), b.getBoolAttr(returned));
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
/// The block barrier, the sm_90a kernel's shared-memory fence, its wgmma ops (which read
/// shared memory through descriptors) and their fences and waits: a read
/// and a write of the default resource, so that they are neither erased
/// nor reordered with memory accesses, and the buffer deallocation (which
/// refuses ops of unknown effects) can walk the kernel.
template <typename Op>
struct SynchronizingEffectsModel
    : MemoryEffectOpInterface::ExternalModel<SynchronizingEffectsModel<Op>,
                                             Op> {
  void getEffects(
      Operation *,
      SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
          &effects) const {
    effects.emplace_back(MemoryEffects::Read::get());
    effects.emplace_back(MemoryEffects::Write::get());
  }
};
} // namespace

void mlir::moe::registerDeviceBufferDeallocationModels(
    DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *context, gpu::GPUDialect *) {
    gpu::AllocOp::attachInterface<DeviceAllocModel>(*context);
    gpu::DeallocOp::attachInterface<DeviceDeallocModel>(*context);
    gpu::BarrierOp::attachInterface<
        SynchronizingEffectsModel<gpu::BarrierOp>>(*context);
  });
  registry.addExtension(+[](MLIRContext *context, NVVM::NVVMDialect *) {
    NVVM::MmaOp::attachInterface<MmaEffectsModel>(*context);
    NVVM::FenceProxyOp::attachInterface<
        SynchronizingEffectsModel<NVVM::FenceProxyOp>>(*context);
    NVVM::WgmmaFenceAlignedOp::attachInterface<
        SynchronizingEffectsModel<NVVM::WgmmaFenceAlignedOp>>(*context);
    NVVM::WgmmaMmaAsyncOp::attachInterface<
        SynchronizingEffectsModel<NVVM::WgmmaMmaAsyncOp>>(*context);
    NVVM::WgmmaGroupSyncAlignedOp::attachInterface<
        SynchronizingEffectsModel<NVVM::WgmmaGroupSyncAlignedOp>>(*context);
    NVVM::WgmmaWaitGroupSyncOp::attachInterface<
        SynchronizingEffectsModel<NVVM::WgmmaWaitGroupSyncOp>>(*context);
  });
}
