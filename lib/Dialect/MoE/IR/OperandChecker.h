//===- OperandChecker.h - Shape and type checks for verifiers ---*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// A small helper for the MoE op verifiers. The semantics contract describes
// every operand with symbolic dimensions (`x[T,H]`, `w_up[E,H,F]`,
// `offsets[E+1]`); the checker binds each symbol to the first static size it
// sees and reports any disagreement, naming the op, the operand, the expected
// value and where that value came from.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_DIALECT_MOE_IR_OPERANDCHECKER_H
#define MOE_LIB_DIALECT_MOE_IR_OPERANDCHECKER_H

#include "mlir/IR/Operation.h"
#include "mlir/IR/Value.h"
#include "llvm/ADT/StringMap.h"

#include <string>

namespace mlir {
namespace moe {
namespace detail {

/// The element types an operand may have.
enum class ElementKind {
  /// f32, f16 or bf16 (activations and weights).
  Float,
  /// f32 only (logits, scores, route weights, selection bias).
  F32,
  /// i32 only (ids, offsets, slot rows, per-token counts).
  I32,
  /// i8 only (the bytes of quantized weights).
  I8,
};

/// One dimension of the contract: a symbol plus a constant (`E+1`), or a
/// literal when `symbol` is empty.
struct Dim {
  Dim(const char *symbol, int64_t offset = 0)
      : symbol(symbol), offset(offset) {}
  static Dim literal(int64_t value) { return Dim("", value); }
  llvm::StringRef symbol;
  int64_t offset;
};

class OperandChecker {
public:
  explicit OperandChecker(Operation *op) : op(op) {}

  /// Fixes `symbol` to `value`; `source` says where the value comes from,
  /// e.g. "attribute 'k'".
  void bind(llvm::StringRef symbol, int64_t value, llvm::StringRef source);

  /// Checks that `value` (when present) is a ranked tensor of the given
  /// symbolic shape and element kind. Binds symbols that are still free.
  LogicalResult operand(llvm::StringRef name, Value value,
                        llvm::ArrayRef<Dim> dims, ElementKind kind) {
    return check("operand", name, value, dims, kind);
  }
  LogicalResult result(llvm::StringRef name, Value value,
                       llvm::ArrayRef<Dim> dims, ElementKind kind) {
    return check("result", name, value, dims, kind);
  }

  /// Relates `symbol` to `blocks` = `symbol` / `factor` (a dimension counted
  /// in blocks of `factor`): binds whichever is free from the other, and
  /// checks that a bound `symbol` is a multiple of `factor` (`why` says
  /// who needs it) and that both agree.
  LogicalResult blocks(llvm::StringRef symbol, llvm::StringRef blocks,
                       int64_t factor, llvm::StringRef why);

  /// Checks that `value` has the element type of `reference`.
  LogicalResult sameElementType(llvm::StringRef role, llvm::StringRef name,
                                Value value, llvm::StringRef referenceName,
                                Value reference);

private:
  LogicalResult check(llvm::StringRef role, llvm::StringRef name, Value value,
                      llvm::ArrayRef<Dim> dims, ElementKind kind);

  struct Binding {
    int64_t value;
    std::string source;
  };
  Operation *op;
  llvm::StringMap<Binding> bindings;
};

} // namespace detail
} // namespace moe
} // namespace mlir

#endif // MOE_LIB_DIALECT_MOE_IR_OPERANDCHECKER_H
