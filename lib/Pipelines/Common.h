//===- Common.h - Pieces shared by the moe pipelines ------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_PIPELINES_COMMON_H
#define MOE_LIB_PIPELINES_COMMON_H

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

} // namespace detail
} // namespace moe
} // namespace mlir

#endif // MOE_LIB_PIPELINES_COMMON_H
