//===- LoopEmitter.h - Terse builder for loop-level code --------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The moe lowerings write loop nests over memrefs (scf + memref + arith +
// math). LoopEmitter wraps an ImplicitLocOpBuilder with the handful of
// operations they use, so that a kernel reads like the algorithm of the
// semantics contract rather than like builder boilerplate.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_UTILS_LOOPEMITTER_H
#define MOE_DIALECT_MOE_UTILS_LOOPEMITTER_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/ADT/STLFunctionalExtras.h"

#include <functional>

namespace mlir {
namespace moe {
class LoopEmitter {
public:
  LoopEmitter(OpBuilder &builder, Location loc) : b(loc, builder) {}

  // Note: C++ leaves the evaluation order of function arguments unspecified,
  // so `e.add(e.load(a), e.load(b))` may emit the two loads in either order
  // depending on the compiler. Where the order matters for readability or
  // tests, emit into named locals first.

  ImplicitLocOpBuilder b;

  /// When set, alloc() (and what builds on it) creates buffers with this
  /// instead of memref.alloc: the GPU lowering allocates device buffers on
  /// the host and per-thread scratch (memref.alloca) inside kernels.
  std::function<Value(MemRefType, ValueRange)> allocator;

  //===--------------------------------------------------------------------===//
  // Constants
  //===--------------------------------------------------------------------===//
  Value index(int64_t value);
  Value i32(int64_t value);
  Value i64(int64_t value);
  Value f32(float value);
  Value f64(double value);
  Value boolean(bool value);
  /// A float constant of type `type`.
  Value floatConst(Type type, double value);
  /// An integer constant of type `type` (any width, index included).
  Value intConst(Type type, int64_t value);

  //===--------------------------------------------------------------------===//
  // Buffers
  //===--------------------------------------------------------------------===//
  /// The buffer of an operand (read only), with a fully dynamic strided
  /// layout (any buffer fits without a copy). A ranked tensor is bridged
  /// with bufferization.to_buffer (moe-to-loops); a memref (what
  /// one-shot-bufferize passes) is cast to that layout.
  Value buffer(Value operand);
  /// The buffer of an operand (read only, as buffer()) with a unit innermost
  /// stride (as vector loads need) and any offset and outer strides: a
  /// buffer with another innermost stride is copied, after a runtime check.
  Value unitStrideBuffer(Value operand);
  /// A copy of a buffer in a new one with the identity layout (in the same
  /// memory space), element by element.
  Value copyToNewBuffer(Value buffer);
  /// Copies buffer `from` into `to` (same shape), element by element.
  void copy(Value from, Value to);
  /// A new buffer; `dynamicSizes` lists the sizes of the dynamic dimensions.
  Value alloc(Type elementType, ArrayRef<int64_t> shape,
              ValueRange dynamicSizes = {});
  /// A new buffer shaped like the ranked tensor type `type`.
  Value allocLike(RankedTensorType type, ValueRange dynamicSizes);
  /// Wraps a buffer that this lowering allocated as the tensor `type`.
  Value toTensor(Value buffer, Type type);
  Value dim(Value shaped, int64_t index);
  /// A new buffer of the ranked tensor type `type` whose dimensions have the
  /// runtime sizes `sizes` (one per dimension; only the dynamic ones are
  /// used).
  Value allocShaped(RankedTensorType type, ValueRange sizes);
  Value load(Value memref, ValueRange indices);
  void store(Value value, Value memref, ValueRange indices);
  /// Sets `memref[i]` (1-D) to `value` for `i` in `[lb, ub)`.
  void fill(Value memref, Value value, Value lb, Value ub);

  //===--------------------------------------------------------------------===//
  // Control flow
  //===--------------------------------------------------------------------===//
  /// `for iv in [lb, ub)` with step 1.
  void loop(Value lb, Value ub, function_ref<void(Value)> body);
  /// A loop with loop-carried values; `body` returns the next values.
  SmallVector<Value>
  loop(Value lb, Value ub, ValueRange inits,
       function_ref<SmallVector<Value>(Value, ValueRange)> body);
  /// `scf.parallel` over [lb, ub) with step 1: iterations must be
  /// independent (the CPU pipeline maps it to OpenMP threads).
  void parallelLoop(Value lb, Value ub, function_ref<void(Value)> body);
  void ifThen(Value condition, function_ref<void()> thenBody);
  void ifThenElse(Value condition, function_ref<void()> thenBody,
                  function_ref<void()> elseBody);

  //===--------------------------------------------------------------------===//
  // Arithmetic (integer or float by operand type)
  //===--------------------------------------------------------------------===//
  Value add(Value lhs, Value rhs);
  Value sub(Value lhs, Value rhs);
  Value mul(Value lhs, Value rhs);
  Value div(Value lhs, Value rhs);
  Value minSI(Value lhs, Value rhs);
  Value maxSI(Value lhs, Value rhs);
  Value select(Value condition, Value whenTrue, Value whenFalse);
  Value cmpi(arith::CmpIPredicate predicate, Value lhs, Value rhs);
  Value cmpf(arith::CmpFPredicate predicate, Value lhs, Value rhs);
  Value andi(Value lhs, Value rhs);
  Value ori(Value lhs, Value rhs);
  Value notI1(Value value);
  /// `lo <= value < hi` for integers (signed).
  Value inRange(Value value, Value lo, Value hi);
  Value isNaN(Value value);
  /// Index <-> integer casts (signed).
  Value toIndex(Value value);
  Value toI32(Value value);
  Value toI64(Value value);
  /// Float casts: extends or truncates (round to nearest even) to `type`.
  Value castFloat(Value value, Type type);
  Value toF32(Value value) { return castFloat(value, b.getF32Type()); }
};

} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_UTILS_LOOPEMITTER_H
