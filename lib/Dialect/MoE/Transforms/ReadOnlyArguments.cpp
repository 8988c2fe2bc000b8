//===- ReadOnlyArguments.cpp - Keep callers' buffers unwritten --*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

#define DEBUG_TYPE "moe-read-only-arguments"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEREADONLYARGUMENTSPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;

namespace {
struct MoEReadOnlyArgumentsPass
    : moe::impl::MoEReadOnlyArgumentsPassBase<MoEReadOnlyArgumentsPass> {
  void runOnOperation() override {
    auto readOnly = BoolAttr::get(&getContext(), false);
    StringRef name =
        bufferization::BufferizationDialect::kWritableAttrName;
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (!func.isPublic() || func.isExternal())
        continue;
      for (auto [index, type] : llvm::enumerate(func.getArgumentTypes()))
        if (llvm::isa<TensorType>(type))
          func.setArgAttr(index, name, readOnly);
    }
  }
};
} // namespace
