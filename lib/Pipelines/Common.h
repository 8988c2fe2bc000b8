//===- Common.h - Pieces shared by the moe pipelines ------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_PIPELINES_COMMON_H
#define MOE_LIB_PIPELINES_COMMON_H

#include "mlir/Support/LLVM.h"

namespace mlir {
class OpPassManager;
namespace moe {
namespace detail {

/// The rest of a model after its moe ops are lowered: elementwise tensor
/// ops become linalg, tensors become buffers (function boundaries with
/// identity layouts so that C callers pass plain descriptors; callers'
/// arrays are never written), optionally with deallocations, and linalg
/// becomes loops.
void addTensorsToLoops(OpPassManager &pm, bool deallocate);

/// Host loops and buffers to the LLVM dialect: structured control flow,
/// memrefs, math (libm for what LLVM has no intrinsic for), arith, then the
/// functions (with C interfaces if asked; with `statusArgument`, run-time
/// errors go through a trailing status argument). `vectors` adds the lowering
/// of the CPU kernels' vector ops; `afterFunctions` adds conversions that must
/// run after func-to-llvm (OpenMP, gpu-to-llvm).
void addHostToLLVM(OpPassManager &pm, bool vectors, bool cInterface,
                   bool statusArgument,
                   function_ref<void(OpPassManager &)> afterFunctions);

} // namespace detail
} // namespace moe
} // namespace mlir

#endif // MOE_LIB_PIPELINES_COMMON_H
