//===- MoEAttrs.cpp - MoE dialect attributes --------------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEAttrs.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/TypeSwitch.h"

#include <charconv>
#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::moe;

#include "moe/Dialect/MoE/IR/MoEAttrInterfaces.cpp.inc"
#include "moe/Dialect/MoE/IR/MoEEnums.cpp.inc"

//===----------------------------------------------------------------------===//
// Custom directives
//===----------------------------------------------------------------------===//

/// Parses `(, null = N)? (, copy = N)? (, const = N)?` in that order.
static ParseResult parseZeroComputeCounts(AsmParser &parser, int64_t &numNull,
                                          int64_t &numCopy, int64_t &numConst) {
  numNull = numCopy = numConst = 0;
  struct Entry {
    StringRef keyword;
    int64_t &value;
  };
  Entry entries[] = {{"null", numNull}, {"copy", numCopy}, {"const", numConst}};
  size_t next = 0;
  while (succeeded(parser.parseOptionalComma())) {
    SMLoc loc = parser.getCurrentLocation();
    StringRef keyword;
    if (parser.parseKeyword(&keyword))
      return failure();
    while (next < std::size(entries) && entries[next].keyword != keyword)
      ++next;
    if (next == std::size(entries))
      return parser.emitError(loc)
             << "expected 'null', 'copy' or 'const' (in this order, each at "
                "most once), got '"
             << keyword << "'";
    if (parser.parseEqual() || parser.parseInteger(entries[next].value))
      return failure();
    ++next;
  }
  return success();
}

static void printZeroComputeCounts(AsmPrinter &printer, int64_t numNull,
                                   int64_t numCopy, int64_t numConst) {
  if (numNull != 0)
    printer << ", null = " << numNull;
  if (numCopy != 0)
    printer << ", copy = " << numCopy;
  if (numConst != 0)
    printer << ", const = " << numConst;
}

/// `balanced` or `blocks = [b_0, ..., b_N]` (#moe.ep_placement).
static ParseResult parseEPPlacement(AsmParser &parser,
                                    SmallVector<int64_t> &blocks) {
  if (succeeded(parser.parseOptionalKeyword("balanced")))
    return success();
  if (parser.parseKeyword("blocks") || parser.parseEqual() ||
      parser.parseLSquare())
    return failure();
  if (succeeded(parser.parseOptionalRSquare()))
    return success();
  do {
    int64_t bound;
    if (parser.parseInteger(bound))
      return failure();
    blocks.push_back(bound);
  } while (succeeded(parser.parseOptionalComma()));
  return parser.parseRSquare();
}

static void printEPPlacement(AsmPrinter &printer, ArrayRef<int64_t> blocks) {
  if (blocks.empty()) {
    printer << "balanced";
    return;
  }
  printer << "blocks = [";
  llvm::interleaveComma(blocks, printer);
  printer << "]";
}

#define GET_ATTRDEF_CLASSES
#include "moe/Dialect/MoE/IR/MoEAttrs.cpp.inc"

void MoEDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "moe/Dialect/MoE/IR/MoEAttrs.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// Float parameters
//===----------------------------------------------------------------------===//

// Floats are parsed in the semantics they are stored in, so that a
// hexadecimal literal is read as that type's bit pattern (this is how
// non-finite values are written) and printing round-trips exactly.
static FailureOr<APFloat> parseFloatIn(AsmParser &parser,
                                       const llvm::fltSemantics &semantics) {
  APFloat value(semantics);
  if (parser.parseFloat(semantics, value))
    return failure();
  return value;
}

FailureOr<APFloat> mlir::moe::detail::parseF32Param(AsmParser &parser) {
  return parseFloatIn(parser, APFloat::IEEEsingle());
}

FailureOr<APFloat> mlir::moe::detail::parseF64Param(AsmParser &parser) {
  return parseFloatIn(parser, APFloat::IEEEdouble());
}

void mlir::moe::detail::printF32Param(AsmPrinter &printer,
                                      const APFloat &value) {
  printer.printFloat(value);
}

void mlir::moe::detail::printF64Param(AsmPrinter &printer,
                                      const APFloat &value) {
  printer.printFloat(value);
}

std::string mlir::moe::detail::formatFloat(double value) {
  if (std::isnan(value))
    return "nan";
  if (std::isinf(value))
    return value < 0 ? "-inf" : "inf";
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

std::string mlir::moe::detail::formatFloat(float value) {
  if (std::isnan(value) || std::isinf(value))
    return formatFloat(static_cast<double>(value));
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

//===----------------------------------------------------------------------===//
// Strategy parsing and printing without the dialect prefix
//===----------------------------------------------------------------------===//

ParseResult
mlir::moe::parseStrategyAttr(AsmParser &parser,
                             RoutingStrategyAttrInterface &strategy) {
  SMLoc loc = parser.getCurrentLocation();
  StringRef mnemonic;
  Attribute attr;
  // Another dialect's strategy is written in full and in parentheses,
  // `(#dialect.name<...>)`: a dialect attribute followed by the op's `:`
  // would read the op's type as its own.
  OptionalParseResult parsed = std::nullopt;
  if (succeeded(parser.parseOptionalLParen()))
    parsed = failed(parser.parseAttribute(attr)) || parser.parseRParen()
                 ? ParseResult(failure())
                 : ParseResult(success());
  else
    parsed = generatedAttributeParser(parser, &mnemonic, Type(), attr);
  if (parsed.has_value() && failed(*parsed))
    return failure();
  strategy = llvm::dyn_cast_if_present<RoutingStrategyAttrInterface>(attr);
  if (strategy)
    return success();
  InFlightDiagnostic diag = parser.emitError(loc)
                            << "expected a routing strategy (top_k, top_p, "
                               "adaptive, threshold, dynamic_k or "
                               "expert_choice), got ";
  if (attr)
    diag << attr;
  else
    diag << "'" << mnemonic << "'";
  return diag;
}

void mlir::moe::printStrategyAttr(AsmPrinter &printer,
                                  RoutingStrategyAttrInterface strategy) {
  if (llvm::isa<MoEDialect>(strategy.getDialect()))
    (void)generatedAttributePrinter(strategy, printer);
  else
    printer << "(" << Attribute(strategy) << ")";
}

FailureOr<StrategyKind>
mlir::moe::getStrategyKind(RoutingStrategyAttrInterface strategy) {
  return llvm::TypeSwitch<Attribute, FailureOr<StrategyKind>>(strategy)
      .Case([](TopKAttr) { return StrategyKind::TopK; })
      .Case([](TopPAttr) { return StrategyKind::TopP; })
      .Case([](AdaptiveAttr) { return StrategyKind::Adaptive; })
      .Case([](ThresholdAttr) { return StrategyKind::Threshold; })
      .Case([](DynamicKAttr) { return StrategyKind::DynamicK; })
      .Case([](ExpertChoiceAttr) { return StrategyKind::ExpertChoice; })
      .Default([](Attribute) { return failure(); });
}

LogicalResult mlir::moe::checkStrategyLowered(
    Operation *op, RoutingStrategyAttrInterface strategy, StringRef what) {
  if (succeeded(getStrategyKind(strategy)))
    return success();
  return op->emitOpError()
         << "strategy " << strategy << " has no lowering in " << what
         << " (lowered: top_k, top_p, adaptive, threshold, dynamic_k, "
            "expert_choice)";
}

//===----------------------------------------------------------------------===//
// Exact capacity arithmetic
//===----------------------------------------------------------------------===//

int64_t mlir::moe::ceilOfScaledRatio(double factor, int64_t numerator,
                                     int64_t denominator) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (!(factor > 0.0) || numerator <= 0 || denominator <= 0)
    return 0;
  if (std::isinf(factor))
    return kMax;
  // factor = mantissa * 2^exponent exactly, with a 53-bit integer mantissa.
  int exponent = 0;
  double fraction = std::frexp(factor, &exponent);
  auto mantissa = static_cast<uint64_t>(std::ldexp(fraction, 53));
  exponent -= 53;
  using u128 = unsigned __int128;
  // numerator < 2^63 and mantissa < 2^53 overflow 128 bits only in theory;
  // saturate if the product does not fit.
  u128 product = static_cast<u128>(mantissa) * static_cast<u128>(numerator);
  if (numerator != 0 && product / static_cast<u128>(numerator) != mantissa)
    return kMax;
  u128 scaled;
  if (exponent >= 0) {
    if (exponent >= 64 || (product >> (127 - exponent)) != 0)
      return kMax;
    scaled = product << exponent;
  } else {
    // ceil(ceil(a / b) / c) == ceil(a / (b * c)) for positive integers.
    int shift = -exponent;
    if (shift >= 128) {
      scaled = 1;
    } else {
      u128 mask = (static_cast<u128>(1) << shift) - 1;
      scaled = (product >> shift) + ((product & mask) != 0 ? 1 : 0);
    }
  }
  u128 den = static_cast<u128>(denominator);
  u128 result = scaled / den + (scaled % den != 0 ? 1 : 0);
  if (result > static_cast<u128>(kMax))
    return kMax;
  return static_cast<int64_t>(result);
}

//===----------------------------------------------------------------------===//
// Strategy verification
//===----------------------------------------------------------------------===//

LogicalResult
TopKAttr::verifyRouting(function_ref<InFlightDiagnostic()> emitError,
                        const RoutingConfig &config) const {
  return success();
}

LogicalResult
TopPAttr::verifyRouting(function_ref<InFlightDiagnostic()> emitError,
                        const RoutingConfig &config) const {
  return success();
}

LogicalResult
AdaptiveAttr::verifyRouting(function_ref<InFlightDiagnostic()> emitError,
                            const RoutingConfig &config) const {
  return success();
}

LogicalResult
ThresholdAttr::verifyRouting(function_ref<InFlightDiagnostic()> emitError,
                             const RoutingConfig &config) const {
  if (getKMin() > config.k)
    return emitError() << "strategy threshold expects k_min <= K = " << config.k
                       << ", got k_min = " << getKMin();
  return success();
}

LogicalResult
DynamicKAttr::verifyRouting(function_ref<InFlightDiagnostic()> emitError,
                            const RoutingConfig &config) const {
  return success();
}

bool DynamicKAttr::usesKPerToken() const { return true; }

LogicalResult
ExpertChoiceAttr::verifyRouting(function_ref<InFlightDiagnostic()> emitError,
                                const RoutingConfig &config) const {
  if (!config.experts.isComputeOnly())
    return emitError() << "strategy expert_choice requires an expert space "
                          "of compute experts only (S = E), got S = "
                       << config.experts.getNumExperts()
                       << ", E = " << config.experts.getCompute();
  if (config.hasSelectionBias)
    return emitError() << "strategy expert_choice does not accept operand "
                          "'selection_bias'; expected no selection bias";
  if (config.capacity)
    return emitError() << "strategy expert_choice does not accept attribute "
                          "'capacity'; expected no capacity (the strategy "
                          "sets its own)";
  if (config.groups)
    return emitError() << "strategy expert_choice does not accept attribute "
                          "'groups'; expected no groups";
  return success();
}

bool ExpertChoiceAttr::dependsOnAllTokens() const { return true; }

//===----------------------------------------------------------------------===//
// Parameter verification
//===----------------------------------------------------------------------===//
//
// The rules that concern one attribute alone are checked wherever it is
// built (parsed, or made through `getChecked` by the C API and Python), so
// `#moe.top_p<p = 2.0>` is rejected on its own; the rules that relate it to
// the op using it (`k_min <= K`, `n` dividing `E`) are the op's.

/// Expert ids are i32: the router width must fit.
static constexpr int64_t kMaxExperts = std::numeric_limits<int32_t>::max();

LogicalResult
ExpertSpaceAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                        int64_t compute, int64_t numNull, int64_t numCopy,
                        int64_t numConst) {
  int64_t counts[] = {compute, numNull, numCopy, numConst};
  auto describe = [&](InFlightDiagnostic diag) -> InFlightDiagnostic {
    diag << "compute = " << compute << ", null = " << numNull
         << ", copy = " << numCopy << ", const = " << numConst;
    return diag;
  };
  if (compute < 1 || llvm::any_of(counts, [](int64_t c) { return c < 0; }))
    return describe(emitError() << "#moe.experts expects at least one compute "
                                   "expert and non-negative counts, got ");
  // Each count is at most 2^31 - 1, so the sum cannot overflow.
  if (llvm::any_of(counts, [](int64_t c) { return c > kMaxExperts; }) ||
      compute + numNull + numCopy + numConst > kMaxExperts)
    return describe(emitError()
                    << "#moe.experts expects at most " << kMaxExperts
                    << " experts in all (ids are i32), got ");
  return success();
}

LogicalResult TopPAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               APFloat p) {
  float value = p.convertToFloat();
  if (!(value > 0.0f && value <= 1.0f))
    return emitError() << "#moe.top_p expects 0 < p <= 1, got p = "
                       << detail::formatFloat(value);
  return success();
}

LogicalResult AdaptiveAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                   APFloat tau) {
  float value = tau.convertToFloat();
  if (!(value >= 0.0f))
    return emitError() << "#moe.adaptive expects tau >= 0, got tau = "
                       << detail::formatFloat(value);
  return success();
}

LogicalResult
ThresholdAttr::verify(function_ref<InFlightDiagnostic()> emitError, APFloat tau,
                      int64_t kMin) {
  float value = tau.convertToFloat();
  if (!std::isfinite(value))
    return emitError() << "#moe.threshold expects a finite tau, got tau = "
                       << detail::formatFloat(value);
  if (kMin < 0)
    return emitError() << "#moe.threshold expects k_min >= 0, got k_min = "
                       << kMin;
  return success();
}

LogicalResult
ExpertChoiceAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                         APFloat capacityFactor) {
  double value = capacityFactor.convertToDouble();
  if (!(value > 0.0))
    return emitError() << "#moe.expert_choice expects capacity_factor > 0, "
                          "got capacity_factor = "
                       << detail::formatFloat(value);
  return success();
}

LogicalResult CapacityAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                   APFloat factor, CapacityPriority priority) {
  double value = factor.convertToDouble();
  if (!(value > 0.0))
    return emitError() << "#moe.capacity expects factor > 0, got factor = "
                       << detail::formatFloat(value);
  return success();
}

LogicalResult GroupsAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                 int64_t n, int64_t top, GroupScore score) {
  if (n < 1)
    return emitError() << "#moe.groups expects n >= 1, got n = " << n;
  if (top < 1 || top > n)
    return emitError() << "#moe.groups expects 1 <= top <= n = " << n
                       << ", got top = " << top;
  return success();
}

LogicalResult MatmulScheduleAttr::verify(
    function_ref<InFlightDiagnostic()> emitError, std::optional<int64_t> lanes,
    std::optional<int64_t> cols, std::optional<int64_t> rows, std::optional<int64_t> tailRows,
    std::optional<int64_t> tailPanels, std::optional<int64_t> chunkRows,
    std::optional<int64_t> depthBlock, std::optional<int64_t> prefetch,
    std::optional<int64_t> prefetchMinRows, std::optional<int64_t> ffnRows) {
  if (lanes && *lanes != 4 && *lanes != 8 && *lanes != 16)
    return emitError() << "#moe.matmul_schedule expects lanes = 4, 8 or 16 "
                          "(a panel of 32 columns in whole vectors), got "
                          "lanes = "
                       << *lanes;
  if (cols && *cols != 4 && *cols != 8 && *cols != 16 && *cols != 32)
    return emitError() << "#moe.matmul_schedule expects cols = 4, 8, 16 or 32 "
                          "(blocks side by side in a panel of 32 columns), "
                          "got cols = "
                       << *cols;
  if (cols && lanes && *cols < *lanes)
    return emitError() << "#moe.matmul_schedule expects cols >= lanes (a "
                          "block of whole vectors), got cols = "
                       << *cols << ", lanes = " << *lanes;
  struct Range {
    StringLiteral name;
    std::optional<int64_t> value;
    int64_t min, max;
  };
  Range ranges[] = {{"rows", rows, 1, 16},
                    {"tail_rows", tailRows, 0, 16},
                    {"tail_panels", tailPanels, 1, 8},
                    {"chunk_rows", chunkRows, 1, 4096},
                    {"depth_block", depthBlock, 0, 4096},
                    {"prefetch", prefetch, 0, 1024},
                    {"prefetch_min_rows", prefetchMinRows, 1, 16},
                    {"ffn_rows", ffnRows, 1, 4096}};
  for (const Range &range : ranges)
    if (range.value && (*range.value < range.min || *range.value > range.max))
      return emitError() << "#moe.matmul_schedule expects " << range.min
                         << " <= " << range.name << " <= " << range.max
                         << ", got " << range.name << " = " << *range.value;
  if (chunkRows && depthBlock && *chunkRows * *depthBlock > (int64_t(1) << 20))
    return emitError() << "#moe.matmul_schedule expects chunk_rows * "
                          "depth_block <= 1048576 (the f32 pack of A), got "
                       << *chunkRows << " * " << *depthBlock;
  return success();
}

LogicalResult CPUTargetAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                    StringRef cpu, StringRef features) {
  if (cpu.empty())
    return emitError() << "#moe.cpu_target expects a CPU name";
  if (features.empty())
    return success();
  SmallVector<StringRef> list;
  features.split(list, ',');
  for (StringRef feature : list)
    if (feature.size() < 2 || (feature[0] != '+' && feature[0] != '-'))
      return emitError() << "#moe.cpu_target expects features as '+name' or "
                            "'-name' separated by commas, got '"
                         << feature << "'";
  return success();
}

bool CPUTargetAttr::hasFeature(StringRef name) const {
  SmallVector<StringRef> list;
  getFeatures().split(list, ',');
  bool enabled = false;
  for (StringRef feature : list)
    if (feature.drop_front() == name)
      enabled = feature.front() == '+';
  return enabled;
}

LogicalResult
EPPlacementAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                        ArrayRef<int64_t> blocks) {
  if (blocks.empty())
    return success();
  if (blocks.size() < 2)
    return emitError() << "#moe.ep_placement: 'blocks' needs at least two "
                          "bounds (one rank), got "
                       << blocks.size();
  if (blocks.front() != 0)
    return emitError() << "#moe.ep_placement: the first bound must be 0, got "
                       << blocks.front();
  for (size_t r = 0; r + 1 < blocks.size(); ++r)
    if (blocks[r + 1] < blocks[r])
      return emitError() << "#moe.ep_placement: bound " << r + 1 << " ("
                         << blocks[r + 1] << ") is below bound " << r << " ("
                         << blocks[r] << "): rank " << r
                         << " would hold a negative number of experts";
  if (blocks.back() > kMaxExperts)
    return emitError() << "#moe.ep_placement: the last bound ("
                       << blocks.back() << ") exceeds " << kMaxExperts;
  return success();
}
