//===- Lowerings.h - Per-op moe-to-loops lowerings --------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// One file per op lowering; this header lists their populate functions and
// the small kernels they share.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOLOOPS_LOWERINGS_H
#define MOE_LIB_CONVERSION_MOETOLOOPS_LOWERINGS_H

#include "LoopEmitter.h"

#include "moe/Conversion/MoEToLoops/MoEToLoops.h"

namespace mlir {
namespace moe {
namespace detail {

void populateGateLowering(RewritePatternSet &patterns);
void populateRouteLowering(RewritePatternSet &patterns);
void populateDispatchLowering(RewritePatternSet &patterns);
void populateGroupedMatmulLowering(RewritePatternSet &patterns);
void populateExpertFFNLowering(RewritePatternSet &patterns,
                               const MoEToLoopsOptions &options);
void populateCombineLowering(RewritePatternSet &patterns);
void populateAuxLossLowering(RewritePatternSet &patterns);

/// `acc[0:n] += lhsAt(k) * matrix[prefix..., k, 0:n]` for `k` in `[0, depth)`,
/// in f32 (the matrix elements are extended to f32). `afterRow`, when given,
/// runs after each inner loop with that loop's trip count (instrumentation).
void emitAccumulateRowTimesMatrix(
    LoopEmitter &e, Value acc, function_ref<Value(Value)> lhsAt, Value matrix,
    ValueRange prefix, Value depth, Value n,
    function_ref<void(Value)> afterRow = nullptr);

/// The offsets of a grouped op, sanitised as the contract says: `o[0] = 0`,
/// `o[e+1] = clamp(o[e+1], o[e], numRows)`. Returns an `index` buffer of
/// `numGroups + 1` entries.
Value emitSanitizedOffsets(LoopEmitter &e, Value offsets, Value numGroups,
                           Value numRows);

} // namespace detail
} // namespace moe
} // namespace mlir

#endif // MOE_LIB_CONVERSION_MOETOLOOPS_LOWERINGS_H
