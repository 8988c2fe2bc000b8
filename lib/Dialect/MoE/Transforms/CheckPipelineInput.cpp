//===- CheckPipelineInput.cpp - What the moe pipelines accept ---*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/IR/BuiltinOps.h"

#define DEBUG_TYPE "moe-check-pipeline-input"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOECHECKPIPELINEINPUTPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;

namespace {
struct MoECheckPipelineInputPass
    : moe::impl::MoECheckPipelineInputPassBase<MoECheckPipelineInputPass> {
  using Base::Base;

  void runOnOperation() override {
    bool nested = false;
    getOperation().getBody()->walk([&](ModuleOp module) {
      InFlightDiagnostic diag = module.emitError()
                                << pipeline
                                << " compiles the functions of the top-level "
                                   "module; nested module ";
      if (std::optional<StringRef> name = module.getName())
        diag << "@" << *name << " ";
      diag << "is not supported (move its functions to the top level)";
      nested = true;
      return WalkResult::skip();
    });
    if (nested)
      signalPassFailure();
  }
};
} // namespace
