//===- MoEToGPU.h - Lower moe ops to GPU kernels ----------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_MOETOGPU_MOETOGPU_H
#define MOE_CONVERSION_MOETOGPU_MOETOGPU_H

#include "mlir/Support/LLVM.h"

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
  /// Expert matmuls of bf16 rows and bf16 weights on tensor cores (mma.sync
  /// m16n8k16, sm_80 and later); the SIMT tiles otherwise.
  bool tensorCores = true;
  /// With bf16 weights, f32 rows run on tensor cores too: the kernels round
  /// the rows and the FFN's intermediates to bf16 (the layer computed as
  /// with bf16 rows; the output stays f32, not rounded). Off by default:
  /// the op's semantics computes f32 rows in f32 (docs/GPU.md gives the
  /// error this adds).
  bool bf16Rows = false;
};

/// Adds the patterns that lower `moe.gate`, `moe.route`, `moe.dispatch`,
/// `moe.grouped_matmul`, `moe.expert_ffn`, `moe.combine` and `moe.aux_loss`
/// to device kernels (`gpu.launch` regions over device buffers, bridged to
/// tensors with `bufferization.to_tensor`). Host tensors that feed an op
/// are copied to the device; results stay on the device for the next op.
void populateMoEToGPUConversionPatterns(RewritePatternSet &patterns,
                                        const MoEToGPUOptions &options = {});

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
/// device (and are not freed).
LogicalResult finalizeMoEDeviceBuffers(Operation *root,
                                       bool deviceResults = false);

/// Marks a `gpu.alloc` whose buffer the function returns to its caller
/// (device results with `deviceResults`): the caller frees it.
inline constexpr char kCallerOwnedDeviceBufferAttr[] = "moe.caller_owned";

/// Lets the upstream ownership-based buffer deallocation run on functions
/// that hold the device buffers of convert-moe-to-gpu (which frees them
/// itself): `gpu.alloc` is not owned by its block unless it carries
/// `kCallerOwnedDeviceBufferAttr`, and `gpu.dealloc` is not analysed. Host
/// buffers are handled as usual.
void registerDeviceBufferDeallocationModels(DialectRegistry &registry);

} // namespace moe
} // namespace mlir

#endif // MOE_CONVERSION_MOETOGPU_MOETOGPU_H
