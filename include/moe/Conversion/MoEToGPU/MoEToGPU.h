//===- MoEToGPU.h - Lower moe ops to GPU kernels ----------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_MOETOGPU_MOETOGPU_H
#define MOE_CONVERSION_MOETOGPU_MOETOGPU_H

#include "mlir/IR/Block.h"
#include "mlir/IR/Value.h"
#include "mlir/Support/LLVM.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>

namespace mlir {
class ConversionTarget;
class DialectRegistry;
class Operation;
class RewritePatternSet;

namespace moe {

/// Options of the moe-to-gpu lowering.
struct MoEToGPUOptions {
  /// Emit every kernel as a host loop (`scf.for`) over its threads and every
  /// device buffer as a host buffer, instead of `gpu.launch` and
  /// `gpu.alloc`: the same kernel bodies then run through the CPU pipeline,
  /// which is how they are checked against the reference on machines
  /// without a GPU.
  bool emulate = false;
  /// Threads per block of the one-dimensional kernels.
  int64_t blockSize = 128;
  /// Tensor arguments of the function are already in device memory (the
  /// caller passes device pointers) and tensor results stay there (the
  /// caller frees them): nothing crosses PCIe in a call.
  bool deviceArguments = false;
  /// Expert matmuls of bf16 rows and bf16 weights, or f16 rows and f16
  /// weights, on tensor cores (mma.sync m16n8k16, sm_80 and later); the
  /// SIMT tiles otherwise.
  bool tensorCores = true;
  /// With bf16 weights, f32 rows run on tensor cores too: the kernels round
  /// the rows and the FFN's intermediates to bf16 (the layer computed as
  /// with bf16 rows; the output stays f32, not rounded). Off by default:
  /// the op's semantics computes f32 rows in f32 (docs/GPU.md gives the
  /// error this adds).
  bool bf16Rows = false;
  /// Tensor-core matmuls also get an sm_90a kernel (wgmma from swizzled
  /// shared memory, in a gpu.module of its own), which the host code
  /// launches instead of the mma.sync kernel when `kHasWgmmaFunction`
  /// says the device runs it. With `emulate`, the wgmma kernel is emulated.
  bool wgmma = false;
};

/// The runtime function (libmoe_cuda_runtime) the host code asks whether
/// the device runs the sm_90a kernels: `i32 ()`, 1 on a compute capability
/// 9.0 device. It only reads a cached device attribute, so capturable
/// functions may call it.
inline constexpr llvm::StringLiteral kHasWgmmaFunction = "moeCudaHasWgmma";

/// What the patterns of the GPU lowering know about the device buffers they
/// create, kept by the pass (not in the IR) for finalizeMoEDeviceBuffers.
/// It holds values of ops the patterns created (legal ops, never replaced by
/// the conversion); a conversion whose patterns fail after creating ops
/// would leave stale entries, which is why each pattern checks everything
/// before it creates anything.
class MoEDeviceBuffers {
public:
  /// A buffer a pattern allocated (`gpu.alloc`; `memref.alloc` when
  /// emulating).
  void add(Value buffer) { buffers.insert(buffer); }
  bool contains(Value buffer) const { return buffers.contains(buffer); }
  ArrayRef<Value> getBuffers() const { return buffers.getArrayRef(); }

  /// A buffer whose leading size is an upper bound known on the host (the
  /// T * K rows of a dynamic-R dispatch, and what is computed from them),
  /// while the true size is only known on the device.
  void markRowsUpperBound(Value buffer) { upperBound.insert(buffer); }
  bool hasRowsUpperBound(Value buffer) const {
    return upperBound.contains(buffer);
  }

  /// The device copy `device` of the host tensor `tensor`, made by `copy`:
  /// later ops of the same block reuse it.
  void addHostCopy(Value tensor, Operation *copy, Value device) {
    hostCopies[tensor].push_back({copy, device});
  }
  /// A device copy of `tensor` made before `point` in `block`, or null.
  Value lookupHostCopy(Value tensor, Block *block, Block::iterator point) const;

private:
  llvm::SetVector<Value> buffers;
  llvm::DenseSet<Value> upperBound;
  llvm::DenseMap<Value, SmallVector<std::pair<Operation *, Value>, 1>>
      hostCopies;
};

/// Adds the patterns that lower `moe.gate`, `moe.route`, `moe.dispatch`,
/// `moe.grouped_matmul`, `moe.expert_ffn`, `moe.combine` and `moe.aux_loss`
/// to device kernels (`gpu.launch` regions over device buffers, bridged to
/// tensors with `bufferization.to_tensor`). Host tensors that feed an op
/// are copied to the device; results stay on the device for the next op.
/// What they record about their buffers goes to `buffers`, which must
/// outlive the conversion (finalizeMoEDeviceBuffers reads it).
void populateMoEToGPUConversionPatterns(RewritePatternSet &patterns,
                                        const MoEToGPUOptions &options,
                                        MoEDeviceBuffers &buffers);

/// Marks the ops lowered by the patterns above illegal and the dialects they
/// produce legal.
void configureMoEToGPUConversionTarget(ConversionTarget &target);

/// Completes a conversion: device results that reach anything but another
/// moe kernel (a `func.return`, a tensor op) are copied to host memory right
/// after they are produced, and every device buffer is freed at the end of
/// the block that allocated it. Fails, with a diagnostic, on a device result
/// whose size is only known on the device (the rows of a dynamic-R
/// `moe.dispatch`) when it leaves moe code.
/// With `deviceResults`, device results returned by a function stay on the
/// device (and are not freed: the caller frees them). `buffers` is what the
/// patterns recorded.
LogicalResult finalizeMoEDeviceBuffers(Operation *root,
                                       const MoEDeviceBuffers &buffers,
                                       bool deviceResults = false);

/// Lets the upstream ownership-based buffer deallocation run on functions
/// that hold device buffers, which it cannot free (it frees with the host
/// allocator): a `gpu.alloc` freed by a `gpu.dealloc` (every buffer of
/// convert-moe-to-gpu but the returned ones) is not owned by its block, a
/// `gpu.alloc` that the function returns without freeing it is handed to
/// the caller (owned, not copied), and any other `gpu.alloc` is an error;
/// `gpu.dealloc` is not analysed. Host buffers are handled as usual.
void registerDeviceBufferDeallocationModels(DialectRegistry &registry);

} // namespace moe
} // namespace mlir

#endif // MOE_CONVERSION_MOETOGPU_MOETOGPU_H
