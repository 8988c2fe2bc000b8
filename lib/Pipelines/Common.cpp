//===- Common.cpp - Pieces shared by the moe pipelines ----------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "Common.h"

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Conversion/BufferizationToMemRef/BufferizationToMemRef.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Pass/PassManager.h"

using namespace mlir;

void mlir::moe::detail::addTensorsToLoops(OpPassManager &pm, bool deallocate) {
  // Elementwise tensor ops become linalg, which bufferizes; tensor.empty
  // becomes an allocation.
  pm.addNestedPass<func::FuncOp>(createConvertElementwiseToLinalgPass());
  pm.addPass(bufferization::createEmptyTensorToAllocTensorPass());
  // Callers' arrays are inputs: never bufferize a result into them.
  pm.addPass(createMoEReadOnlyArgumentsPass());
  // Function boundaries use plain (identity) layouts so that C callers pass
  // ordinary descriptors; returned buffers are always owned by the caller
  // (copies are inserted where a result would alias an argument or a
  // constant).
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  // Loops over layers yield each layer's freshly allocated output.
  bufferize.allowReturnAllocsFromLoops = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  if (deallocate)
    bufferization::buildBufferDeallocationPipeline(pm);
  pm.addPass(createConvertBufferizationToMemRefPass());
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
}
