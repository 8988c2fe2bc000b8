//===- EPLowering.cpp - moe.ep_dispatch / moe.ep_combine to calls ---------===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The exchange ops become calls of the expert-parallel runtime
// (include/moe/Runtime/ExpertParallel.h, libmoe_ep_runtime.so) on the
// buffers' aligned pointers: the data movement is the runtime's, the
// allocation of the results (whose sizes the runtime reports) and the error
// code are the generated code's. The plan is the runtime's int64 handle,
// carried as !moe.ep_plan between the two ops.
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"

using namespace mlir;
using namespace mlir::moe;

namespace {
/// The declaration of runtime function `name`, created on first use.
func::FuncOp getRuntimeFunction(LoopEmitter &e, Operation *op, StringRef name,
                                TypeRange arguments, TypeRange results) {
  auto module = op->getParentOfType<ModuleOp>();
  if (auto existing = module.lookupSymbol<func::FuncOp>(name))
    return existing;
  OpBuilder::InsertionGuard guard(e.b);
  e.b.setInsertionPointToStart(module.getBody());
  auto function = func::FuncOp::create(
      e.b, name, e.b.getFunctionType(arguments, results));
  function.setPrivate();
  return function;
}

Value call(LoopEmitter &e, Operation *op, StringRef name, ValueRange args,
           Type result) {
  SmallVector<Type> types;
  for (Value arg : args)
    types.push_back(arg.getType());
  func::FuncOp callee = getRuntimeFunction(e, op, name, types, result);
  return func::CallOp::create(e.b, callee, args).getResult(0);
}

/// A buffer with the identity layout (contiguous rows) holding `operand`:
/// the operand itself when it has that layout already (function arguments
/// and the lowerings' allocations do), else a copy.
Value contiguous(LoopEmitter &e, Value operand) {
  if (auto memref = llvm::dyn_cast<MemRefType>(operand.getType())) {
    if (memref.getLayout().isIdentity())
      return operand;
    return e.copyToNewBuffer(operand);
  }
  auto tensor = llvm::cast<RankedTensorType>(operand.getType());
  return bufferization::ToBufferOp::create(
      e.b, moe::detail::getBufferType(tensor), operand, /*read_only=*/true);
}

/// The address of a buffer's first element, as the runtime's uintptr_t.
Value address(LoopEmitter &e, Value memref) {
  Value index = memref::ExtractAlignedPointerAsIndexOp::create(e.b, memref);
  return e.toI64(index);
}

int64_t elementBytes(Type type) {
  return llvm::cast<RankedTensorType>(type).getElementType().getIntOrFloatBitWidth() /
         8;
}

/// A stack buffer of i64 holding `values`.
Value i64Array(LoopEmitter &e, ArrayRef<int64_t> values) {
  auto type = MemRefType::get({static_cast<int64_t>(values.size())},
                              e.b.getI64Type());
  Value array = memref::AllocaOp::create(e.b, type);
  for (auto [i, value] : llvm::enumerate(values)) {
    Value element = e.i64(value);
    Value position = e.index(i);
    e.store(element, array, {position});
  }
  return array;
}
} // namespace

FailureOr<SmallVector<Value>>
mlir::moe::detail::emitLoops(LoopEmitter &e, EPDispatchOp op,
                             EPDispatchOp::Adaptor operands,
                             const MoEToLoopsOptions &options) {
  Value x = contiguous(e, operands.getX());
  Value ids = contiguous(e, operands.getIds());
  Value tokens = e.dim(x, 0);
  Value hidden = e.dim(x, 1);
  Value k = e.dim(ids, 1);
  Value slotRows =
      e.allocShaped(op.getSlotRows().getType(), ValueRange{tokens, k});
  Value info = memref::AllocaOp::create(
      e.b, MemRefType::get({4}, e.b.getI64Type()));
  EPPlacementAttr placement = op.getPlacement();
  Value blocks = e.i64(0);
  Value numBlocks = e.i64(0);
  if (!placement.isBalanced()) {
    blocks = address(e, i64Array(e, placement.getBlocks()));
    numBlocks = e.i64(placement.getBlocks().size());
  }
  Value xAddress = address(e, x);
  Value tokens64 = e.toI64(tokens);
  Value hidden64 = e.toI64(hidden);
  Value elem = e.i64(elementBytes(op.getX().getType()));
  Value idsAddress = address(e, ids);
  Value k64 = e.toI64(k);
  Value experts = e.i64(op.getNumExperts());
  Value slotAddress = address(e, slotRows);
  Value infoAddress = address(e, info);
  Value begun = call(e, op, "moe_ep_dispatch_begin",
                     {xAddress, tokens64, hidden64, elem, idsAddress, k64,
                      experts, blocks, numBlocks, slotAddress, infoAddress},
                     e.b.getI32Type());
  Value plan = e.load(info, {e.index(0)});
  Value rowCount = e.toIndex(e.load(info, {e.index(1)}));
  Value localExperts = e.toIndex(e.load(info, {e.index(2)}));
  Value rows =
      e.allocShaped(op.getRows().getType(), ValueRange{rowCount, hidden});
  Value offsetCount = e.add(localExperts, e.index(1));
  Value offsets =
      e.allocShaped(op.getOffsets().getType(), ValueRange{offsetCount});
  // Valid offsets (all 0) even when the exchange failed.
  Value zero = e.i32(0);
  Value first = e.index(0);
  e.fill(offsets, zero, first, offsetCount);
  Value rowsAddress = address(e, rows);
  Value offsetsAddress = address(e, offsets);
  Value finished = call(e, op, "moe_ep_dispatch_finish",
                        {plan, rowsAddress, offsetsAddress}, e.b.getI32Type());
  Value beginFailed = e.cmpi(arith::CmpIPredicate::ne, begun, zero);
  Value finishFailed = e.cmpi(arith::CmpIPredicate::ne, finished, zero);
  Value failed = e.ori(beginFailed, finishFailed);
  e.ifThen(failed, [&] { emitRuntimeError(e, op); });
  Value handle = UnrealizedConversionCastOp::create(
                     e.b, op.getPlan().getType(), plan)
                     .getResult(0);
  return SmallVector<Value>{rows, offsets, slotRows, handle};
}

FailureOr<SmallVector<Value>>
mlir::moe::detail::emitLoops(LoopEmitter &e, EPCombineOp op,
                             EPCombineOp::Adaptor operands,
                             const MoEToLoopsOptions &options) {
  Value yLocal = contiguous(e, operands.getYLocal());
  Value plan = UnrealizedConversionCastOp::create(e.b, e.b.getI64Type(),
                                                  operands.getPlan())
                   .getResult(0);
  Value rowsLocal = e.toI64(e.dim(yLocal, 0));
  Value hidden = e.dim(yLocal, 1);
  Value count = call(e, op, "moe_ep_combine_rows", {plan}, e.b.getI64Type());
  Value y = e.allocShaped(op.getY().getType(),
                          ValueRange{e.toIndex(count), hidden});
  Value yLocalAddress = address(e, yLocal);
  Value hidden64 = e.toI64(hidden);
  Value yAddress = address(e, y);
  Value status =
      call(e, op, "moe_ep_combine",
           {plan, yLocalAddress, rowsLocal, hidden64, yAddress},
           e.b.getI32Type());
  e.ifThen(e.cmpi(arith::CmpIPredicate::ne, status, e.i32(0)),
           [&] { emitRuntimeError(e, op); });
  return SmallVector<Value>{y};
}
