//===- MoEToLoops.h - Lower moe ops to loops over buffers -------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_MOETOLOOPS_MOETOLOOPS_H
#define MOE_CONVERSION_MOETOLOOPS_MOETOLOOPS_H

namespace mlir {
class ConversionTarget;
class RewritePatternSet;

namespace moe {

/// Options of the moe-to-loops lowering.
struct MoEToLoopsOptions {
  /// Count, per expert, the rows and multiply-adds each `moe.expert_ffn`
  /// executes (in public globals `moe_ffn_counters_<n>`).
  bool instrumentFFN = false;
  /// Emit the independent work items of `moe.expert_ffn` (an expert's rows,
  /// in chunks) as an `scf.parallel`.
  bool parallel = false;
};

/// Adds the patterns that lower `moe.gate`, `moe.route`, `moe.dispatch`,
/// `moe.grouped_matmul`, `moe.expert_ffn`, `moe.combine` and `moe.aux_loss`
/// to scf/memref/arith/math loops over buffers (bridged to tensors with
/// `bufferization.to_buffer`/`to_tensor`). `moe.layer` is not lowered:
/// decompose it first.
void populateMoEToLoopsConversionPatterns(
    RewritePatternSet &patterns, const MoEToLoopsOptions &options = {});

/// Marks the ops lowered by the patterns above illegal and the dialects they
/// produce legal.
void configureMoEToLoopsConversionTarget(ConversionTarget &target);

} // namespace moe
} // namespace mlir

#endif // MOE_CONVERSION_MOETOLOOPS_MOETOLOOPS_H
