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

void SizeConstraints::result(LoopEmitter &e, RankedTensorType type,
                             ArrayRef<Value> sizes) {
  assert(static_cast<int64_t>(sizes.size()) == type.getRank() &&
         "one size per dimension");
  for (auto [dim, size] : llvm::enumerate(sizes)) {
    if (!size || type.isDynamicDim(dim))
      continue;
    int64_t expected = type.getDimSize(dim);
    if (std::optional<int64_t> known = getConstantIntValue(size);
        known && *known == expected)
      continue;
    checks.push_back(e.cmpi(arith::CmpIPredicate::eq, size, e.index(expected)));
  }
}

int32_t mlir::moe::detail::getRuntimeErrorCode(Operation *op) {
  if (isa<GateOp>(op))
    return 1;
  if (isa<RouteOp>(op))
    return 2;
  if (isa<DispatchOp, DispatchPaddedOp>(op))
    return 3;
  if (isa<GroupedMatmulOp>(op))
    return 4;
  if (isa<ExpertFFNOp>(op))
    return 5;
  if (isa<CombineOp>(op))
    return 6;
  if (isa<AuxLossOp>(op))
    return 7;
  if (isa<RouteDispatchOp>(op))
    return 8;
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
  return getOrCreateZeroGlobal(e, op, moe::kRuntimeErrorGlobal,
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

ExpertFFNOperands mlir::moe::detail::fetchExpertFFNOperands(
    LoopEmitter &e, ExpertFFNOp op, ExpertFFNOp::Adaptor adaptor,
    FetchOperand fetch, FetchOperand fetchWeight) {
  auto optional = [&](Value operand) {
    return operand ? fetchWeight(operand) : Value();
  };
  ExpertFFNOperands o;
  o.rows = fetch(adaptor.getRows());
  o.offsets = fetch(adaptor.getOffsets());
  o.wUp = fetchWeight(adaptor.getWUp());
  o.wDown = fetchWeight(adaptor.getWDown());
  o.wGate = optional(adaptor.getWGate());
  o.bUp = optional(adaptor.getBUp());
  o.bDown = optional(adaptor.getBDown());
  o.packed = op.getPacked();
  o.numRows = e.dim(o.rows, 0);
  o.hidden = e.dim(o.rows, 1);
  o.numExperts = e.dim(o.wUp, 0);
  o.ffn = o.packed ? e.dim(o.wDown, 2) : e.dim(o.wUp, 2);
  return o;
}

CombineOperands mlir::moe::detail::fetchCombineOperands(
    LoopEmitter &e, CombineOp op, CombineOp::Adaptor adaptor,
    FetchOperand fetch) {
  CombineOperands c;
  c.y = fetch(adaptor.getY());
  c.slotRows = fetch(adaptor.getSlotRows());
  c.ids = fetch(adaptor.getIds());
  c.weights = fetch(adaptor.getWeights());
  c.x = fetch(adaptor.getX());
  c.numConst = op.getExperts().getNumConst();
  if (c.numConst > 0) {
    c.constProj = fetch(adaptor.getConstProj());
    c.constValues = fetch(adaptor.getConstValues());
  }
  c.numTokens = e.dim(c.x, 0);
  c.hidden = e.dim(c.x, 1);
  c.k = e.dim(c.ids, 1);
  c.numRows = e.dim(c.y, 0);
  return c;
}

SizeConstraints mlir::moe::detail::combineSizes(LoopEmitter &e,
                                                const CombineOperands &c) {
  SizeConstraints sizes;
  for (Value slotOperand : {c.slotRows, c.weights}) {
    sizes.equal(e, slotOperand, 0, c.ids, 0);
    sizes.equal(e, slotOperand, 1, c.ids, 1);
  }
  sizes.equal(e, c.ids, 0, c.x, 0);
  sizes.equal(e, c.y, 1, c.x, 1);
  if (c.numConst > 0) {
    sizes.equal(e, c.constProj, 0, c.numConst);
    sizes.equal(e, c.constProj, 1, c.x, 1);
    sizes.equal(e, c.constValues, 0, c.numConst);
    sizes.equal(e, c.constValues, 1, c.x, 1);
  }
  return sizes;
}

std::pair<Value, Value>
mlir::moe::detail::emitConstMix(LoopEmitter &e, const CombineOperands &c,
                                Value t, Value i) {
  Value zeroF = e.f32(0.0f);
  SmallVector<Value> logits = e.loop(
      e.index(0), c.hidden, ValueRange{zeroF, zeroF},
      [&](Value h, ValueRange sums) {
        Value xv = e.toF32(e.load(c.x, {t, h}));
        Value p0 = e.toF32(e.load(c.constProj, {i, h, e.index(0)}));
        Value p1 = e.toF32(e.load(c.constProj, {i, h, e.index(1)}));
        return SmallVector<Value>{e.add(sums[0], e.mul(xv, p0)),
                                  e.add(sums[1], e.mul(xv, p1))};
      });
  Value m = arith::MaximumFOp::create(e.b, logits[0], logits[1]);
  Value ex0 = math::ExpOp::create(e.b, e.sub(logits[0], m));
  Value ex1 = math::ExpOp::create(e.b, e.sub(logits[1], m));
  Value den = e.add(ex0, ex1);
  return {e.div(ex0, den), e.div(ex1, den)};
}
