//===- Transforms.h - MoE dialect rewrite patterns --------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_TRANSFORMS_TRANSFORMS_H
#define MOE_DIALECT_MOE_TRANSFORMS_TRANSFORMS_H

#include <cstdint>

namespace mlir {
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

} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_TRANSFORMS_TRANSFORMS_H
