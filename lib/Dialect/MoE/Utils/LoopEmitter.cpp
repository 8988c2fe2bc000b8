//===- LoopEmitter.cpp - Terse builder for loop-level code ------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Utils/LoopEmitter.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/TypeUtilities.h"

#include <functional>

using namespace mlir;
using namespace mlir::moe;

Value LoopEmitter::index(int64_t value) {
  return arith::ConstantIndexOp::create(b, value);
}

Value LoopEmitter::i32(int64_t value) {
  return arith::ConstantIntOp::create(b, value, 32);
}

Value LoopEmitter::i64(int64_t value) {
  return arith::ConstantIntOp::create(b, value, 64);
}

Value LoopEmitter::f32(float value) {
  return floatConst(b.getF32Type(), value);
}

Value LoopEmitter::f64(double value) {
  return floatConst(b.getF64Type(), value);
}

Value LoopEmitter::boolean(bool value) {
  return arith::ConstantIntOp::create(b, value ? 1 : 0, 1);
}

Value LoopEmitter::floatConst(Type type, double value) {
  return arith::ConstantOp::create(b, b.getFloatAttr(type, value));
}

Value LoopEmitter::intConst(Type type, int64_t value) {
  if (type.isIndex())
    return index(value);
  return arith::ConstantOp::create(b, b.getIntegerAttr(type, value));
}

Value LoopEmitter::buffer(Value operand) {
  // A fully dynamic strided layout accepts any buffer (a slice of a stacked
  // weight, a transposed view, ...) without a copy.
  auto type = llvm::cast<ShapedType>(operand.getType());
  SmallVector<int64_t> strides(type.getRank(), ShapedType::kDynamic);
  auto layout =
      StridedLayoutAttr::get(b.getContext(), ShapedType::kDynamic, strides);
  auto memrefType =
      MemRefType::get(type.getShape(), type.getElementType(), layout);
  if (auto memref = llvm::dyn_cast<MemRefType>(type)) {
    // A buffer already (one-shot-bufferize gave it): only its layout is
    // generalised, keeping its memory space.
    memrefType = MemRefType::get(type.getShape(), type.getElementType(), layout,
                                 memref.getMemorySpace());
    if (memrefType == memref)
      return operand;
    return memref::CastOp::create(b, memrefType, operand);
  }
  return bufferization::ToBufferOp::create(b, memrefType, operand,
                                           /*read_only=*/true);
}

Value LoopEmitter::unitStrideBuffer(Value operand) {
  // Any offset and outer strides (a slice of a stacked weight needs no
  // copy) and a unit innermost stride, which vector loads need. The tensor's
  // buffer is taken with a fully dynamic layout and checked at run time: the
  // rare buffer whose innermost stride is not 1 (a strided slice) is copied.
  auto type = llvm::cast<ShapedType>(operand.getType());
  MLIRContext *context = b.getContext();
  SmallVector<int64_t> strides(type.getRank(), ShapedType::kDynamic);
  Value any = buffer(operand);
  if (type.getRank() == 0)
    return any;
  strides.back() = 1;
  Attribute memorySpace =
      llvm::cast<MemRefType>(any.getType()).getMemorySpace();
  auto unitType = MemRefType::get(
      type.getShape(), type.getElementType(),
      StridedLayoutAttr::get(context, ShapedType::kDynamic, strides),
      memorySpace);
  auto metadata = memref::ExtractStridedMetadataOp::create(b, any);
  Value unit =
      cmpi(arith::CmpIPredicate::eq, metadata.getStrides().back(), index(1));
  auto ifOp = scf::IfOp::create(b, TypeRange{unitType}, unit,
                                /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(ifOp.thenBlock());
  scf::YieldOp::create(b, ValueRange{memref::CastOp::create(b, unitType, any)});
  b.setInsertionPointToStart(ifOp.elseBlock());
  Value copy = copyToNewBuffer(any);
  scf::YieldOp::create(b,
                       ValueRange{memref::CastOp::create(b, unitType, copy)});
  return ifOp.getResult(0);
}

Value LoopEmitter::copyToNewBuffer(Value buffer) {
  auto type = llvm::cast<MemRefType>(buffer.getType());
  SmallVector<Value> sizes;
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (type.isDynamicDim(d))
      sizes.push_back(dim(buffer, d));
  auto denseType =
      MemRefType::get(type.getShape(), type.getElementType(),
                      MemRefLayoutAttrInterface(), type.getMemorySpace());
  Value result = memref::AllocOp::create(b, denseType, sizes);
  copy(buffer, result);
  return result;
}

void LoopEmitter::copy(Value from, Value to) {
  // An element-wise copy (memref.copy of a strided buffer would call the
  // MLIR runtime library, which compiled models do not link).
  int64_t rank = llvm::cast<MemRefType>(from.getType()).getRank();
  SmallVector<Value> indices;
  std::function<void(int64_t)> nest = [&](int64_t d) {
    if (d == rank) {
      store(load(from, indices), to, indices);
      return;
    }
    Value zero = index(0);
    Value size = dim(from, d);
    loop(zero, size, [&](Value i) {
      indices.push_back(i);
      nest(d + 1);
      indices.pop_back();
    });
  };
  nest(0);
}

Value LoopEmitter::alloc(Type elementType, ArrayRef<int64_t> shape,
                         ValueRange dynamicSizes) {
  auto type = MemRefType::get(shape, elementType);
  if (allocator)
    return allocator(type, dynamicSizes);
  return memref::AllocOp::create(b, type, dynamicSizes);
}

Value LoopEmitter::allocLike(RankedTensorType type, ValueRange dynamicSizes) {
  return alloc(type.getElementType(), type.getShape(), dynamicSizes);
}

Value LoopEmitter::allocShaped(RankedTensorType type, ValueRange sizes) {
  SmallVector<Value> dynamicSizes;
  for (auto [dimIndex, size] : llvm::enumerate(sizes))
    if (type.isDynamicDim(dimIndex))
      dynamicSizes.push_back(size);
  return allocLike(type, dynamicSizes);
}

Value LoopEmitter::toTensor(Value buffer, Type type) {
  return bufferization::ToTensorOp::create(b, type, buffer, /*restrict=*/true,
                                           /*writable=*/true);
}

Value LoopEmitter::dim(Value shaped, int64_t index) {
  if (llvm::isa<MemRefType>(shaped.getType()))
    return memref::DimOp::create(b, shaped, index);
  llvm_unreachable("dim of a non-memref value");
}

Value LoopEmitter::load(Value memref, ValueRange indices) {
  return memref::LoadOp::create(b, memref, indices);
}

void LoopEmitter::store(Value value, Value memref, ValueRange indices) {
  memref::StoreOp::create(b, value, memref, indices);
}

void LoopEmitter::fill(Value memref, Value value, Value lb, Value ub) {
  loop(lb, ub, [&](Value i) { store(value, memref, i); });
}

void LoopEmitter::loop(Value lb, Value ub, function_ref<void(Value)> body) {
  auto forOp = scf::ForOp::create(b, lb, ub, index(1));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(forOp.getBody()->getTerminator());
  body(forOp.getInductionVar());
}

void LoopEmitter::parallelLoop(Value lb, Value ub,
                               function_ref<void(Value)> body) {
  auto parallel = scf::ParallelOp::create(b, ValueRange{lb}, ValueRange{ub},
                                          ValueRange{index(1)});
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(parallel.getBody()->getTerminator());
  body(parallel.getInductionVars()[0]);
}

SmallVector<Value>
LoopEmitter::loop(Value lb, Value ub, ValueRange inits,
                  function_ref<SmallVector<Value>(Value, ValueRange)> body) {
  auto forOp = scf::ForOp::create(
      b, lb, ub, index(1), inits,
      [&](OpBuilder &nested, Location loc, Value iv, ValueRange args) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nested.getInsertionBlock(),
                            nested.getInsertionPoint());
        SmallVector<Value> next = body(iv, args);
        scf::YieldOp::create(b, next);
      });
  return SmallVector<Value>(forOp.getResults());
}

void LoopEmitter::ifThen(Value condition, function_ref<void()> thenBody) {
  auto ifOp = scf::IfOp::create(b, condition, /*withElseRegion=*/false);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
  thenBody();
}

void LoopEmitter::ifThenElse(Value condition, function_ref<void()> thenBody,
                             function_ref<void()> elseBody) {
  auto ifOp = scf::IfOp::create(b, condition, /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
  thenBody();
  b.setInsertionPoint(ifOp.elseBlock()->getTerminator());
  elseBody();
}

static bool isFloatLike(Value value) {
  return llvm::isa<FloatType>(getElementTypeOrSelf(value.getType()));
}

Value LoopEmitter::add(Value lhs, Value rhs) {
  if (isFloatLike(lhs))
    return arith::AddFOp::create(b, lhs, rhs);
  return arith::AddIOp::create(b, lhs, rhs);
}

Value LoopEmitter::sub(Value lhs, Value rhs) {
  if (isFloatLike(lhs))
    return arith::SubFOp::create(b, lhs, rhs);
  return arith::SubIOp::create(b, lhs, rhs);
}

Value LoopEmitter::mul(Value lhs, Value rhs) {
  if (isFloatLike(lhs))
    return arith::MulFOp::create(b, lhs, rhs);
  return arith::MulIOp::create(b, lhs, rhs);
}

Value LoopEmitter::div(Value lhs, Value rhs) {
  if (isFloatLike(lhs))
    return arith::DivFOp::create(b, lhs, rhs);
  return arith::DivSIOp::create(b, lhs, rhs);
}

Value LoopEmitter::minSI(Value lhs, Value rhs) {
  return arith::MinSIOp::create(b, lhs, rhs);
}

Value LoopEmitter::maxSI(Value lhs, Value rhs) {
  return arith::MaxSIOp::create(b, lhs, rhs);
}

Value LoopEmitter::select(Value condition, Value whenTrue, Value whenFalse) {
  return arith::SelectOp::create(b, condition, whenTrue, whenFalse);
}

Value LoopEmitter::cmpi(arith::CmpIPredicate predicate, Value lhs, Value rhs) {
  return arith::CmpIOp::create(b, predicate, lhs, rhs);
}

Value LoopEmitter::cmpf(arith::CmpFPredicate predicate, Value lhs, Value rhs) {
  return arith::CmpFOp::create(b, predicate, lhs, rhs);
}

Value LoopEmitter::andi(Value lhs, Value rhs) {
  return arith::AndIOp::create(b, lhs, rhs);
}

Value LoopEmitter::ori(Value lhs, Value rhs) {
  return arith::OrIOp::create(b, lhs, rhs);
}

Value LoopEmitter::notI1(Value value) {
  return arith::XOrIOp::create(b, value, boolean(true));
}

Value LoopEmitter::inRange(Value value, Value lo, Value hi) {
  // Emitted in a fixed order (argument evaluation order is unspecified).
  Value aboveLow = cmpi(arith::CmpIPredicate::sge, value, lo);
  Value belowHigh = cmpi(arith::CmpIPredicate::slt, value, hi);
  return andi(aboveLow, belowHigh);
}

Value LoopEmitter::isNaN(Value value) {
  return cmpf(arith::CmpFPredicate::UNO, value, value);
}

Value LoopEmitter::toIndex(Value value) {
  if (value.getType().isIndex())
    return value;
  return arith::IndexCastOp::create(b, b.getIndexType(), value);
}

Value LoopEmitter::toI32(Value value) {
  if (value.getType().isInteger(32))
    return value;
  if (value.getType().isIndex())
    return arith::IndexCastOp::create(b, b.getI32Type(), value);
  return arith::TruncIOp::create(b, b.getI32Type(), value);
}

Value LoopEmitter::toI64(Value value) {
  if (value.getType().isInteger(64))
    return value;
  if (value.getType().isIndex())
    return arith::IndexCastOp::create(b, b.getI64Type(), value);
  return arith::ExtSIOp::create(b, b.getI64Type(), value);
}

Value LoopEmitter::castFloat(Value value, Type type) {
  Type from = value.getType();
  if (from == type)
    return value;
  unsigned fromWidth = llvm::cast<FloatType>(from).getWidth();
  unsigned toWidth = llvm::cast<FloatType>(type).getWidth();
  if (fromWidth == toWidth) // bf16 <-> f16: through f32.
    return castFloat(castFloat(value, b.getF32Type()), type);
  if (fromWidth < toWidth)
    return arith::ExtFOp::create(b, type, value);
  return arith::TruncFOp::create(b, type, value);
}
