//===- PassRegistration.cpp - The passes the moe pipelines run --*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Every upstream pass that moe-cpu-pipeline, moe-gpu-pipeline and the
// testing pipeline add, registered one by one (not every upstream pass), so
// that a pipeline printed by --dump-pass-pipeline or listed by
// --mlir-print-ir-after-all can be rerun piece by piece with moe-opt
// (scripts/run-pipeline-pieces.py; test/Pipelines/pieces.test checks that
// the pieces reproduce each pipeline's output).
//
//===----------------------------------------------------------------------===//

#include "moe/Pipelines/Pipelines.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Transforms/Passes.h"

void mlir::moe::registerPipelinePasses() {
  // canonicalize, cse and the other generic IR passes.
  registerTransformsPasses();
  // Tensors to buffers to loops.
  registerConvertElementwiseToLinalgPass();
  registerConvertLinalgToLoopsPass();
  bufferization::registerEmptyTensorToAllocTensorPass();
  bufferization::registerOneShotBufferizePass();
  bufferization::registerOwnershipBasedBufferDeallocationPass();
  bufferization::registerBufferDeallocationSimplificationPass();
  bufferization::registerLowerDeallocationsPass();
  registerConvertBufferizationToMemRefPass();
  memref::registerExpandReallocPass();
  // Host code to LLVM.
  arith::registerArithExpandOpsPass();
  registerSCFToControlFlowPass();
  memref::registerExpandStridedMetadataPass();
  registerLowerAffinePass();
  registerConvertVectorToLLVMPass();
  registerFinalizeMemRefToLLVMConversionPass();
  registerConvertMathToLLVMPass();
  registerConvertMathToLibmPass();
  registerArithToLLVMConversionPass();
  registerConvertControlFlowToLLVMPass();
  registerConvertFuncToLLVMPass();
  registerUBToLLVMConversionPass();
  registerReconcileUnrealizedCastsPass();
  // OpenMP (parallel=1).
  registerConvertSCFToOpenMPPass();
  registerConvertOpenMPToLLVMPass();
  // Device code.
  registerGpuKernelOutliningPass();
  registerGpuAsyncRegionPass();
  registerGpuNVVMAttachTarget();
  registerConvertGpuOpsToNVVMOps();
  registerConvertNVVMToLLVMPass();
  registerGpuModuleToBinaryPass();
  registerGpuToLLVMConversionPass();
}
