//===- Kernels.cpp - Kernel pieces shared by the moe lowerings --*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Utils/Kernels.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/SymbolTable.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;

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
  Value dimSizeB = e.dim(b, dimB);
  Value sizeB = e.add(dimSizeB, e.index(offset));
  checks.push_back(e.cmpi(arith::CmpIPredicate::eq, sizeA, sizeB));
}

void SizeConstraints::equal(LoopEmitter &e, Value a, int64_t dim,
                            int64_t size) {
  if (!llvm::cast<MemRefType>(a.getType()).isDynamicDim(dim))
    return;
  Value actual = e.dim(a, dim);
  checks.push_back(e.cmpi(arith::CmpIPredicate::eq, actual, e.index(size)));
}

void SizeConstraints::panels(LoopEmitter &e, Value a, int64_t dim, Value n,
                             int64_t width) {
  Value count = arith::CeilDivUIOp::create(e.b, n, e.index(width));
  checks.push_back(e.cmpi(arith::CmpIPredicate::eq, e.dim(a, dim), count));
}

void SizeConstraints::blocks(LoopEmitter &e, Value a, int64_t dim, Value n,
                             int64_t factor) {
  Value size = e.dim(a, dim);
  Value whole = e.mul(size, e.index(factor));
  checks.push_back(e.cmpi(arith::CmpIPredicate::eq, whole, n));
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

int32_t mlir::moe::getRuntimeErrorCode(Operation *op) {
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
  if (isa<EPDispatchOp>(op))
    return 9;
  if (isa<EPCombineOp>(op))
    return 10;
  return 99;
}

Value mlir::moe::getOrCreateZeroGlobal(LoopEmitter &e, Operation *op,
                                       StringRef name, MemRefType type) {
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

void mlir::moe::emitRuntimeError(LoopEmitter &e, Operation *op) {
  Value code = e.i32(getRuntimeErrorCode(op));
  e.store(code, getErrorFlag(e, op), {});
}

/// Sets every element of `buffer` (any rank) to zero.

SizeConstraints mlir::moe::expertFFNSizes(LoopEmitter &e,
                                          const ExpertFFNOperands &o) {
  SizeConstraints sizes;
  sizes.equal(e, o.offsets, 0, o.wUp, 0, 1);
  sizes.equal(e, o.wDown, 0, o.wUp, 0);
  if (o.quant) {
    int64_t tile = getQuantTileBytes(*o.quant);
    sizes.blocks(e, o.wUp, 2, o.hidden, kQuantTileSize);
    sizes.blocks(e, o.wDown, 1, o.hidden, kQuantTileSize);
    sizes.equal(e, o.wUp, 1, o.wDown, 2);
    sizes.equal(e, o.wUp, 3, tile);
    sizes.equal(e, o.wDown, 3, tile);
    if (o.wGate)
      for (int64_t d = 0; d < 4; ++d)
        sizes.equal(e, o.wGate, d, o.wUp, d);
  } else if (o.packed) {
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
    if (o.quant) {
      Value ffn = e.dim(o.bUp, 1);
      sizes.blocks(e, o.wDown, 2, ffn, kQuantTileSize);
    } else {
      sizes.equal(e, o.bUp, 1, o.wDown, o.packed ? 2 : 1);
    }
  }
  if (o.bDown) {
    sizes.equal(e, o.bDown, 0, o.wUp, 0);
    sizes.equal(e, o.bDown, 1, o.rows, 1);
  }
  return sizes;
}

ExpertFFNOperands mlir::moe::fetchExpertFFNOperands(
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
  o.quant = op.getQuant();
  o.numRows = e.dim(o.rows, 0);
  o.hidden = e.dim(o.rows, 1);
  o.numExperts = e.dim(o.wUp, 0);
  if (o.quant) {
    auto downType = llvm::cast<MemRefType>(o.wDown.getType());
    if (!downType.isDynamicDim(2)) {
      o.ffn = e.index(downType.getDimSize(2) * kQuantTileSize);
    } else {
      Value blocks = e.dim(o.wDown, 2);
      o.ffn = e.mul(blocks, e.index(kQuantTileSize));
    }
  } else {
    o.ffn = o.packed ? e.dim(o.wDown, 2) : e.dim(o.wUp, 2);
  }
  return o;
}

CombineOperands mlir::moe::fetchCombineOperands(LoopEmitter &e, CombineOp op,
                                                CombineOp::Adaptor adaptor,
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

SizeConstraints mlir::moe::combineSizes(LoopEmitter &e,
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

RouteDispatchOperands
mlir::moe::fetchRouteDispatchOperands(RouteDispatchOp::Adaptor adaptor,
                                      FetchOperand fetch,
                                      FetchOperand fetchWeight) {
  auto optional = [&](Value operand, FetchOperand with) {
    return operand ? with(operand) : Value();
  };
  RouteDispatchOperands o;
  o.x = fetch(adaptor.getX());
  o.wRouter = fetchWeight(adaptor.getWRouter());
  o.bRouter = optional(adaptor.getBRouter(), fetchWeight);
  o.kPerToken = optional(adaptor.getKPerToken(), fetch);
  o.selectionBias = optional(adaptor.getSelectionBias(), fetch);
  return o;
}

SizeConstraints mlir::moe::routeDispatchSizes(LoopEmitter &e,
                                              RouteDispatchOp op,
                                              const RouteDispatchOperands &o) {
  RoutingConfig config = op.getRoutingConfig();
  int64_t width = config.experts.getNumExperts();
  SizeConstraints sizes;
  sizes.equal(e, o.wRouter, 0, o.x, 1);
  sizes.equal(e, o.wRouter, 1, width);
  if (o.bRouter)
    sizes.equal(e, o.bRouter, 0, width);
  if (o.kPerToken)
    sizes.equal(e, o.kPerToken, 0, o.x, 0);
  if (o.selectionBias)
    sizes.equal(e, o.selectionBias, 0, width);
  auto types = llvm::map_to_vector(op->getResultTypes(), [](Type type) {
    return llvm::cast<RankedTensorType>(type);
  });
  Value numTokens = e.dim(o.x, 0);
  Value k = e.index(config.k);
  for (int64_t i : {0, 1, 4})
    sizes.result(e, types[i], {numTokens, k});
  Value hidden = e.dim(o.x, 1);
  sizes.result(e, types[2], {Value(), hidden});
  return sizes;
}

std::pair<Value, Value> mlir::moe::emitConstMix(LoopEmitter &e,
                                                const CombineOperands &c,
                                                Value t, Value i) {
  Value zeroF = e.f32(0.0f);
  SmallVector<Value> logits =
      e.loop(e.index(0), c.hidden, ValueRange{zeroF, zeroF},
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

CombineSlot mlir::moe::emitCombineSlot(LoopEmitter &e,
                                       const CombineOperands &c,
                                       ExpertSpaceAttr experts, Value t,
                                       Value j) {
  CombineSlot slot;
  slot.id = e.load(c.ids, {t, j});
  slot.row = e.load(c.slotRows, {t, j});
  Value zeroI32 = e.i32(0);
  Value computeEnd = e.i32(experts.getCompute());
  Value numRowsI32 = e.toI32(c.numRows);
  Value idIsCompute = e.inRange(slot.id, zeroI32, computeEnd);
  Value rowIsValid = e.inRange(slot.row, zeroI32, numRowsI32);
  slot.isCompute = e.andi(idIsCompute, rowIsValid);
  Value constBegin = e.i32(experts.getConstBegin());
  if (experts.getNumCopy() > 0) {
    Value copyBegin = e.i32(experts.getCopyBegin());
    slot.isCopy = e.inRange(slot.id, copyBegin, constBegin);
  }
  if (experts.getNumConst() > 0) {
    Value constEnd = e.i32(experts.getNumExperts());
    slot.isConst = e.inRange(slot.id, constBegin, constEnd);
    Value offset = e.sub(slot.id, constBegin);
    Value safe = e.select(slot.isConst, offset, zeroI32);
    slot.constIndex = e.toIndex(safe);
  }
  return slot;
}

/// The activation in f32. NaN propagates through every one of them.
Value mlir::moe::emitActivation(LoopEmitter &e, Activation activation,
                                Value x) {
  Value half = e.f32(0.5f);
  Value one = e.f32(1.0f);
  switch (activation) {
  case Activation::silu: {
    Value negExp = math::ExpOp::create(e.b, arith::NegFOp::create(e.b, x));
    return e.div(x, e.add(one, negExp));
  }
  case Activation::gelu: {
    Value scaled = e.mul(x, e.f32(static_cast<float>(M_SQRT1_2)));
    Value erf = math::ErfOp::create(e.b, scaled);
    Value halfX = e.mul(half, x);
    return e.mul(halfX, e.add(one, erf));
  }
  case Activation::gelu_tanh: {
    Value cube = e.mul(e.mul(x, x), x);
    Value inner = e.add(x, e.mul(e.f32(0.044715f), cube));
    Value scaled =
        e.mul(e.f32(static_cast<float>(std::sqrt(2.0 / M_PI))), inner);
    Value tanh = math::TanhOp::create(e.b, scaled);
    Value halfX = e.mul(half, x);
    return e.mul(halfX, e.add(one, tanh));
  }
  case Activation::relu: {
    Value positive = e.cmpf(arith::CmpFPredicate::OGT, x, e.f32(0.0f));
    Value rectified = e.select(positive, x, e.f32(0.0f));
    Value nan = e.isNaN(x);
    return e.select(nan, x, rectified);
  }
  }
  llvm_unreachable("unknown activation");
}
