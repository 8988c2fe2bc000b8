//===- FuzzSupport.cpp - Shared pieces of the moe fuzz targets --*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "FuzzSupport.h"

#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Pipelines/Pipelines.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/OperationSupport.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>
#include <iterator>
#include <limits>
#include <mutex>
#include <random>
#include <string>

extern "C" size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t maxSize);

using namespace mlir;
using namespace mlir::moe::fuzz;

//===----------------------------------------------------------------------===//
// Context
//===----------------------------------------------------------------------===//

struct FuzzContext::Handler {
  explicit Handler(MLIRContext *context)
      : handler(context, [this](Diagnostic &diag) {
          if (diag.getSeverity() == DiagnosticSeverity::Error && !firstError)
            if (auto loc = llvm::dyn_cast<FileLineColLoc>(diag.getLocation()))
              firstError = loc.getLine();
          return success();
        }) {}
  unsigned firstError = 0;
  ScopedDiagnosticHandler handler;
};

unsigned FuzzContext::takeFirstErrorLine() {
  unsigned line = handler->firstError;
  handler->firstError = 0;
  return line;
}

static const DialectRegistry &registry() {
  static DialectRegistry *instance = [] {
    auto *r = new DialectRegistry();
    moe::registerPipelineDependencies(*r);
    return r;
  }();
  return *instance;
}

FuzzContext::FuzzContext()
    : context(std::make_unique<MLIRContext>(registry(),
                                            MLIRContext::Threading::DISABLED)),
      handler(std::make_unique<Handler>(context.get())) {
  context->allowUnregisteredDialects(false);
}

FuzzContext::~FuzzContext() = default;

OwningOpRef<ModuleOp> FuzzContext::parse(llvm::StringRef text) {
  ParserConfig config(context.get(), /*verifyAfterParse=*/false);
  // MLIR's lexer relies on a NUL after the buffer, as files and Python
  // strings have (libFuzzer's input has none: the lexer reads past it at an
  // unterminated literal).
  std::string terminated = text.str();
  return parseSourceString<ModuleOp>(terminated, config, "fuzz-input");
}

void mlir::moe::fuzz::initializeOnce() {
  static std::once_flag flag;
  std::call_once(flag, [] {
    llvm::InitializeAllTargetInfos();
    llvm::InitializeAllTargets();
    llvm::InitializeAllTargetMCs();
    llvm::InitializeAllAsmPrinters();
    registerTransformsPasses();
    moe::registerMoEPasses();
    moe::registerMoEConversionPasses();
    moe::registerMoEPipelines();
  });
}

//===----------------------------------------------------------------------===//
// The IR mutator
//===----------------------------------------------------------------------===//

namespace {

/// Values the mutations draw from: boundaries of the contract's rules, of
/// i32 ids and of size arithmetic.
const char *const kIntegers[] = {"0",
                                 "1",
                                 "2",
                                 "3",
                                 "4",
                                 "7",
                                 "8",
                                 "31",
                                 "32",
                                 "33",
                                 "-1",
                                 "-2",
                                 "65536",
                                 "65537",
                                 "2147483647",
                                 "2147483648",
                                 "4294967296",
                                 "-2147483648",
                                 "281474976710656",
                                 "4611686018427387904",
                                 "9223372036854775807",
                                 "-9223372036854775808"};
const char *const kFloats[] = {"0.0",
                               "-0.0",
                               "1.0",
                               "-1.0",
                               "0.5",
                               "2.0",
                               "1.0e-45",
                               "1.0e+38",
                               "1.0e+19",
                               "1.0e+300",
                               "0x7FC00000",
                               "0x7F800000",
                               "0xFF800000",
                               "0x7FF8000000000000",
                               "0x7FF0000000000000",
                               "1.000001",
                               "0.999999"};
/// Attributes swapped in whole (strategy, capacity, groups, experts,
/// activation, ...).
const char *const kAttributes[] = {
    "#moe.top_k",
    "#moe.top_p<p = 2.0>",
    "#moe.top_p<p = 0x7FC00000>",
    "#moe.adaptive<tau = -1.0>",
    "#moe.threshold<tau = 0x7F800000, k_min = -1>",
    "#moe.threshold<tau = 0.5, k_min = 100>",
    "#moe.dynamic_k",
    "#moe.expert_choice<capacity_factor = 1.0e+300>",
    "#moe.expert_choice<capacity_factor = 0.0>",
    "#moe.capacity<factor = 1.0e+300, priority = score>",
    "#moe.capacity<factor = -1.0, priority = position>",
    "#moe.groups<n = 0, top = 1>",
    "#moe.groups<n = 4, top = 9>",
    "#moe.groups<n = 8, top = 8, score = max>",
    "#moe.experts<compute = 1>",
    "#moe.experts<compute = 2147483647, null = 2147483647>",
    "#moe.experts<compute = 8, null = 4, copy = 2, const = 2>",
    "#moe<activation gelu>",
    "#moe<normalize non_null>",
    "#moe<scoring none>",
    "unit",
    "0 : i64",
    "-1 : i64",
    "2147483648 : i64",
    "0x7FC00000 : f32",
    "array<i32: 1, 1, 0, 0, 0>",
    "array<i32: 0, 1, 1, 1, 1, 0, 0>",
    "\"x y\"",
};
const char *const kNames[] = {"x y",
                              "",
                              "1st",
                              "a/b",
                              "a.b",
                              "\xc3\xa9t\xc3\xa9",
                              "$x",
                              "_",
                              "name with \\\"quote\\\"",
                              "very_long_name_very_long_name_very_long_name_"
                              "very_long_name_very_long_name"};

class Mutator {
public:
  Mutator(ModuleOp module, unsigned seed) : module(module), rng(seed) {
    collect();
  }

  /// Applies 1-3 random mutations; false when none applied.
  bool run() {
    if (ops.empty())
      return false;
    bool changed = false;
    unsigned count = 1 + uniform(3);
    for (unsigned i = 0; i < count * 4 && count; ++i)
      if (mutateOnce()) {
        changed = true;
        --count;
      }
    if (changed && uniform(10) < 8)
      repairFunctionTypes();
    return changed;
  }

private:
  unsigned uniform(unsigned n) {
    return n ? std::uniform_int_distribution<unsigned>(0, n - 1)(rng) : 0;
  }
  template <typename T, size_t N> const T &pick(const T (&array)[N]) {
    return array[uniform(N)];
  }
  template <typename T> T pick(llvm::ArrayRef<T> array) {
    return array[uniform(array.size())];
  }
  /// A moe op most of the time (the code under test), any op otherwise.
  Operation *pickOp() {
    if (!moeOps.empty() && uniform(10) < 7)
      return pick<Operation *>(moeOps);
    return pick<Operation *>(ops);
  }
  MLIRContext *context() { return module.getContext(); }

  bool mutateOnce() {
    // An erase may have removed the last op.
    if (ops.empty())
      return false;
    switch (uniform(12)) {
    case 0:
    case 1:
    case 2:
      return mutateNumberInProperty();
    case 3:
      return replaceProperty();
    case 4:
      return dropProperty();
    case 5:
    case 6:
      return mutateType();
    case 7:
      return mutateSegmentSizes();
    case 8:
      return replaceOperand();
    case 9:
      return changeOperandCount();
    case 10:
      return renameFunction();
    default:
      return cloneOrErase();
    }
  }

  /// The op's inherent attributes (properties) as a dictionary.
  DictionaryAttr properties(Operation *op) {
    return llvm::dyn_cast_or_null<DictionaryAttr>(
        op->getPropertiesAsAttribute());
  }
  bool setProperties(Operation *op, NamedAttrList attrs) {
    auto emitError = [op]() { return op->emitError(); };
    return succeeded(op->setPropertiesFromAttribute(
        attrs.getDictionary(context()), emitError));
  }

  /// Replaces one inherent attribute (property) of a random op by
  /// `newValue(entry)`, or removes it with `drop`; false when the op has
  /// none, `newValue` gives null or the op refuses the result.
  bool changeProperty(llvm::function_ref<Attribute(NamedAttribute)> newValue,
                      bool drop = false) {
    Operation *op = pickOp();
    DictionaryAttr dict = properties(op);
    if (!dict || dict.empty())
      return false;
    NamedAttrList attrs(dict);
    NamedAttribute entry = dict.getValue()[uniform(dict.size())];
    if (drop) {
      attrs.erase(entry.getName());
    } else {
      Attribute value = newValue(entry);
      if (!value)
        return false;
      attrs.set(entry.getName(), value);
    }
    return setProperties(op, attrs);
  }

  /// One numeric literal in the text of an attribute replaced by an
  /// interesting value, parsed back.
  Attribute mutateNumber(Attribute attr) {
    std::string text;
    llvm::raw_string_ostream os(text);
    attr.print(os);
    // Numeric literals that do not continue an identifier (`i32`, `x8`).
    llvm::SmallVector<std::pair<size_t, size_t>> spans;
    for (size_t i = 0; i < text.size(); ++i) {
      bool start =
          llvm::isDigit(text[i]) ||
          (text[i] == '-' && i + 1 < text.size() && llvm::isDigit(text[i + 1]));
      if (!start || (i > 0 && (llvm::isAlnum(text[i - 1]) ||
                               text[i - 1] == '_' || text[i - 1] == '.')))
        continue;
      size_t end = i + 1;
      while (end < text.size() &&
             (llvm::isAlnum(text[end]) || text[end] == '.' ||
              ((text[end] == '+' || text[end] == '-') &&
               (text[end - 1] == 'e' || text[end - 1] == 'E'))))
        ++end;
      spans.push_back({i, end});
      i = end;
    }
    if (spans.empty())
      return {};
    auto [begin, end] = spans[uniform(spans.size())];
    bool isFloat = text.substr(begin, end - begin).find_first_of(".eEx") !=
                   std::string::npos;
    std::string replacement = (isFloat ? uniform(4) != 0 : uniform(4) == 0)
                                  ? pick(kFloats)
                                  : pick(kIntegers);
    text = text.substr(0, begin) + replacement + text.substr(end);
    return parseAttribute(text, context());
  }

  bool mutateNumberInProperty() {
    return changeProperty(
        [&](NamedAttribute entry) { return mutateNumber(entry.getValue()); });
  }

  /// An attribute from the pool, or the same attribute of another op
  /// (cross-pollination).
  bool replaceProperty() {
    return changeProperty([&](NamedAttribute entry) -> Attribute {
      if (uniform(3) == 0)
        if (DictionaryAttr other = properties(pick<Operation *>(ops)))
          if (Attribute value = other.get(entry.getName()))
            return value;
      return parseAttribute(pick(kAttributes), context());
    });
  }

  bool dropProperty() {
    return changeProperty([](NamedAttribute) { return Attribute(); },
                          /*drop=*/true);
  }

  /// operandSegmentSizes with one group moved to another: the sum stays
  /// right, so ODS accepts it and the op verifier must not read past a
  /// segment.
  bool mutateSegmentSizes() {
    Operation *op = pickOp();
    DictionaryAttr dict = properties(op);
    if (!dict)
      return false;
    auto sizes = llvm::dyn_cast_or_null<DenseI32ArrayAttr>(
        dict.get("operandSegmentSizes"));
    if (!sizes || sizes.empty())
      return false;
    llvm::SmallVector<int32_t> values(sizes.asArrayRef());
    unsigned from = uniform(values.size()), to = uniform(values.size());
    if (uniform(4) == 0) {
      values[from] = static_cast<int32_t>(uniform(4)) - 1; // -1..2
    } else {
      if (values[from] == std::numeric_limits<int32_t>::min() ||
          values[to] == std::numeric_limits<int32_t>::max())
        return false;
      values[from] -= 1;
      values[to] += 1;
    }
    NamedAttrList attrs(dict);
    attrs.set("operandSegmentSizes", DenseI32ArrayAttr::get(context(), values));
    return setProperties(op, attrs);
  }

  Type mutateShapedType(Type type) {
    Builder b(context());
    Type elements[] = {b.getF32Type(), b.getF16Type(),   b.getBF16Type(),
                       b.getF64Type(), b.getI32Type(),   b.getI64Type(),
                       b.getI1Type(),  b.getIndexType(), b.getI8Type()};
    auto tensor = llvm::dyn_cast<RankedTensorType>(type);
    if (!tensor)
      return RankedTensorType::get({ShapedType::kDynamic, 8},
                                   elements[uniform(std::size(elements))]);
    llvm::SmallVector<int64_t> shape(tensor.getShape());
    Type element = tensor.getElementType();
    switch (uniform(6)) {
    case 0:
    case 1:
    case 2: {
      if (shape.empty())
        return {};
      int64_t &dim = shape[uniform(shape.size())];
      int64_t sizes[] = {
          ShapedType::kDynamic,
          0,
          1,
          ShapedType::isDynamic(dim) ? 4 : dim + 1,
          ShapedType::isDynamic(dim) ? 16 : std::max<int64_t>(dim - 1, 0),
          2147483648,
          int64_t(1) << 40,
          int64_t(1) << 62};
      dim = sizes[uniform(std::size(sizes))];
      break;
    }
    case 3:
      element = elements[uniform(std::size(elements))];
      break;
    case 4:
      if (shape.size() < 5)
        shape.insert(shape.begin() + uniform(shape.size() + 1),
                     uniform(2) ? ShapedType::kDynamic : 2);
      break;
    default:
      if (shape.empty())
        return UnrankedTensorType::get(element);
      shape.erase(shape.begin() + uniform(shape.size()));
      break;
    }
    return RankedTensorType::get(shape, element);
  }

  bool mutateType() {
    if (values.empty())
      return false;
    Value value = pick<Value>(values);
    Type type = mutateShapedType(value.getType());
    if (!type || type == value.getType())
      return false;
    value.setType(type);
    return true;
  }

  /// A value usable at `op`: an argument of the enclosing function or a
  /// result of an op before it in its block.
  Value dominatingValue(Operation *op) {
    llvm::SmallVector<Value> candidates;
    if (auto func = op->getParentOfType<FunctionOpInterface>())
      if (!func.getFunctionBody().empty())
        for (BlockArgument arg : func.getFunctionBody().front().getArguments())
          candidates.push_back(arg);
    for (Operation *before = op->getPrevNode(); before;
         before = before->getPrevNode())
      for (Value v : before->getResults())
        candidates.push_back(v);
    if (candidates.empty())
      return {};
    return pick<Value>(candidates);
  }

  bool replaceOperand() {
    Operation *op = pickOp();
    if (op->getNumOperands() == 0)
      return false;
    unsigned index = uniform(op->getNumOperands());
    if (uniform(3) == 0 && op->getNumOperands() > 1) {
      unsigned other = uniform(op->getNumOperands());
      Value a = op->getOperand(index), b = op->getOperand(other);
      op->setOperand(index, b);
      op->setOperand(other, a);
      return a != b;
    }
    Value value = dominatingValue(op);
    if (!value || value == op->getOperand(index))
      return false;
    op->setOperand(index, value);
    return true;
  }

  bool changeOperandCount() {
    Operation *op = pickOp();
    if (uniform(2) == 0 && op->getNumOperands() > 0) {
      op->eraseOperand(uniform(op->getNumOperands()));
      return true;
    }
    Value value = dominatingValue(op);
    if (!value)
      return false;
    op->insertOperands(uniform(op->getNumOperands() + 1), value);
    return true;
  }

  bool renameFunction() {
    llvm::SmallVector<func::FuncOp> funcs(module.getOps<func::FuncOp>());
    if (funcs.empty())
      return false;
    func::FuncOp func = pick<func::FuncOp>(funcs);
    func.setSymName(pick(kNames));
    return true;
  }

  bool cloneOrErase() {
    Operation *op = pickOp();
    if (op->hasTrait<OpTrait::IsTerminator>() ||
        llvm::isa<FunctionOpInterface>(op))
      return false;
    if (uniform(2) == 0) {
      OpBuilder b(op);
      b.setInsertionPointAfter(op);
      b.clone(*op);
      collect();
      return true;
    }
    if (!op->use_empty())
      return false;
    op->erase();
    collect();
    return true;
  }

  /// The ops and values the mutations pick from (again after an erase).
  void collect() {
    ops.clear();
    moeOps.clear();
    values.clear();
    module.walk([&](Operation *op) {
      if (op == module.getOperation())
        return;
      ops.push_back(op);
      if (llvm::isa_and_nonnull<moe::MoEDialect>(op->getDialect()))
        moeOps.push_back(op);
      for (Value v : op->getResults())
        values.push_back(v);
      for (Region &region : op->getRegions())
        for (Block &block : region)
          for (BlockArgument arg : block.getArguments())
            values.push_back(arg);
    });
  }

  /// Function types follow their entry block and return: a mutated
  /// argument or result type otherwise only trips the func verifier.
  void repairFunctionTypes() {
    for (func::FuncOp func : module.getOps<func::FuncOp>()) {
      // The IR is not verified: a dropped `function_type` is null here.
      if (!func.getFunctionTypeAttr() || func.isExternal())
        continue;
      Block &entry = func.getBody().front();
      llvm::SmallVector<Type> results;
      // Parsed generic IR need not end its block with a terminator.
      if (auto ret = llvm::dyn_cast_if_present<func::ReturnOp>(
              entry.empty() ? nullptr : &entry.back()))
        results = llvm::to_vector(ret.getOperandTypes());
      else
        results = llvm::to_vector(func.getResultTypes());
      func.setFunctionType(
          FunctionType::get(context(), entry.getArgumentTypes(), results));
    }
  }

  ModuleOp module;
  std::mt19937 rng;
  std::vector<Operation *> ops, moeOps;
  std::vector<Value> values;
};

} // namespace

size_t mlir::moe::fuzz::mutateIR(uint8_t *data, size_t size, size_t maxSize,
                                 unsigned seed) {
  // One in five mutations is a byte mutation even when the input parses:
  // the custom-format parsers of the seeds need byte-level variation too.
  if (seed % 5 == 0)
    return LLVMFuzzerMutate(data, size, maxSize);
  FuzzContext context;
  OwningOpRef<ModuleOp> module =
      context.parse(llvm::StringRef(reinterpret_cast<char *>(data), size));
  if (!module)
    return LLVMFuzzerMutate(data, size, maxSize);
  Mutator mutator(*module, seed);
  if (!mutator.run())
    return LLVMFuzzerMutate(data, size, maxSize);
  std::string text;
  llvm::raw_string_ostream os(text);
  OpPrintingFlags flags;
  flags.printGenericOpForm().assumeVerified();
  module->print(os, flags);
  if (text.size() > maxSize)
    return LLVMFuzzerMutate(data, size, maxSize);
  std::memcpy(data, text.data(), text.size());
  return text.size();
}
