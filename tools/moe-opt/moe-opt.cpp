//===- moe-opt.cpp - The moe-mlir optimizer driver --------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// `mlir-opt` for the moe dialect: parses, verifies, transforms and prints
// modules that use moe ops. It registers the moe dialect, passes and
// pipelines plus the upstream dialects that the pipelines produce, and no
// others.
//
//===----------------------------------------------------------------------===//

#include "TestDialect.h"
#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Pipelines/Pipelines.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  // moe, func, arith, tensor, linalg, math, scf, memref, bufferization, cf,
  // affine, ub, llvm and the interface models the pipelines rely on.
  mlir::moe::registerPipelineDependencies(registry);
  // moe_test: test-only attributes for the lit tests (test/lib).
  mlir::moe::test::registerTestDialect(registry);

  // The generic IR passes (canonicalize, cse, inline, symbol-dce, ...) and
  // every upstream pass that the moe pipelines run, so that a pipeline can
  // be rerun piece by piece; no other upstream pass.
  mlir::moe::registerPipelinePasses();
  mlir::moe::registerMoEPasses();
  mlir::moe::registerMoEConversionPasses();
  mlir::moe::registerMoEPipelines();

  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "moe-mlir optimizer driver\n", registry));
}
