//===- ExpertFFNLowering.cpp - moe.expert_ffn to loops ----------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Each expert's FFN on its segment of rows, whose bounds come from the
// (sanitised) offsets: an expert without rows runs no iteration and reads
// none of its weights. The segment is processed in work items of up to
// `ffnRows` rows (the matmul schedule's; 128 by default): up (and gate)
// projections of the item with the register-blocked kernel
// (MatmulKernel.cpp) into f32 scratch [ffnRows, F], the activation over the
// scratch, then the down projection into the output rows. Matmuls
// accumulate in f32; with f16/bf16 rows every intermediate is rounded to the
// rows' type, as the contract says.
//
// With instrumentation, counters[e][0] counts the rows expert e processes
// and counters[e][1] the multiply-adds its register blocks execute (rows x
// columns x depth, added as each block finishes).
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/SymbolTable.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

/// A public global holding the counters of one instrumented FFN op.
static Value getCounters(LoopEmitter &e, Operation *op, int64_t numExperts) {
  auto module = op->getParentOfType<ModuleOp>();
  auto type = MemRefType::get({numExperts, 2}, e.b.getI64Type());
  std::string name;
  for (int i = 0;; ++i) {
    name = "moe_ffn_counters_" + std::to_string(i);
    if (!SymbolTable::lookupSymbolIn(module, name))
      break;
  }
  return getOrCreateZeroGlobal(e, op, name, type);
}

FailureOr<SmallVector<Value>>
mlir::moe::detail::emitLoops(LoopEmitter &e, ExpertFFNOp op,
                             ExpertFFNOp::Adaptor adaptor,
                             const MoEToLoopsOptions &options) {
  ExpertFFNOperands o = fetchExpertFFNOperands(
      e, op, adaptor, [&](Value operand) { return e.buffer(operand); },
      [&](Value operand) { return e.unitStrideBuffer(operand); });
  bool gated = op.getGated();
  Activation activation = op.getActivation();
  auto resultType = llvm::cast<RankedTensorType>(op.getY().getType());
  Type rowType = resultType.getElementType();

  Value counters;
  auto wUpType = llvm::cast<RankedTensorType>(op.getWUp().getType());
  if (options.instrumentFFN) {
    if (wUpType.isDynamicDim(0))
      return failure(); // convert-moe-to-loops diagnoses it first.
    counters = getCounters(e, op, wUpType.getDimSize(0));
  }

  Destination destination = emitDestination(
      e, adaptor.getInit(), /*readsInit=*/false, /*unitStride=*/true);
  Value out = destination.buffer;
  SizeConstraints sizes = expertFFNSizes(e, o);
  sizes.equal(e, out, 0, o.rows, 0);
  sizes.equal(e, out, 1, o.rows, 1);
  emitGuardedInto(e, op, sizes, out, [&] {
    Value offsets = emitSanitizedOffsets(e, o.offsets, o.numExperts, o.numRows);

    // Rounds an f32 value to the rows' type and back (identity for f32).
    auto round = [&](Value v) { return e.toF32(e.castFloat(v, rowType)); };
    Type f32 = e.b.getF32Type();
    // The schedules of the two projections (the up and gate projections
    // have the same shape); one pack of A serves both.
    auto matmulShape = [&](Type a, Value b, Type c, Value depth, Value n) {
      MatmulShape shape;
      shape.a = a;
      shape.b = llvm::cast<MemRefType>(b.getType()).getElementType();
      shape.c = c;
      shape.bPacked = o.packed;
      shape.quant = o.quant;
      shape.depth = getStaticSize(depth);
      shape.columns = getStaticSize(n);
      return shape;
    };
    MatmulSchedule upSchedule = getMatmulSchedule(
        op, matmulShape(rowType, o.wUp, f32, o.hidden, o.ffn));
    MatmulSchedule downSchedule = getMatmulSchedule(
        op, matmulShape(f32, o.wDown, rowType, o.ffn, o.hidden));
    int64_t itemRows = upSchedule.ffnRows;
    Value chunk = e.index(itemRows);
    int64_t dyn = ShapedType::kDynamic;
    Value zero = e.index(0);
    Value one = e.index(1);
    Type indexType = e.b.getIndexType();

    // Work items: each expert's rows in chunks of up to itemRows, listed as
    // (expert, first row). An expert without rows has no item.
    Value numItems = e.loop(zero, o.numExperts, ValueRange{zero},
                            [&](Value expert, ValueRange acc) {
                              Value end = e.load(offsets, e.add(expert, one));
                              Value begin = e.load(offsets, expert);
                              Value n = e.sub(end, begin);
                              Value items =
                                  arith::CeilDivUIOp::create(e.b, n, chunk);
                              return SmallVector<Value>{e.add(acc[0], items)};
                            })[0];
    Value itemExpert = e.alloc(indexType, {dyn}, numItems);
    Value itemFirst = e.alloc(indexType, {dyn}, numItems);
    e.loop(zero, o.numExperts, ValueRange{zero},
           [&](Value expert, ValueRange acc) {
             Value begin = e.load(offsets, expert);
             Value n = e.sub(e.load(offsets, e.add(expert, one)), begin);
             Value items = arith::CeilDivUIOp::create(e.b, n, chunk);
             e.loop(zero, items, [&](Value c) {
               Value item = e.add(acc[0], c);
               e.store(expert, itemExpert, item);
               e.store(e.add(begin, e.mul(c, chunk)), itemFirst, item);
             });
             return SmallVector<Value>{e.add(acc[0], items)};
           });

    // Items are independent (disjoint output rows): with `parallel` they
    // become an scf.parallel, each with its own scratch.
    auto item = [&](Value index) {
      Value expert = e.load(itemExpert, index);
      Value first = e.load(itemFirst, index);
      Value end = e.load(offsets, e.add(expert, one));
      Value last = e.minSI(e.add(first, chunk), end);
      Value up = e.alloc(f32, {itemRows, dyn}, o.ffn);
      Value gate = gated ? e.alloc(f32, {itemRows, dyn}, o.ffn) : Value();
      // One pack of A large enough for both projections (when either is
      // blocked over the depth).
      Value aPack;
      if (upSchedule.depthBlock > 0 || downSchedule.depthBlock > 0) {
        std::array<int64_t, 3> upPack = upSchedule.packShape();
        std::array<int64_t, 3> downPack = downSchedule.packShape();
        std::array<int64_t, 3> shape;
        for (int i = 0; i < 3; ++i)
          shape[i] = std::max(upPack[i], downPack[i]);
        aPack = e.alloc(f32, shape);
      }
      // Counters are shared by the items of an expert: atomic adds.
      auto count = [&](int64_t which, Value amount) {
        Value increment = e.toI64(amount);
        Value column = e.index(which);
        memref::AtomicRMWOp::create(e.b, arith::AtomicRMWKind::addi, increment,
                                    counters, ValueRange{expert, column});
      };
      if (counters)
        count(0, e.sub(last, first));
      auto countMacs = [&](Value rows, Value columns, Value depth) {
        count(1, e.mul(e.mul(rows, columns), depth));
      };
      auto local = [&, first](Value r) { return e.sub(r, first); };
      // Up (and gate) projections of the chunk's rows into the scratch.
      RowMatmul project;
      project.aPack = aPack;
      project.bPacked = o.packed;
      project.quant = o.quant;
      project.a = o.rows;
      project.bPrefix = {expert};
      project.rowBegin = first;
      project.rowEnd = last;
      project.depth = o.hidden;
      project.n = o.ffn;
      project.rowOfC = local;
      project.schedule = upSchedule;
      if (counters)
        project.afterBlock = countMacs;
      project.b = o.wUp;
      project.c = up;
      if (!gated && o.bUp) {
        project.bias = o.bUp;
        project.biasPrefix = {expert};
      }
      emitRowMatmul(e, project);
      if (gated) {
        project.b = o.wGate;
        project.c = gate;
        emitRowMatmul(e, project);
      }

      // The activation, element by element over the scratch.
      e.loop(zero, e.sub(last, first), [&](Value r) {
        e.loop(zero, o.ffn, [&](Value f) {
          if (gated) {
            Value g = round(e.load(gate, {r, f}));
            Value u = round(e.load(up, {r, f}));
            Value a = round(emitActivation(e, activation, g));
            e.store(round(e.mul(a, u)), up, {r, f});
          } else {
            Value a = round(e.load(up, {r, f}));
            e.store(round(emitActivation(e, activation, a)), up, {r, f});
          }
        });
      });

      // Down projection into the chunk's output rows.
      RowMatmul down;
      down.aPack = aPack;
      down.bPacked = o.packed;
      down.quant = o.quant;
      down.a = up;
      down.rowOfA = local;
      down.b = o.wDown;
      down.bPrefix = {expert};
      down.c = out;
      down.rowBegin = first;
      down.rowEnd = last;
      down.depth = o.ffn;
      down.n = o.hidden;
      down.schedule = downSchedule;
      if (o.bDown) {
        down.bias = o.bDown;
        down.biasPrefix = {expert};
      }
      if (counters)
        down.afterBlock = countMacs;
      emitRowMatmul(e, down);
    };
    if (options.parallel)
      e.parallelLoop(zero, numItems, item);
    else
      e.loop(zero, numItems, item);
    // Rows that belong to no expert are zero.
    emitZeroRows(e, out, e.load(offsets, o.numExperts), o.numRows);
  });
  return SmallVector<Value>{finishDestination(e, destination)};
}
