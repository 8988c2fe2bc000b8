//===- Kernels.cpp - Kernels shared by the moe lowerings --------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/SymbolTable.h"

#include <functional>

using namespace mlir;
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

//===----------------------------------------------------------------------===//
// Runtime size guards
//===----------------------------------------------------------------------===//

void SizeConstraints::equal(LoopEmitter &e, Value a, int64_t dimA, Value b,
                            int64_t dimB, int64_t offset) {
  auto typeA = llvm::cast<MemRefType>(a.getType());
  auto typeB = llvm::cast<MemRefType>(b.getType());
  if (!typeA.isDynamicDim(dimA) && !typeB.isDynamicDim(dimB))
    return;
  Value sizeA = e.dim(a, dimA);
  Value sizeB = e.add(e.dim(b, dimB), e.index(offset));
  checks.push_back(e.cmpi(arith::CmpIPredicate::eq, sizeA, sizeB));
}

void SizeConstraints::equal(LoopEmitter &e, Value a, int64_t dim,
                            int64_t size) {
  if (!llvm::cast<MemRefType>(a.getType()).isDynamicDim(dim))
    return;
  checks.push_back(
      e.cmpi(arith::CmpIPredicate::eq, e.dim(a, dim), e.index(size)));
}

void SizeConstraints::panels(LoopEmitter &e, Value a, int64_t dim, Value n,
                             int64_t width) {
  Value count = arith::CeilDivUIOp::create(e.b, n, e.index(width));
  checks.push_back(e.cmpi(arith::CmpIPredicate::eq, e.dim(a, dim), count));
}

int32_t mlir::moe::detail::getRuntimeErrorCode(Operation *op) {
  if (isa<GateOp>(op))
    return 1;
  if (isa<RouteOp>(op))
    return 2;
  if (isa<DispatchOp>(op))
    return 3;
  if (isa<GroupedMatmulOp>(op))
    return 4;
  if (isa<ExpertFFNOp>(op))
    return 5;
  if (isa<CombineOp>(op))
    return 6;
  if (isa<AuxLossOp>(op))
    return 7;
  return 99;
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

Value mlir::moe::detail::getOrCreateZeroGlobal(LoopEmitter &e, Operation *op,
                                               StringRef name,
                                               MemRefType type) {
  auto module = op->getParentOfType<ModuleOp>();
  if (!SymbolTable::lookupSymbolIn(module, name)) {
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPointToStart(module.getBody());
    Type element = type.getElementType();
    auto zeros =
        DenseElementsAttr::get(RankedTensorType::get(type.getShape(), element),
                               e.b.getZeroAttr(element));
    memref::GlobalOp::create(e.b, name, e.b.getStringAttr("public"), type,
                             zeros, /*constant=*/false,
                             /*alignment=*/IntegerAttr());
  }
  return memref::GetGlobalOp::create(e.b, type, name);
}

/// The module's error flag.
static Value getErrorFlag(LoopEmitter &e, Operation *op) {
  return getOrCreateZeroGlobal(e, op, "moe_runtime_error",
                               MemRefType::get({}, e.b.getI32Type()));
}

void mlir::moe::detail::emitRuntimeError(LoopEmitter &e, Operation *op) {
  e.store(e.i32(getRuntimeErrorCode(op)), getErrorFlag(e, op), {});
}

/// Sets every element of `buffer` (any rank) to zero.
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
    e.loop(e.index(0), e.dim(buffer, d), [&](Value i) {
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
          emitZeroFill(e, buffer);
          results.push_back(buffer);
        }
        scf::YieldOp::create(e.b, results);
      });
  return SmallVector<Value>(ifOp.getResults());
}

SizeConstraints mlir::moe::detail::expertFFNSizes(LoopEmitter &e,
                                                  const ExpertFFNOperands &o) {
  SizeConstraints sizes;
  sizes.equal(e, o.offsets, 0, o.wUp, 0, 1);
  sizes.equal(e, o.wDown, 0, o.wUp, 0);
  if (o.packed) {
    sizes.equal(e, o.wUp, 2, o.rows, 1);
    sizes.equal(e, o.wUp, 3, kPanelColumns);
    sizes.equal(e, o.wDown, 3, kPanelColumns);
    sizes.panels(e, o.wUp, 1, o.ffn, kPanelColumns);
    sizes.panels(e, o.wDown, 1, o.hidden, kPanelColumns);
    if (o.wGate)
      for (int64_t d = 0; d < 4; ++d)
        sizes.equal(e, o.wGate, d, o.wUp, d);
  } else {
    sizes.equal(e, o.wUp, 1, o.rows, 1);
    sizes.equal(e, o.wDown, 1, o.wUp, 2);
    sizes.equal(e, o.wDown, 2, o.rows, 1);
    if (o.wGate)
      for (int64_t d = 0; d < 3; ++d)
        sizes.equal(e, o.wGate, d, o.wUp, d);
  }
  if (o.bUp) {
    sizes.equal(e, o.bUp, 0, o.wUp, 0);
    sizes.equal(e, o.bUp, 1, o.wDown, o.packed ? 2 : 1);
  }
  if (o.bDown) {
    sizes.equal(e, o.bDown, 0, o.wUp, 0);
    sizes.equal(e, o.bDown, 1, o.rows, 1);
  }
  return sizes;
}

SizeConstraints mlir::moe::detail::combineSizes(
    LoopEmitter &e, Value y, Value slotRows, Value ids, Value weights, Value x,
    Value constProj, Value constValues, int64_t numConst) {
  SizeConstraints sizes;
  for (Value slotOperand : {slotRows, weights}) {
    sizes.equal(e, slotOperand, 0, ids, 0);
    sizes.equal(e, slotOperand, 1, ids, 1);
  }
  sizes.equal(e, ids, 0, x, 0);
  sizes.equal(e, y, 1, x, 1);
  if (numConst > 0) {
    sizes.equal(e, constProj, 0, numConst);
    sizes.equal(e, constProj, 1, x, 1);
    sizes.equal(e, constValues, 0, numConst);
    sizes.equal(e, constValues, 1, x, 1);
  }
  return sizes;
}
