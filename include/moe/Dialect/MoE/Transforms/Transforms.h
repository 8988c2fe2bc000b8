//===- Transforms.h - MoE dialect rewrite patterns --------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_TRANSFORMS_TRANSFORMS_H
#define MOE_DIALECT_MOE_TRANSFORMS_TRANSFORMS_H

namespace mlir {
class RewritePatternSet;

namespace moe {

/// Adds the pattern that expands `moe.layer` into `moe.gate`, `moe.route`,
/// `moe.dispatch`, `moe.expert_ffn` and `moe.combine`.
void populateDecomposeLayerPatterns(RewritePatternSet &patterns);

} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_TRANSFORMS_TRANSFORMS_H
