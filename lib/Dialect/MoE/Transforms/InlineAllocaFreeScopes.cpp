//===- InlineAllocaFreeScopes.cpp - Drop scopes without allocas -*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/PatternMatch.h"

#define DEBUG_TYPE "moe-inline-alloca-free-scopes"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEINLINEALLOCAFREESCOPESPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;

namespace {
struct MoEInlineAllocaFreeScopesPass
    : moe::impl::MoEInlineAllocaFreeScopesPassBase<
          MoEInlineAllocaFreeScopesPass> {
  void runOnOperation() override {
    SmallVector<memref::AllocaScopeOp> scopes;
    getOperation()->walk([&](memref::AllocaScopeOp scope) {
      WalkResult found = scope.getBodyRegion().walk(
          [](memref::AllocaOp) { return WalkResult::interrupt(); });
      if (!found.wasInterrupted())
        scopes.push_back(scope);
    });
    IRRewriter rewriter(&getContext());
    for (memref::AllocaScopeOp scope : scopes) {
      Block &body = scope.getBodyRegion().front();
      auto terminator =
          llvm::cast<memref::AllocaScopeReturnOp>(body.getTerminator());
      SmallVector<Value> results(terminator.getResults());
      rewriter.eraseOp(terminator);
      rewriter.inlineBlockBefore(&body, scope);
      rewriter.replaceOp(scope, results);
    }
  }
};
} // namespace
