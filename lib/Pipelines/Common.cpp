//===- Common.cpp - Pieces shared by the moe pipelines ----------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "Common.h"

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Conversion/AffineToStandard/AffineToStandard.h"
#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/BufferizationToMemRef/BufferizationToMemRef.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVMPass.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MathToLibm/MathToLibm.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Conversion/UBToLLVM/UBToLLVM.h"
#include "mlir/Conversion/VectorToLLVM/ConvertVectorToLLVMPass.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

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

void mlir::moe::detail::addHostToLLVM(
    OpPassManager &pm, bool vectors, bool cInterface, bool statusArgument,
    function_ref<void(OpPassManager &)> afterFunctions) {
  // Run-time errors go to the caller's status argument, not to a global.
  if (statusArgument)
    pm.addPass(createMoEStatusArgumentPass());
  // f32 -> bf16 (and back) as integer arithmetic: round to nearest even with
  // subnormals kept, as the contract says, on every CPU. LLVM would use
  // vcvtneps2bf16 where AVX512-BF16 exists, which flushes subnormals to zero,
  // and a compiler-rt call elsewhere (__truncsfbf2, which the sanitizer
  // builds do not link). Host functions only: device code keeps the GPU's
  // conversion instructions.
  arith::ArithExpandOpsPassOptions expand;
  expand.includeBf16 = true;
  pm.addNestedPass<func::FuncOp>(arith::createArithExpandOpsPass(expand));
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  if (vectors)
    pm.addPass(createConvertVectorToLLVMPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createConvertMathToLLVMPass());
  // What LLVM has no intrinsic for (erf, ...) becomes a libm call.
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  if (cInterface)
    pm.addPass(createMoEEmitCInterfacePass());
  pm.addPass(createConvertFuncToLLVMPass());
  afterFunctions(pm);
  pm.addPass(createUBToLLVMConversionPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createMoEApplyCPUTargetPass());
}
