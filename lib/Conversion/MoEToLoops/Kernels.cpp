//===- Kernels.cpp - Kernels shared by the moe lowerings --------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/SymbolTable.h"

#include <functional>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

Value mlir::moe::detail::emitSanitizedOffsets(LoopEmitter &e, Value offsets,
                                              Value numGroups, Value numRows) {
  Value zero = e.index(0);
  Value one = e.index(1);
  Value count = e.add(numGroups, one);
  Value result = e.alloc(e.b.getIndexType(), {ShapedType::kDynamic}, count);
  e.store(zero, result, zero);
  e.loop(zero, numGroups, [&](Value g) {
    Value previous = e.load(result, g);
    Value next = e.add(g, one);
    Value raw = e.toIndex(e.load(offsets, next));
    Value clamped = e.minSI(e.maxSI(raw, previous), numRows);
    e.store(clamped, result, next);
  });
  return result;
}

void mlir::moe::detail::emitZeroRows(LoopEmitter &e, Value buffer, Value begin,
                                     Value end) {
  auto type = llvm::cast<MemRefType>(buffer.getType());
  Value zero = e.floatConst(type.getElementType(), 0.0);
  Value columns = e.dim(buffer, 1);
  e.loop(begin, end, [&](Value r) {
    e.loop(e.index(0), columns, [&](Value c) {
      e.store(zero, buffer, {r, c});
    });
  });
}

static void emitZeroFill(LoopEmitter &e, Value buffer) {
  auto type = llvm::cast<MemRefType>(buffer.getType());
  Value zero = llvm::isa<FloatType>(type.getElementType())
                   ? e.floatConst(type.getElementType(), 0.0)
                   : e.intConst(type.getElementType(), 0);
  SmallVector<Value> indices;
  std::function<void(int64_t)> nest = [&](int64_t d) {
    if (d == type.getRank()) {
      e.store(zero, buffer, indices);
      return;
    }
    Value zeroIndex = e.index(0);
    Value size = e.dim(buffer, d);
    e.loop(zeroIndex, size, [&](Value i) {
      indices.push_back(i);
      nest(d + 1);
      indices.pop_back();
    });
  };
  nest(0);
}

SmallVector<Value> mlir::moe::detail::emitGuarded(
    LoopEmitter &e, Operation *op, const SizeConstraints &constraints,
    TypeRange resultTypes, function_ref<SmallVector<Value>()> kernel) {
  if (constraints.conditions().empty())
    return kernel();
  Value ok = e.boolean(true);
  for (Value condition : constraints.conditions())
    ok = e.andi(ok, condition);
  auto ifOp = scf::IfOp::create(
      e.b, ok,
      [&](OpBuilder &, Location) {
        SmallVector<Value> results = kernel();
        scf::YieldOp::create(e.b, results);
      },
      [&](OpBuilder &, Location) {
        emitRuntimeError(e, op);
        SmallVector<Value> results;
        for (Type type : resultTypes) {
          auto memrefType = llvm::cast<MemRefType>(type);
          SmallVector<Value> sizes(memrefType.getNumDynamicDims(), e.index(0));
          Value buffer = memref::AllocOp::create(e.b, memrefType, sizes);
          // A static result type larger than memory (the size check failed
          // precisely because no input that large exists) gets a null
          // allocation: fill only what was allocated.
          Value pointer =
              memref::ExtractAlignedPointerAsIndexOp::create(e.b, buffer);
          e.ifThen(e.cmpi(arith::CmpIPredicate::ne, pointer, e.index(0)),
                   [&] { emitZeroFill(e, buffer); });
          results.push_back(buffer);
        }
        scf::YieldOp::create(e.b, results);
      });
  return SmallVector<Value>(ifOp.getResults());
}

Destination mlir::moe::detail::emitDestination(LoopEmitter &e, Value init,
                                               bool readsInit,
                                               bool unitStride) {
  Destination d;
  d.init = init;
  Value any = e.buffer(init);
  if (!llvm::isa<MemRefType>(init.getType())) {
    if (readsInit) {
      d.buffer = e.copyToNewBuffer(any);
      return d;
    }
    auto type = llvm::cast<RankedTensorType>(init.getType());
    SmallVector<Value> sizes;
    for (int64_t i = 0; i < type.getRank(); ++i)
      sizes.push_back(e.dim(any, i));
    d.buffer = e.allocShaped(type, sizes);
    return d;
  }
  auto type = llvm::cast<MemRefType>(init.getType());
  if (!unitStride || type.getRank() == 0) {
    d.buffer = any;
    return d;
  }
  SmallVector<int64_t> strides(type.getRank(), ShapedType::kDynamic);
  strides.back() = 1;
  auto unitType = MemRefType::get(
      type.getShape(), type.getElementType(),
      StridedLayoutAttr::get(e.b.getContext(), ShapedType::kDynamic, strides),
      type.getMemorySpace());
  SmallVector<int64_t> staticStrides;
  int64_t staticOffset;
  if (succeeded(type.getStridesAndOffset(staticStrides, staticOffset)) &&
      staticStrides.back() == 1) {
    d.buffer = memref::CastOp::create(e.b, unitType, init);
    return d;
  }
  // Checked at run time; a destination whose innermost stride is not 1
  // gets a scratch buffer.
  auto metadata = memref::ExtractStridedMetadataOp::create(e.b, any);
  d.original = any;
  d.scratch = e.cmpi(arith::CmpIPredicate::ne, metadata.getStrides().back(),
                     e.index(1));
  auto ifOp = scf::IfOp::create(e.b, TypeRange{unitType}, d.scratch,
                                /*withElseRegion=*/true);
  {
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPointToStart(ifOp.thenBlock());
    Value copy = readsInit ? e.copyToNewBuffer(any) : [&] {
      SmallVector<Value> sizes;
      for (int64_t i = 0; i < type.getRank(); ++i)
        if (type.isDynamicDim(i))
          sizes.push_back(e.dim(any, i));
      return Value(memref::AllocOp::create(
          e.b,
          MemRefType::get(type.getShape(), type.getElementType(),
                          MemRefLayoutAttrInterface(), type.getMemorySpace()),
          sizes));
    }();
    scf::YieldOp::create(
        e.b, ValueRange{memref::CastOp::create(e.b, unitType, copy)});
    e.b.setInsertionPointToStart(ifOp.elseBlock());
    scf::YieldOp::create(
        e.b, ValueRange{memref::CastOp::create(e.b, unitType, any)});
  }
  d.buffer = ifOp.getResult(0);
  return d;
}

Value mlir::moe::detail::finishDestination(LoopEmitter &e,
                                           const Destination &d) {
  if (!llvm::isa<MemRefType>(d.init.getType()))
    return d.buffer;
  if (d.scratch)
    e.ifThen(d.scratch, [&] {
      e.copy(d.buffer, d.original);
      memref::DeallocOp::create(e.b, d.buffer);
    });
  return d.init;
}

void mlir::moe::detail::emitGuardedInto(LoopEmitter &e, Operation *op,
                                        const SizeConstraints &constraints,
                                        ValueRange destinations,
                                        function_ref<void()> kernel) {
  if (constraints.conditions().empty())
    return kernel();
  Value ok = e.boolean(true);
  for (Value condition : constraints.conditions())
    ok = e.andi(ok, condition);
  e.ifThenElse(ok, kernel, [&] {
    emitRuntimeError(e, op);
    // A static destination larger than memory (the check failed precisely
    // because no input that large exists) may be a null allocation: fill
    // only what was allocated.
    for (Value destination : destinations) {
      Value pointer =
          memref::ExtractAlignedPointerAsIndexOp::create(e.b, destination);
      e.ifThen(e.cmpi(arith::CmpIPredicate::ne, pointer, e.index(0)),
               [&] { emitZeroFill(e, destination); });
    }
  });
}
