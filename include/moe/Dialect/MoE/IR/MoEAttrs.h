//===- MoEAttrs.h - MoE dialect attributes ----------------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEATTRS_H
#define MOE_DIALECT_MOE_IR_MOEATTRS_H

#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/OpImplementation.h"

#include <string>

#include "moe/Dialect/MoE/IR/MoEEnums.h.inc"

namespace mlir {
namespace moe {

struct RoutingConfig;

namespace detail {
/// Parsers and printers of the float parameters of MoE attributes.
FailureOr<APFloat> parseF32Param(AsmParser &parser);
void printF32Param(AsmPrinter &printer, const APFloat &value);
FailureOr<APFloat> parseF64Param(AsmParser &parser);
void printF64Param(AsmPrinter &printer, const APFloat &value);
/// The shortest decimal text that reads back as `value` (`inf`, `nan` for
/// the special values), for diagnostics.
std::string formatFloat(float value);
std::string formatFloat(double value);
} // namespace detail

} // namespace moe
} // namespace mlir

#include "moe/Dialect/MoE/IR/MoEAttrInterfaces.h.inc"

#define GET_ATTRDEF_CLASSES
#include "moe/Dialect/MoE/IR/MoEAttrs.h.inc"

namespace mlir {
namespace moe {

/// Everything that decides how a routing op routes: the expert space, the
/// slot count `K`, scoring, strategy, normalisation, scale, the optional
/// capacity and groups, and which optional operands are present.
struct RoutingConfig {
  ExpertSpaceAttr experts;
  int64_t k = 0;
  Scoring scoring = Scoring::softmax;
  RoutingStrategyAttrInterface strategy;
  Normalize normalize = Normalize::none;
  float scale = 1.0f;
  CapacityAttr capacity;
  GroupsAttr groups;
  bool hasKPerToken = false;
  bool hasSelectionBias = false;
};

/// The routing strategies that moe's lowerings implement. Strategy
/// attributes of other dialects may implement RoutingStrategyAttrInterface
/// (they verify and round-trip) but have no lowering: every lowering asks
/// `getStrategyKind` first and reports a diagnostic on failure, then
/// switches over the kind without a default, so a new kind without a case
/// is a compiler warning and never a silent top_k.
enum class StrategyKind {
  TopK,
  TopP,
  Adaptive,
  Threshold,
  DynamicK,
  ExpertChoice
};

/// The kind of `strategy`, or failure for a strategy no lowering knows.
FailureOr<StrategyKind> getStrategyKind(RoutingStrategyAttrInterface strategy);

/// Emits "strategy <name> has no lowering" on `op` when `strategy` is not
/// one of the StrategyKinds; `what` names the lowering.
LogicalResult checkStrategyLowered(Operation *op,
                                   RoutingStrategyAttrInterface strategy,
                                   StringRef what);

/// Parses a routing strategy written without the `#moe.` prefix
/// (`top_k`, `top_p<p = 0.9>`, ...), or another dialect's strategy in
/// parentheses (`(#dialect.name<...>)`).
ParseResult parseStrategyAttr(AsmParser &parser,
                              RoutingStrategyAttrInterface &strategy);
/// Prints a routing strategy without the `#moe.` prefix (another dialect's
/// strategy in full and in parentheses, `(#dialect.name<...>)`).
void printStrategyAttr(AsmPrinter &printer,
                       RoutingStrategyAttrInterface strategy);

/// Returns `ceil(factor * numerator / denominator)` computed exactly (no
/// rounding of the product), as the contract requires for capacities:
/// `C = ceilOfScaledRatio(cf, T * K, E)` and, for expert choice,
/// `min(T, ceilOfScaledRatio(cf, T, E))`. Returns 0 for a factor that is not
/// positive or a non-positive numerator or denominator, and saturates at
/// INT64_MAX (also for an infinite factor).
int64_t ceilOfScaledRatio(double factor, int64_t numerator,
                          int64_t denominator);

} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_IR_MOEATTRS_H
