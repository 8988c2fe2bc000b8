//===- StatusArgument.cpp - Per-call status instead of a global -*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Replaces the module's `moe_runtime_error` global by a trailing `!llvm.ptr`
// status argument: of every public function with a body, and of every
// private function that records an error or calls one that has it.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/SetVector.h"

#define DEBUG_TYPE "moe-status-argument"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOESTATUSARGUMENTPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;

namespace {
struct MoEStatusArgumentPass
    : moe::impl::MoEStatusArgumentPassBase<MoEStatusArgumentPass> {
  void runOnOperation() override;

private:
  /// Collects the functions that get the argument: the public ones with a
  /// body, those that hold `flags`, and (transitively) their callers.
  LogicalResult collect(ModuleOp module, ArrayRef<memref::GetGlobalOp> flags,
                        llvm::SetVector<func::FuncOp> &functions);
};
} // namespace

LogicalResult
MoEStatusArgumentPass::collect(ModuleOp module,
                               ArrayRef<memref::GetGlobalOp> flags,
                               llvm::SetVector<func::FuncOp> &functions) {
  for (auto func : module.getOps<func::FuncOp>())
    if (func.isPublic() && !func.isExternal())
      functions.insert(func);
  for (memref::GetGlobalOp flag : flags) {
    auto func = flag->getParentOfType<func::FuncOp>();
    if (!func || func->getParentOp() != module.getOperation())
      return flag.emitOpError()
             << "reads @" << moe::kRuntimeErrorGlobal
             << " outside a func.func of the module: there is no status "
                "argument to store the error code into";
    functions.insert(func);
  }
  // Callers of a function with the argument get it too.
  for (size_t i = 0; i < functions.size(); ++i) {
    func::FuncOp callee = functions[i];
    auto uses = SymbolTable::getSymbolUses(callee, module);
    if (!uses)
      continue;
    for (const SymbolTable::SymbolUse &use : *uses) {
      auto call = dyn_cast<func::CallOp>(use.getUser());
      auto caller = call ? call->getParentOfType<func::FuncOp>() : nullptr;
      if (!caller) {
        InFlightDiagnostic diag =
            use.getUser()->emitOpError()
            << "uses @" << callee.getSymName()
            << " other than by func.call, but that function gets a status "
               "argument (it is public or records run-time errors)";
        diag.attachNote(callee.getLoc()) << "function defined here";
        return failure();
      }
      functions.insert(caller);
    }
  }
  return success();
}

void MoEStatusArgumentPass::runOnOperation() {
  ModuleOp module = getOperation();
  MLIRContext *context = &getContext();
  auto global = module.lookupSymbol<memref::GlobalOp>(moe::kRuntimeErrorGlobal);
  SmallVector<memref::GetGlobalOp> flags;
  if (global) {
    WalkResult walk = module.walk([&](memref::GetGlobalOp op) {
      if (op.getName() != moe::kRuntimeErrorGlobal)
        return WalkResult::advance();
      for (Operation *user : op->getUsers()) {
        auto store = dyn_cast<memref::StoreOp>(user);
        if (!store || store.getMemRef() != op.getResult() ||
            !store.getValue().getType().isInteger(32)) {
          user->emitOpError()
              << "uses @" << moe::kRuntimeErrorGlobal
              << " other than by storing an i32 error code into it; only "
                 "stores can become stores through the status argument";
          return WalkResult::interrupt();
        }
      }
      flags.push_back(op);
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return signalPassFailure();
  }

  llvm::SetVector<func::FuncOp> functions;
  if (failed(collect(module, flags, functions)))
    return signalPassFailure();

  // Add the argument, then pass it on at every call of such a function.
  auto ptrType = LLVM::LLVMPointerType::get(context);
  auto attrs = DictionaryAttr::get(
      context, {NamedAttribute(StringAttr::get(context, moe::kStatusArgAttr),
                               UnitAttr::get(context))});
  DenseMap<func::FuncOp, Value> status;
  for (func::FuncOp func : functions) {
    unsigned index = func.getNumArguments();
    if (failed(func.insertArgument(index, ptrType, attrs, func.getLoc()))) {
      func.emitOpError() << "cannot take a status argument";
      return signalPassFailure();
    }
    status[func] = func.getArgument(index);
  }
  for (func::FuncOp func : functions) {
    func.walk([&](func::CallOp call) {
      auto callee = module.lookupSymbol<func::FuncOp>(call.getCallee());
      if (callee && status.count(callee))
        call.getOperandsMutable().append(status[func]);
    });
  }

  // Stores of a code go through the caller's pointer.
  OpBuilder builder(context);
  for (memref::GetGlobalOp flag : flags) {
    Value pointer = status[flag->getParentOfType<func::FuncOp>()];
    for (Operation *user : llvm::make_early_inc_range(flag->getUsers())) {
      auto store = cast<memref::StoreOp>(user);
      builder.setInsertionPoint(store);
      LLVM::StoreOp::create(builder, store.getLoc(), store.getValue(), pointer);
      store.erase();
    }
    flag.erase();
  }
  if (global && SymbolTable::symbolKnownUseEmpty(global, module))
    global.erase();
}
