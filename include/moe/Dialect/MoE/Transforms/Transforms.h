//===- Transforms.h - MoE dialect rewrite patterns --------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_TRANSFORMS_TRANSFORMS_H
#define MOE_DIALECT_MOE_TRANSFORMS_TRANSFORMS_H

#include "mlir/Support/LLVM.h"
#include "llvm/Support/LogicalResult.h"

#include <cstdint>

namespace mlir {
class ModuleOp;
class RewritePatternSet;


namespace moe {

/// Adds the pattern that expands `moe.layer` into `moe.gate`, `moe.route`,
/// `moe.dispatch`, `moe.expert_ffn` and `moe.combine`.
void populateDecomposeLayerPatterns(RewritePatternSet &patterns);

/// Adds the pattern that fuses moe.gate + moe.route + moe.dispatch into
/// moe.route_dispatch (tiles of `tile` tokens) where the routing decides
/// token by token.
void populateFuseGatingDispatchPatterns(RewritePatternSet &patterns,
                                        int64_t tile = 32);

class EPPlacementAttr;

/// Rewrites every moe.dispatch -> moe.expert_ffn -> moe.combine chain of
/// `module` into moe.ep_dispatch / moe.ep_combine with `placement`, and
/// makes the expert weights each rank's own block (first dimension dynamic,
/// through func.call chains). Fails, after a diagnostic on the op, where a
/// chain or a weight does not have that form (see moe-expert-parallel).
LogicalResult applyExpertParallel(ModuleOp module, EPPlacementAttr placement);

} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_TRANSFORMS_TRANSFORMS_H
