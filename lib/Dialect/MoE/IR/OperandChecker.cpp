//===- OperandChecker.cpp - Shape and type checks for verifiers -*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "OperandChecker.h"
#include "moe/Dialect/MoE/IR/MoETraits.h"

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>

using namespace mlir;
using namespace mlir::moe::detail;

static bool isAccepted(Type type, ElementKind kind) {
  switch (kind) {
  case ElementKind::Float:
    return type.isF32() || type.isF16() || type.isBF16();
  case ElementKind::F32:
    return type.isF32();
  case ElementKind::I32:
    return type.isSignlessInteger(32);
  case ElementKind::I8:
    return type.isSignlessInteger(8);
  }
  return false;
}

static llvm::StringRef describe(ElementKind kind) {
  switch (kind) {
  case ElementKind::Float:
    return "f32|f16|bf16";
  case ElementKind::F32:
    return "f32";
  case ElementKind::I32:
    return "i32";
  case ElementKind::I8:
    return "i8";
  }
  return "";
}

static std::string describeDim(const Dim &dim) {
  if (dim.symbol.empty())
    return std::to_string(dim.offset);
  std::string text = dim.symbol.str();
  if (dim.offset > 0)
    text += "+" + std::to_string(dim.offset);
  else if (dim.offset < 0)
    text += std::to_string(dim.offset);
  return text;
}

/// Renders the expected type, e.g. `tensor<T x H x f32|f16|bf16>`.
static std::string describeShape(llvm::ArrayRef<Dim> dims, ElementKind kind) {
  std::string text = "tensor<";
  for (const Dim &dim : dims)
    text += describeDim(dim) + " x ";
  text += describe(kind).str() + ">";
  return text;
}

/// The largest buffer (in bytes) a static type may describe.
static constexpr int64_t kMaxBytes = int64_t(1) << 48;

void OperandChecker::bind(llvm::StringRef symbol, int64_t value,
                          llvm::StringRef source) {
  bindings[symbol] = Binding{value, source.str()};
}

LogicalResult OperandChecker::check(llvm::StringRef role, llvm::StringRef name,
                                    Value value, llvm::ArrayRef<Dim> dims,
                                    ElementKind kind) {
  if (!value)
    return success();
  auto type = llvm::dyn_cast<RankedTensorType>(value.getType());
  if (!type || type.getRank() != static_cast<int64_t>(dims.size()) ||
      !isAccepted(type.getElementType(), kind))
    return op->emitOpError()
           << role << " '" << name << "' must be a "
           << describeShape(dims, kind) << ", got " << value.getType();

  // A buffer of more than 2^48 bytes cannot exist (no 64-bit machine's user
  // address space is larger, and past 2^63 the size computation of its
  // allocation would overflow): reject the type rather than emit code for it.
  // Dynamic dimensions count as 1: the static ones alone must fit.
  int64_t bytes = std::max<int64_t>(1, type.getElementTypeBitWidth() / 8);
  for (int64_t size : type.getShape()) {
    if (ShapedType::isDynamic(size))
      continue;
    if (size != 0 && bytes > kMaxBytes / size)
      return op->emitOpError()
             << role << " '" << name << "' of type " << type
             << " is larger than 2^48 bytes; no buffer can hold it";
    bytes *= size;
  }

  for (auto [index, dim] : llvm::enumerate(dims)) {
    if (type.isDynamicDim(index))
      continue;
    int64_t size = type.getDimSize(index);
    if (dim.symbol.empty()) {
      if (size != dim.offset)
        return op->emitOpError()
               << role << " '" << name << "' dimension " << index << " must be "
               << dim.offset << ", got " << size;
      continue;
    }
    auto it = bindings.find(dim.symbol);
    if (it == bindings.end()) {
      if (size - dim.offset < 0)
        return op->emitOpError()
               << role << " '" << name << "' dimension " << index << " must be "
               << describeDim(dim) << " >= " << dim.offset << ", got " << size;
      std::string source;
      llvm::raw_string_ostream os(source);
      os << "dimension " << index << " of " << role << " '" << name << "'";
      bind(dim.symbol, size - dim.offset, source);
      continue;
    }
    int64_t expected = it->second.value + dim.offset;
    if (size != expected)
      return op->emitOpError()
             << role << " '" << name << "' dimension " << index << " must be "
             << describeDim(dim) << " = " << expected << " (" << dim.symbol
             << " from " << it->second.source << "), got " << size;
  }
  return success();
}

LogicalResult OperandChecker::blocks(llvm::StringRef symbol,
                                     llvm::StringRef blocks, int64_t factor,
                                     llvm::StringRef why) {
  auto whole = bindings.find(symbol);
  auto counted = bindings.find(blocks);
  if (whole != bindings.end()) {
    int64_t value = whole->second.value;
    if (value % factor != 0)
      return op->emitOpError()
             << symbol << " = " << value << " (from " << whole->second.source
             << ") must be a multiple of " << factor << " for " << why;
    if (counted == bindings.end()) {
      bind(blocks, value / factor,
           symbol.str() + " / " + std::to_string(factor) + ", " + symbol.str() +
               " from " + whole->second.source);
      return success();
    }
    if (counted->second.value * factor != value)
      return op->emitOpError()
             << blocks << " = " << counted->second.value << " (from "
             << counted->second.source << ") must be " << symbol << " / "
             << factor << " = " << value / factor << " (" << symbol
             << " from " << whole->second.source << ")";
    return success();
  }
  if (counted != bindings.end())
    bind(symbol, counted->second.value * factor,
         std::to_string(factor) + " x " + blocks.str() + ", " + blocks.str() +
             " from " + counted->second.source);
  return success();
}

LogicalResult OperandChecker::sameElementType(llvm::StringRef role,
                                              llvm::StringRef name, Value value,
                                              llvm::StringRef referenceName,
                                              Value reference) {
  Type expected = llvm::cast<ShapedType>(reference.getType()).getElementType();
  Type actual = llvm::cast<ShapedType>(value.getType()).getElementType();
  if (actual != expected)
    return op->emitOpError()
           << role << " '" << name << "' must have element type " << expected
           << " (the element type of '" << referenceName << "'), got "
           << actual;
  return success();
}

LogicalResult mlir::moe::detail::verifyOperandSegments(
    Operation *op, llvm::ArrayRef<int32_t> sizes, llvm::StringRef groups) {
  llvm::SmallVector<llvm::StringRef> names;
  groups.split(names, ' ');
  assert(names.size() == sizes.size() && "one name per ODS operand group");
  for (auto [size, name] : llvm::zip(sizes, names)) {
    bool optional = name.consume_back("?");
    if (optional ? size <= 1 : size == 1)
      continue;
    return op->emitOpError()
           << "operand '" << name << "' "
           << (optional ? "is optional and takes 0 or 1 value"
                        : "is required and takes exactly 1 value")
           << ", but 'operandSegmentSizes' gives it " << size;
  }
  return success();
}
